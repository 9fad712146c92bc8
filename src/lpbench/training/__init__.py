"""Training loop, recipes, logs and the multi-process launch; checkpoints re-exported.

Checkpoints live in :mod:`lpbench.checkpoint` and the torchrun context in
:mod:`lpbench.distributed`; the checkpoint names are re-exported here.
"""

from __future__ import annotations

import warnings
from typing import Any

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
from lpbench.training.recipes import (
    PAPER_ROWS,
    RECIPES,
    SHORT_NAMES,
    SHORT_OBJECTIVES,
    Recipe,
    describe_recipes,
    get_recipe,
    recipe_config,
    short_objective,
)
from lpbench.training.trainer import train

#: Old public names -> their new names (deprecated, removed in a later version).
_DEPRECATED = {
    "SEED_ROWS": "PAPER_ROWS",
    "TRAIN_PRESETS": "SHORT_OBJECTIVES",
    "get_train_preset": "short_objective",
}


def __getattr__(name: str) -> Any:
    """The deprecated names, with a DeprecationWarning naming the new one."""
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(
            f"lpbench.training.{name} is deprecated; use lpbench.training.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PAPER_ROWS",
    "RECIPES",
    "SHORT_NAMES",
    "SHORT_OBJECTIVES",
    "CheckpointError",
    "Recipe",
    "TrainConfig",
    "describe_recipes",
    "get_recipe",
    "load_checkpoint",
    "plot_training",
    "read_checkpoint_meta",
    "read_log",
    "recipe_config",
    "resolve_checkpoint",
    "save_checkpoint",
    "short_objective",
    "train",
]
