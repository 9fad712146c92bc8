"""lpbench: train logit-pairing defenses and evaluate their robustness honestly.

Data flows one way: ``data`` -> ``models`` -> ``attacks`` -> ``evaluation`` -> ``reporting``.
"""

from lpbench import zoo
from lpbench.attacks import PGD, Attack, AttackResult, Cost
from lpbench.data import evaluation_subset, load_dataset
from lpbench.defenses import ObjectiveConfig
from lpbench.evaluation import (
    EvaluationResult,
    LogitsOf,
    ModelContractError,
    NamedAttack,
    benchmark,
    evaluate,
    evaluate_model,
    preset_attacks,
)
from lpbench.evaluation.check import CheckReport, check
from lpbench.importers import TFImportError, import_tf
from lpbench.models import build_model
from lpbench.training import TrainConfig, load_checkpoint, train
from lpbench.version import __version__

__all__ = [
    "PGD",
    "Attack",
    "AttackResult",
    "CheckReport",
    "Cost",
    "EvaluationResult",
    "LogitsOf",
    "ModelContractError",
    "NamedAttack",
    "ObjectiveConfig",
    "TFImportError",
    "TrainConfig",
    "__version__",
    "benchmark",
    "build_model",
    "check",
    "evaluate",
    "evaluate_model",
    "evaluation_subset",
    "import_tf",
    "load_checkpoint",
    "load_dataset",
    "preset_attacks",
    "train",
    "zoo",
]
