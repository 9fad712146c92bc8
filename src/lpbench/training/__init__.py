"""Training loop, recipes, logs and the multi-process launch; checkpoints re-exported.

Checkpoints live in :mod:`lpbench.checkpoint` and the torchrun context in
:mod:`lpbench.distributed`; the checkpoint names are re-exported here.
"""

from lpbench.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint_meta,
    resolve_checkpoint,
    save_checkpoint,
)
from lpbench.training.config import TrainConfig
from lpbench.training.logs import read_log
from lpbench.training.plots import plot_training
from lpbench.training.presets import (
    RECIPES,
    SEED_ROWS,
    TRAIN_PRESETS,
    Recipe,
    describe_recipes,
    get_recipe,
    get_train_preset,
    recipe_config,
)
from lpbench.training.trainer import train

__all__ = [
    "RECIPES",
    "SEED_ROWS",
    "TRAIN_PRESETS",
    "CheckpointError",
    "Recipe",
    "TrainConfig",
    "describe_recipes",
    "get_recipe",
    "get_train_preset",
    "load_checkpoint",
    "plot_training",
    "read_checkpoint_meta",
    "read_log",
    "recipe_config",
    "resolve_checkpoint",
    "save_checkpoint",
    "train",
]
