"""Attacks behind one interface: ``attack(model, x, y, target=None) -> AttackResult``."""

from lpbench.attacks.base import Attack, AttackResult
from lpbench.attacks.losses import LOSSES, get_loss, is_adversarial
from lpbench.attacks.pgd import PGD

__all__ = ["LOSSES", "PGD", "Attack", "AttackResult", "get_loss", "is_adversarial"]
