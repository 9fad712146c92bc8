"""Evaluation: presets as data, worst case over attacks and restarts, verification,
journalled (resumable) and sharded (torchrun) runs, and the model contract check."""

from lpbench.evaluation.benchmark import benchmark, build_manifest, evaluate_model, weights_sha256
from lpbench.evaluation.contract import (
    LogitsOf,
    ModelContractError,
    check_inputs,
    check_model_contract,
)
from lpbench.evaluation.evaluate import (
    AttackSummary,
    EvaluationResult,
    VerificationError,
    adversarial_mask,
    evaluate,
    load_adversarial,
    predict,
    verify_adversarial,
)
from lpbench.evaluation.protocol import (
    DEFAULT_EPS,
    PRESETS,
    PROTOCOLS,
    AttackSpec,
    DatasetProtocol,
    KindSpec,
    NamedAttack,
    custom_pgd,
    default_eps,
    get_protocol,
    parse_step,
    preset_attacks,
)
from lpbench.evaluation.schedule import (
    DEFAULT_BUDGET,
    Schedule,
    auto_schedule,
    max_spend_per_point,
)
from lpbench.evaluation.shards import Shard, shard_from_env

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_EPS",
    "PRESETS",
    "PROTOCOLS",
    "AttackSpec",
    "AttackSummary",
    "DatasetProtocol",
    "EvaluationResult",
    "KindSpec",
    "LogitsOf",
    "ModelContractError",
    "NamedAttack",
    "Schedule",
    "Shard",
    "VerificationError",
    "adversarial_mask",
    "auto_schedule",
    "benchmark",
    "build_manifest",
    "check_inputs",
    "check_model_contract",
    "custom_pgd",
    "default_eps",
    "evaluate",
    "evaluate_model",
    "get_protocol",
    "load_adversarial",
    "max_spend_per_point",
    "parse_step",
    "predict",
    "preset_attacks",
    "shard_from_env",
    "verify_adversarial",
    "weights_sha256",
]
