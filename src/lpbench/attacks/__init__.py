"""Attacks behind one interface: ``attack(model, x, y, index=..., target=...) -> AttackResult``."""

from lpbench.attacks.base import Attack, AttackResult, Cost, RestartRecords
from lpbench.attacks.keyed import derive_key, keyed_randint, keyed_signs, keyed_uniform
from lpbench.attacks.losses import LOSSES, get_loss, is_adversarial, margin
from lpbench.attacks.pgd import PGD
from lpbench.attacks.targets import choose_targets, least_likely, random_other_class

__all__ = [
    "LOSSES",
    "PGD",
    "Attack",
    "AttackResult",
    "Cost",
    "RestartRecords",
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
]
