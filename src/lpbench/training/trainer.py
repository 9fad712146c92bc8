"""The training loop: seeded, logged per epoch as JSON lines, resumable after a kill."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lpbench.attacks import PGD
from lpbench.data import ArrayDataset, evaluation_subset, load_dataset
from lpbench.defenses import ObjectiveConfig, add_input_noise, objective_terms
from lpbench.evaluation import default_eps, evaluate, preset_attacks
from lpbench.io import append_jsonl, atomic_write, read_json, write_json
from lpbench.models import build_model
from lpbench.runtime import progress, resolve_device
from lpbench.training.checkpoint import (
    WEIGHTS_NAME,
    load_train_state,
    save_checkpoint,
    save_train_state,
)
from lpbench.version import __version__

STATE_NAME = "train_state.safetensors"
LOG_NAME = "train_log.jsonl"
CONFIG_NAME = "train_config.json"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the seed, its result)."""

    dataset: str = "fashion-mnist"
    model: str = "lenet"
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    preset: str | None = None
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    adam_eps: float = 1e-6
    seed: int = 0
    train_points: int | None = None
    adv_eps: float | None = None
    adv_step: float = 0.01
    adv_iters: int = 40
    eval_adv_points: int = 0

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "adv_iters": self.adv_iters >= 0,
            "eval_adv_points": self.eval_adv_points >= 0,
            "train_points": self.train_points is None or self.train_points >= 1,
            "adv_eps": self.adv_eps is None or 0 < self.adv_eps <= 1,
            "adv_step": 0 < self.adv_step <= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training settings: {', '.join(bad)}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "objective": self.objective.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["objective"] = ObjectiveConfig(**data["objective"])
        return cls(**values)


def _epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """Independent, reproducible random stream per (seed, epoch, purpose)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7 + stream)


def _batched_accuracy(
    model: nn.Module, data: ArrayDataset, device: torch.device, batch_size: int = 1000
) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            pred = model(data.images[i : i + batch_size].to(device)).argmax(1).cpu()
            correct += int((pred == data.labels[i : i + batch_size]).sum())
    return correct / len(data)


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train ``config`` into ``out_dir``; return the model and the per-epoch log.

    After every epoch the run writes (atomically) a resumable state, the checkpoint
    ``model.safetensors`` + ``model.json`` and one JSON line of metrics. ``resume=True``
    continues an interrupted run to the same weights an uninterrupted run reaches.
    """
    out_dir = Path(out_dir)
    device = resolve_device(device)
    state_path, log_path = out_dir / STATE_NAME, out_dir / LOG_NAME
    if state_path.exists() and not resume:
        raise FileExistsError(
            f"{out_dir} already holds a training run: pass resume=True "
            "(--resume) to continue it, or choose another output folder"
        )
    if resume and (out_dir / CONFIG_NAME).exists():
        saved = read_json(out_dir / CONFIG_NAME)
        mine = config.to_dict()
        differing = [k for k in mine if k != "epochs" and saved.get(k) != mine[k]]
        if differing:
            raise ValueError(
                f"cannot resume {out_dir}: settings differ from the saved run "
                f"({', '.join(differing)})"
            )

    train_set = load_dataset(config.dataset, "train", data_dir=data_dir, progress=show_progress)
    test_set = load_dataset(config.dataset, "test", data_dir=data_dir, progress=show_progress)
    if config.train_points is not None:
        train_set = train_set.subset(
            evaluation_subset(len(train_set), config.train_points, seed=config.seed)
        )
    input_shape = tuple(train_set.images.shape[1:])
    torch.manual_seed(config.seed)
    model = build_model(config.model, input_shape, train_set.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, eps=config.adam_eps)

    start_epoch, history = 0, []
    if resume and state_path.exists():
        start_epoch = load_train_state(state_path, model, optimizer)["epoch"]
        history = [r for r in _read_log(log_path) if r["epoch"] <= start_epoch]
    write_json(out_dir / CONFIG_NAME, config.to_dict())
    _rewrite_log(log_path, history)

    eps = config.adv_eps if config.adv_eps is not None else default_eps(config.dataset)
    adv_points = None
    if config.eval_adv_points:
        adv_points = test_set.subset(evaluation_subset(len(test_set), config.eval_adv_points))
    for epoch in range(start_epoch + 1, config.epochs + 1):
        record = _train_epoch(
            model, optimizer, train_set, config, epoch, eps, device, show_progress
        )
        model.eval()
        record["test_accuracy"] = _batched_accuracy(model, test_set, device)
        if adv_points is not None:
            result = evaluate(
                model,
                adv_points.images,
                adv_points.labels,
                preset_attacks("baseline", config.dataset, eps, seed=epoch),
                device=device,
                show_progress=False,
            )
            record["adv_accuracy_baseline"] = result.robust_accuracy
        meta = _checkpoint_meta(config, input_shape, train_set.num_classes, epoch, record)
        save_train_state(state_path, model, optimizer, {"epoch": epoch})
        save_checkpoint(out_dir / WEIGHTS_NAME, model, meta)
        append_jsonl(log_path, record)
        history.append(record)
    return model.eval(), history


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: ArrayDataset,
    config: TrainConfig,
    epoch: int,
    eps: float,
    device: torch.device,
    show_progress: bool,
) -> dict[str, Any]:
    order = torch.randperm(len(data), generator=_epoch_generator(config.seed, epoch, 0))
    noise_gen = _epoch_generator(config.seed, epoch, 1)
    objective = config.objective
    sums: dict[str, float] = {}
    seen, started = 0, time.perf_counter()
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    for idx in progress(
        batches, desc=f"epoch {epoch}/{config.epochs}", enabled=show_progress, unit="batch"
    ):
        x, y = data.images[idx], data.labels[idx]
        x = add_input_noise(x, objective.noise_std, noise_gen).to(device)
        y = y.to(device)
        x_adv = None
        if objective.needs_adversarial:
            # Crafted in eval mode (the attack's default); random starts keyed by the
            # run's seed, the epoch and each image's index in the training set.
            attack = PGD(
                eps,
                config.adv_step,
                config.adv_iters,
                keep_last=True,
                seed=config.seed * 1_000_003 + epoch,
                stream="train-adversarial",
            )
            x_adv = attack(model, x, y, index=idx.to(device)).x_adv
        model.train()
        terms = objective_terms(model, x, y, objective, x_adv)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach()) * len(idx)
        seen += len(idx)
    seconds = time.perf_counter() - started
    return {
        "epoch": epoch,
        "images": seen,
        "seconds": round(seconds, 3),
        "images_per_s": round(seen / seconds, 1),
        **{f"loss_{k}": v / seen for k, v in sums.items()},
    }


def _checkpoint_meta(
    config: TrainConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    epoch: int,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model": config.model,
        "dataset": config.dataset,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "preset": config.preset,
        "objective": config.objective.to_dict(),
        "train_config": config.to_dict(),
        "epoch": epoch,
        "metrics": metrics,
        "seed": config.seed,
        "lpbench_version": __version__,
    }


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _rewrite_log(path: Path, records: list[dict[str, Any]]) -> None:
    """Drop log lines of epochs that a kill left without a saved state."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    atomic_write(path, lambda tmp: tmp.write_text(text))
