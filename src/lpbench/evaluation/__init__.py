"""Evaluation protocols, worst-case aggregation over restarts and attacks, per-point records."""

from lpbench.evaluation.benchmark import benchmark
from lpbench.evaluation.evaluate import (
    AttackSummary,
    EvaluationResult,
    VerificationError,
    evaluate,
    load_adversarial,
    verify_adversarial,
)
from lpbench.evaluation.protocol import (
    DEFAULT_EPS,
    PRESETS,
    NamedAttack,
    default_eps,
    preset_attacks,
)

__all__ = [
    "DEFAULT_EPS",
    "PRESETS",
    "AttackSummary",
    "EvaluationResult",
    "NamedAttack",
    "VerificationError",
    "benchmark",
    "default_eps",
    "evaluate",
    "load_adversarial",
    "preset_attacks",
    "verify_adversarial",
]
