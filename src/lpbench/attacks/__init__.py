"""Attacks behind one interface: ``attack(model, x, y, index=..., target=...) -> AttackResult``."""

from lpbench.attacks.apgd import APGD, APGDT
from lpbench.attacks.base import Attack, AttackResult, Cost, RestartRecords
from lpbench.attacks.fab import FAB
from lpbench.attacks.fgsm import FGSM
from lpbench.attacks.keyed import KeyedRows, derive_key, keyed_randint, keyed_signs, keyed_uniform
from lpbench.attacks.losses import LOSSES, get_loss, is_adversarial, margin
from lpbench.attacks.pgd import PGD
from lpbench.attacks.spsa import SPSA
from lpbench.attacks.square import Square
from lpbench.attacks.targets import (
    choose_targets,
    least_likely,
    random_other_class,
    top_other_classes,
)
from lpbench.attacks.universal import Universal

__all__ = [
    "APGD",
    "APGDT",
    "FAB",
    "FGSM",
    "LOSSES",
    "PGD",
    "SPSA",
    "Attack",
    "AttackResult",
    "Cost",
    "KeyedRows",
    "RestartRecords",
    "Square",
    "Universal",
    "choose_targets",
    "derive_key",
    "get_loss",
    "is_adversarial",
    "keyed_randint",
    "keyed_signs",
    "keyed_uniform",
    "least_likely",
    "margin",
    "random_other_class",
    "top_other_classes",
]
