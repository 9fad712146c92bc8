"""Helpers shared by the attacks: box-and-ball projection, safe gradients, class checks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lpbench.attacks.base import COMPLETE, SKIPPED, AttackResult, Cost, RestartRecords
from lpbench.attacks.losses import AttackLoss


def ball(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds of the eps-ball around ``x`` intersected with [0, 1]."""
    return (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)


def clip(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Projection onto the box ``[lower, upper]`` (the eps-ball within [0, 1])."""
    return torch.min(torch.max(x, lower), upper)


def rows_view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-row scalars shaped to broadcast against a batch shaped like ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def require_classes(num_classes: int, loss: str, targeted: bool) -> None:
    """A clear error when the DLR loss cannot be formed from this many classes."""
    needed = 4 if targeted else 3
    if loss == "dlr" and num_classes < needed:
        kind = "targeted DLR" if targeted else "DLR"
        raise ValueError(
            f"the {kind} loss needs at least {needed} classes but the model has "
            f"{num_classes}; use loss='ce' (or the margin-based Square/FAB attacks)"
        )


def forward(model: nn.Module, x: torch.Tensor, max_batch: int) -> torch.Tensor:
    """Logits of ``x`` without gradients, at most ``max_batch`` rows per forward pass."""
    with torch.no_grad():
        return torch.cat([model(x[i : i + max_batch]) for i in range(0, x.shape[0], max_batch)])


def loss_and_grad(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor | None,
    loss_fn: AttackLoss,
    eot_iter: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss (float64), logits and an input gradient direction, averaged over ``eot_iter`` draws.

    The loss is computed from the logits in float64 and its gradient with respect to the
    logits is rescaled per row (by one positive factor shared by all draws) before it is
    backpropagated, so a loss that underflows in float32 (cross-entropy of a very confident
    model) still yields the gradient's direction. Only the direction is meaningful: the
    L-infinity attacks use its sign.
    """
    xs = x.detach().requires_grad_(True)
    logits_all, outer = [], []
    for _ in range(eot_iter):
        with torch.enable_grad():
            logits = model(xs)
        z = logits.detach().double().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(z, y, target)
            (gz,) = torch.autograd.grad(loss.sum(), z)
        logits_all.append(logits)
        outer.append((loss.detach(), gz))
    scale = torch.stack([gz.abs().amax(dim=1) for _, gz in outer]).amax(dim=0)
    scale = scale.clamp_min(torch.finfo(torch.float64).tiny)[:, None]
    grad = torch.zeros_like(x)
    for logits, (_, gz) in zip(logits_all, outer, strict=True):
        (g,) = torch.autograd.grad(logits, xs, grad_outputs=(gz / scale).to(logits.dtype))
        grad += g
    mean_loss = torch.stack([loss for loss, _ in outer]).mean(dim=0)
    mean_logits = torch.stack([logits.detach() for logits in logits_all]).mean(dim=0)
    return mean_loss, mean_logits, grad / eot_iter


@dataclass
class RunOutcome:
    """One run (a restart, for one target) over some points: what it found, what it cost.

    ``x`` is the adversarial example where ``success`` holds, else the highest-loss example;
    ``loss`` and ``margin`` are taken at ``x``.
    """

    success: torch.Tensor
    x: torch.Tensor
    loss: torch.Tensor
    margin: torch.Tensor
    cost: Cost


class Tracker:
    """Per-point worst case over runs tried one after another on the points still robust.

    A point's first successful run is final (later runs skip it); until then the example
    with the highest loss is kept.
    """

    def __init__(self, x: torch.Tensor, runs: int) -> None:
        n, device = x.shape[0], x.device
        self.x = x.detach().clone()
        self.success = torch.zeros(n, dtype=torch.bool, device=device)
        self.loss = torch.full((n,), float("-inf"), device=device)
        self.margin = torch.full((n,), float("-inf"), device=device)
        self.rec_loss = torch.full((n, runs), float("nan"), device=device)
        self.rec_success = torch.zeros(n, runs, dtype=torch.bool, device=device)
        self.rec_status = torch.full((n, runs), SKIPPED, dtype=torch.int8, device=device)
        self.cost = Cost()

    def settle_clean(self, broken: torch.Tensor, loss: torch.Tensor, margin_: torch.Tensor) -> None:
        """Points misclassified as they are: broken by the clean input itself."""
        self.success |= broken
        self.loss = torch.where(broken, loss.to(self.loss.dtype), self.loss)
        self.margin = torch.where(broken, margin_.to(self.margin.dtype), self.margin)

    def pending(self) -> torch.Tensor:
        """Indices of the points no run has broken yet."""
        return (~self.success).nonzero().squeeze(1)

    def add(self, points: torch.Tensor, run: int, out: RunOutcome) -> None:
        """Fold run ``run`` over ``points`` (all still robust before it) into the result."""
        self.cost = self.cost + out.cost
        self.rec_status[points, run] = COMPLETE
        self.rec_loss[points, run] = out.loss.to(self.rec_loss.dtype)
        self.rec_success[points, run] = out.success
        better = out.success | (out.loss.to(self.loss.dtype) > self.loss[points])
        chosen = points[better]
        self.x[chosen] = out.x[better].to(self.x.dtype)
        self.loss[chosen] = out.loss[better].to(self.loss.dtype)
        self.margin[chosen] = out.margin[better].to(self.margin.dtype)
        self.success[points] |= out.success

    def result(self) -> AttackResult:
        return AttackResult(
            x_adv=self.x,
            success=self.success,
            loss=self.loss,
            margin=self.margin,
            cost=self.cost,
            restarts=RestartRecords(self.rec_loss, self.rec_success, self.rec_status),
        )
