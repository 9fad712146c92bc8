"""Training loop, presets and checkpoints."""

from lpbench.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint_meta,
    resolve_checkpoint,
    save_checkpoint,
)
from lpbench.training.presets import TRAIN_PRESETS, get_train_preset
from lpbench.training.trainer import TrainConfig, train

__all__ = [
    "TRAIN_PRESETS",
    "CheckpointError",
    "TrainConfig",
    "get_train_preset",
    "load_checkpoint",
    "read_checkpoint_meta",
    "resolve_checkpoint",
    "save_checkpoint",
    "train",
]
