"""The training loop: seeded, logged per epoch, resumable after a kill, one or many processes.

Batches come from uint8 arrays through ``lpbench.data.loader`` (seeded order, split over
processes); with ``torchrun`` the objective runs under DistributedDataParallel, while
adversarial examples are crafted on the unwrapped model. Only rank 0 writes files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lpbench import distributed
from lpbench.attacks import PGD
from lpbench.checkpoint import (
    WEIGHTS_NAME,
    load_checkpoint,
    load_train_state,
    save_checkpoint,
    save_train_state,
)
from lpbench.data import dataset_eval_subset, evaluation_subset, get_dataset_info, load_arrays
from lpbench.data.loader import EpochBatches, augment_tiny_imagenet, batch_loader, to_float
from lpbench.defenses import ObjectiveConfig, add_input_noise, objective_terms
from lpbench.evaluation import NamedAttack, evaluate
from lpbench.io import check_writable_folder, read_json, write_json
from lpbench.models import build_model
from lpbench.runtime import progress
from lpbench.training.adversarial import adversarial_targets, craft_adversarial, crafting_mode
from lpbench.training.config import TrainConfig
from lpbench.training.ema import WeightEMA
from lpbench.training.logs import RunLog, read_log
from lpbench.version import __version__

STATE_NAME = "train_state.safetensors"
CONFIG_NAME = "train_config.json"
EMA_NAME = "model_ema.safetensors"


#: Settings that may differ when a run is resumed (they do not change its result).
_RESUMABLE_CHANGES = ("epochs", "eval_adv_points", "checkpoint_every")


def _generator(seed: int, epoch: int, step: int, stream: int) -> torch.Generator:
    """Independent, reproducible random stream per (seed, epoch, step, purpose)."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 100_003 + step) * 7 + stream)


class _Objective(nn.Module):
    """The objective as a module, so that DistributedDataParallel wraps one forward."""

    def __init__(self, model: nn.Module, objective: ObjectiveConfig) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        return objective_terms(self.model, x, y, self.objective, x_adv)


def _accuracy(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device
) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), 500):
            x = to_float(torch.from_numpy(np.array(images[i : i + 500])), device)
            pred = model(x).argmax(1).cpu().numpy()
            correct += int((pred == labels[i : i + 500]).sum())
    return correct / max(len(labels), 1)


def _lr_at(config: TrainConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (1-based): divided after each passed milestone."""
    passed = sum(1 for m in config.lr_milestones if epoch > m)
    return config.lr * config.lr_gamma**passed


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    resume: bool = False,
    show_progress: bool = True,
    workers: int = 0,
    force: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train ``config`` into ``out_dir``; return the model and the per-epoch log.

    After every epoch the run writes (atomically) a resumable state, the checkpoint
    ``model.safetensors`` + ``model.json`` and one JSON line of metrics. ``resume=True``
    continues an interrupted run to the same weights an uninterrupted run reaches.
    A folder that already holds a run or a checkpoint is refused unless ``resume`` or
    ``force`` (start afresh, overwriting it) is given. ``on_epoch`` (rank 0 only) gets each
    epoch's log record as soon as it is written.
    Launched by ``torchrun``, the processes share the work (see :class:`TrainConfig`).
    """
    ctx = distributed.setup(device)
    try:
        run = (resume, show_progress, workers, force, on_epoch)
        return _train(config, Path(out_dir), data_dir, ctx, *run)
    finally:
        distributed.teardown(ctx)


def check_out_dir(out_dir: str | Path, *, resume: bool = False, force: bool = False) -> None:
    """Whether a run may write ``out_dir``: a writable folder (or one that can be made),
    holding no run or checkpoint unless ``resume`` or ``force``; ValueError or
    FileExistsError saying why not."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"the output folder {out_dir} is a file")
    check_writable_folder(out_dir)
    held = [name for name in (STATE_NAME, WEIGHTS_NAME) if (out_dir / name).exists()]
    if held and not resume and not force:
        raise FileExistsError(
            f"{out_dir} already holds a training run ({', '.join(held)}): pass --resume to "
            "continue it, --force to overwrite it, or choose another --out"
        )


def _check_resume(config: TrainConfig, out_dir: Path, resume: bool, force: bool = False) -> None:
    check_out_dir(out_dir, resume=resume, force=force)
    if resume and (out_dir / CONFIG_NAME).exists():
        saved = read_json(out_dir / CONFIG_NAME)
        # runs saved before an option existed had its default
        saved["objective"] = {**ObjectiveConfig().to_dict(), **saved.get("objective", {})}
        mine = config.to_dict()
        differing = [
            k for k in mine if k not in _RESUMABLE_CHANGES and saved.get(k, mine[k]) != mine[k]
        ]
        if differing:
            raise ValueError(
                f"cannot resume {out_dir}: settings differ from the saved run "
                f"({', '.join(differing)})"
            )


def _train(
    config: TrainConfig,
    out_dir: Path,
    data_dir: str | Path | None,
    ctx: distributed.Context,
    resume: bool,
    show_progress: bool,
    workers: int,
    force: bool,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    _check_resume(config, out_dir, resume, force)
    device = ctx.device
    info = get_dataset_info(config.dataset)
    show = show_progress and ctx.is_main
    train_x, train_y = load_arrays(config.dataset, "train", data_dir=data_dir, progress=show)
    test_x, test_y = load_arrays(config.dataset, "test", data_dir=data_dir, progress=show)
    if config.train_points is not None:
        keep = evaluation_subset(len(train_y), config.train_points, seed=config.seed)
        train_x, train_y = train_x[keep], train_y[keep]
    input_shape = tuple(int(d) for d in train_x.shape[1:])
    torch.manual_seed(config.seed)
    model = build_model(config.model, input_shape, info.num_classes, **config.model_options)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, eps=config.adam_eps)
    ema = WeightEMA(model, config.ema_decay) if config.ema_decay > 0 else None

    state_path = out_dir / STATE_NAME
    start: dict[str, Any] = {"epoch": 0, "step": 0, "global_step": 0, "sums": {}, "seen": 0}
    history: list[dict[str, Any]] = []
    if resume and state_path.exists():
        start = {**start, **load_train_state(state_path, model, optimizer, _ema_extra(ema))}
        history = [r for r in read_log(out_dir) if r["epoch"] <= start["epoch"]]
    elif config.init_from is not None:
        source, _ = load_checkpoint(config.init_from, model=config.model)
        model.load_state_dict(source.state_dict())
        if ema is not None:
            ema = WeightEMA(model, config.ema_decay)
    if ctx.is_main:
        write_json(out_dir / CONFIG_NAME, config.to_dict())
    log = RunLog(out_dir, history, enabled=ctx.is_main)
    step_module: nn.Module = _Objective(model, config.objective)
    if ctx.distributed:
        step_module = DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None
        )

    # the default radius is the data-set registry's (lpbench.data.DatasetInfo.eps)
    eps = config.adv_eps if config.adv_eps is not None else info.eps
    adv_idx = None
    if config.eval_adv_points:
        adv_idx = dataset_eval_subset(config.dataset, len(test_y), config.eval_adv_points)
    run = _Run(config, ctx, model, step_module, optimizer, ema, eps, info.num_classes, out_dir)
    try:
        for epoch in range(start["epoch"] + 1, config.epochs + 1):
            resumed = start if epoch == start["epoch"] + 1 else {}
            record = run.epoch(epoch, train_x, train_y, resumed, start, show, workers)
            model.eval()
            if ctx.is_main:
                record["test_accuracy"] = _accuracy(model, test_x, test_y, device)
                if adv_idx is not None:
                    record["adv_accuracy_baseline"] = _adv_accuracy(
                        model, test_x[adv_idx], test_y[adv_idx], config, eps, epoch, device
                    )
                run.save(epoch, 0, record, input_shape, {})
                log.write(record)
                if on_epoch is not None:
                    on_epoch(record)
            distributed.barrier(ctx)
            history.append(record)
    finally:
        log.close()
    return model.eval(), history


def _ema_extra(ema: WeightEMA | None) -> dict[str, torch.Tensor]:
    return {} if ema is None else {f"ema.{k}": v for k, v in ema.shadow.items()}


def _adv_accuracy(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    eps: float,
    epoch: int,
    device: torch.device,
) -> float:
    """Robust accuracy under the training attack (untargeted), logged every epoch."""
    attack = PGD(eps, config.adv_step, max(config.adv_iters, 1), seed=epoch)
    result = evaluate(
        model,
        torch.from_numpy(np.asarray(images)).float().div_(255),
        torch.from_numpy(np.asarray(labels)),
        [NamedAttack("baseline", attack)],
        device=device,
        show_progress=False,
    )
    return result.robust_accuracy


@dataclass
class _Run:
    """The state one epoch needs, and saving it."""

    config: TrainConfig
    ctx: distributed.Context
    model: nn.Module
    step_module: nn.Module
    optimizer: torch.optim.Optimizer
    ema: WeightEMA | None
    eps: float
    classes: int
    out_dir: Path
    global_step: int = 0

    def epoch(
        self,
        epoch: int,
        images: np.ndarray,
        labels: np.ndarray,
        resumed: dict[str, Any],
        start: dict[str, Any],
        show: bool,
        workers: int,
    ) -> dict[str, Any]:
        config, ctx, device = self.config, self.ctx, self.ctx.device
        first_step = resumed.get("step", 0)
        # A mid-epoch state holds the totals over all processes so far: rank 0 carries them.
        carried = resumed if ctx.is_main else {}
        sums: dict[str, float] = dict(carried.get("sums", {}))
        seen = int(carried.get("seen", 0))
        self.global_step = max(self.global_step, int(start.get("global_step", 0)))
        for group in self.optimizer.param_groups:
            group["lr"] = _lr_at(config, epoch)
        sampler = EpochBatches(
            len(labels),
            config.batch_size,
            seed=config.seed,
            epoch=epoch,
            start_step=first_step,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        loader = batch_loader(
            images, labels, sampler, workers=workers, pin_memory=device.type == "cuda"
        )
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if config.amp and device.type == "cuda"
            else nullcontext()
        )
        objective = config.objective
        started = time.perf_counter()
        batches = progress(
            loader, desc=f"epoch {epoch}/{config.epochs}", enabled=show, unit="batch"
        )
        for step, (xb, yb, ib) in enumerate(batches, start=first_step):
            total = min(config.batch_size, len(labels) - step * config.batch_size)
            local = len(yb)
            rows = slice(ctx.rank * local, ctx.rank * local + local)
            x, y = to_float(xb, device), yb.to(device, non_blocking=True)
            if config.augment == "tiny-imagenet":
                x = augment_tiny_imagenet(x, _generator(config.seed, epoch, step, 2), rows, total)
            x = add_input_noise(
                x,
                objective.noise_std,
                _generator(config.seed, epoch, step, 1),
                clip=objective.noise_clip,
                rows=rows,
                total=total,
            )
            x_adv = None
            if objective.needs_adversarial:
                key = config.seed * 1_000_003 + epoch  # with each image's index: per image
                with autocast, crafting_mode(self.model, config.adv_model_mode):
                    gen = _generator(config.seed, epoch, step, 3)
                    target = adversarial_targets(self.model, x, config, self.classes, gen)
                    index = ib.to(device)
                    x_adv = craft_adversarial(
                        self.model, x, y, index, target, config, self.eps, key
                    )
            self.model.train()
            with autocast:
                terms = self.step_module(x, y, x_adv)
            self.optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            self.optimizer.step()
            self.global_step += 1
            if self.ema is not None:
                self.ema.update(self.model, self.global_step)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * local
            seen += local
            done = step + 1
            if config.checkpoint_every and done % config.checkpoint_every == 0:
                if done < sampler.steps():
                    totals = distributed.all_reduce_sum({**sums, "__seen": float(seen)}, ctx)
                    so_far = int(totals.pop("__seen"))
                    if ctx.is_main:
                        self.save(epoch - 1, done, None, None, {"sums": totals, "seen": so_far})
                distributed.barrier(ctx)
        seconds = time.perf_counter() - started
        totals = distributed.all_reduce_sum({**sums, "__seen": float(seen)}, ctx)
        count = max(totals.pop("__seen"), 1.0)
        return {
            "epoch": epoch,
            "images": int(count),
            "seconds": round(seconds, 3),
            "images_per_s": round((count - carried.get("seen", 0)) / max(seconds, 1e-9), 1),
            "lr": _lr_at(config, epoch),
            **{f"loss_{k}": v / count for k, v in totals.items()},
        }

    def save(
        self,
        epoch: int,
        step: int,
        record: dict[str, Any] | None,
        input_shape: tuple[int, ...] | None,
        partial: dict[str, Any],
    ) -> None:
        """The resumable state (after ``epoch`` and ``step`` more steps); at epoch ends also
        the checkpoint and the EMA weights beside it."""
        meta = {"epoch": epoch, "step": step, "global_step": self.global_step, **partial}
        extra = _ema_extra(self.ema)
        save_train_state(self.out_dir / STATE_NAME, self.model, self.optimizer, meta, extra)
        if record is None or input_shape is None:
            return
        meta = _checkpoint_meta(self.config, input_shape, self.classes, epoch, record)
        save_checkpoint(self.out_dir / WEIGHTS_NAME, self.model, meta)
        if self.ema is not None:
            averaged = build_model(
                self.config.model, input_shape, self.classes, **self.config.model_options
            )
            averaged.load_state_dict(self.ema.state_dict(self.model))
            save_checkpoint(self.out_dir / EMA_NAME, averaged, {**meta, "ema": True})


def _checkpoint_meta(
    config: TrainConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    epoch: int,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model": config.model,
        "model_options": config.model_options,
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
