"""The settings of a training run, as one frozen, JSON-serialisable dataclass."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lpbench.data.loader import AUGMENTATIONS
from lpbench.defenses import TARGETS, ObjectiveConfig


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (with the random seed, its result).

    ``batch_size`` is the global batch: with N processes each takes batch_size / N images
    of every batch, and the learning rate applies to the averaged gradient, so a run on
    N processes follows the same schedule as one process (no learning-rate scaling).
    ``adv_model_mode``: the mode ("train" or "eval") the model is in while adversarial
    examples are crafted. ``adv_target``: "none" (untargeted PGD on the label), "ll"
    (targeted at the least-likely class) or "random". ``lr_milestones``: epochs after
    which the learning rate is multiplied by ``lr_gamma``. ``ema_decay`` > 0 keeps a moving
    average of the weights, saved as ``model_ema.safetensors``. ``checkpoint_every``: also
    save a resumable state every this many steps within an epoch (0: at epoch ends only).
    ``preset``: the name of the recipe the run follows (None for a custom run), kept under
    that key in ``train_config.json`` and in every checkpoint's metadata.
    """

    dataset: str = "mnist-digits"
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
    model_options: dict[str, Any] = field(default_factory=dict)
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    adv_target: str = "none"
    adv_model_mode: str = "train"
    ema_decay: float = 0.0
    augment: str = "none"
    init_from: str | None = None
    amp: bool = False
    checkpoint_every: int = 0

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
            "adv_target": self.adv_target in TARGETS,
            "adv_model_mode": self.adv_model_mode in ("train", "eval"),
            "ema_decay": 0 <= self.ema_decay < 1,
            "augment": self.augment in AUGMENTATIONS,
            "checkpoint_every": self.checkpoint_every >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training settings: {', '.join(bad)}")
        object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))

    def to_dict(self) -> dict[str, Any]:
        data = {**asdict(self), "objective": self.objective.to_dict()}
        return json.loads(json.dumps(data))  # tuples as lists, as read back from JSON

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["objective"] = ObjectiveConfig(**data["objective"])
        return cls(**values)
