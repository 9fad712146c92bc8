"""The one interface every attack implements, and what an attack returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class AttackResult:
    """Outcome of attacking N points with R restarts.

    ``x_adv`` holds, per point, a successful example when one was found and otherwise the
    highest-loss one. ``restart_loss`` is the loss at the last iterate each restart reached
    (NaN where a restart was not run because the point was already broken).
    ``success_at[k]`` tells, per point, whether some restart broke it within its first k
    iterations (used for step-size x iteration grids).
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    best_loss: torch.Tensor
    restart_loss: torch.Tensor
    restart_success: torch.Tensor
    restart_ran: torch.Tensor
    grad_evals: int
    forward_evals: int
    success_at: dict[int, torch.Tensor] = field(default_factory=dict)


class Attack(ABC):
    """An L-infinity attack: ``attack(model, x, y, target=None) -> AttackResult``.

    The model must map inputs in [0, 1] to logits and be in the mode the caller wants
    (evaluation code puts it in eval mode). Attacks never change the model.
    """

    name: str = "attack"

    def __init__(self, eps: float) -> None:
        if not 0 <= eps <= 1:
            raise ValueError(f"eps must be in [0, 1] (inputs are in [0, 1]), got {eps}")
        self.eps = float(eps)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None
    ) -> AttackResult:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} inputs but {y.shape[0]} labels")
        if target is not None and target.shape != y.shape:
            raise ValueError("target must have one class per input")
        return self.perturb(model, x, y, target)

    @abstractmethod
    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> AttackResult:
        """Run the attack."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The attack's settings, JSON-serialisable, enough to re-run it."""

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({settings})"
