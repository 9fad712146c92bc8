"""lpbench: train logit-pairing defenses and evaluate their robustness honestly.

Data flows one way: ``data`` -> ``models`` -> ``attacks`` -> ``evaluation`` -> ``reporting``.
"""

__version__ = "0.1.0"

from lpbench.attacks import PGD, Attack, AttackResult
from lpbench.data import evaluation_subset, load_dataset
from lpbench.defenses import ObjectiveConfig
from lpbench.evaluation import (
    EvaluationResult,
    NamedAttack,
    benchmark,
    evaluate,
    preset_attacks,
)
from lpbench.models import build_model
from lpbench.training import TrainConfig, load_checkpoint, train

__all__ = [
    "PGD",
    "Attack",
    "AttackResult",
    "EvaluationResult",
    "NamedAttack",
    "ObjectiveConfig",
    "TrainConfig",
    "__version__",
    "benchmark",
    "build_model",
    "evaluate",
    "evaluation_subset",
    "load_checkpoint",
    "load_dataset",
    "preset_attacks",
    "train",
]
