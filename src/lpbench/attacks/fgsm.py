"""FGSM (Goodfellow et al. 2015) and its iterated form (BIM, Kurakin et al. 2017)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY
from typing import Any, ClassVar

import torch
from torch import nn

from lpbench.attacks._common import (
    ball,
    clip,
    forward,
    least_adversarial,
    loss_and_grad,
    zero_gradient,
)
from lpbench.attacks.base import Attack, AttackResult, Cost, attack_settings, count_at_least
from lpbench.attacks.keyed import keyed_uniform
from lpbench.attacks.losses import get_loss, is_adversarial, margin


@attack_settings
class FGSM(Attack):
    """Up to ``iters`` (default 1) steps of ``step`` (default eps) along the loss
    gradient's sign, each projected onto the eps-ball; ``step`` may instead give the size
    of each step (a sequence: ``iters`` is then its length).

    ``random_start`` starts uniformly in the eps-ball (keyed per point); ``x_init`` (a
    starting point per input, in its eps-ball) starts there instead. Each step is judged
    by a forward pass, and a point stops at its first adversarial step: success means
    misclassified, also when a ``target`` is given (the loss then descends towards it).
    A point left robust keeps its step nearest the boundary (largest margin); a point
    misclassified as given keeps its clean input. A point whose gradient is exactly zero
    stops where it is (every later step would leave it there). Cost: one gradient per
    point and step taken (``eot_iter`` averages that many, and a step is then judged on
    that many draws, adversarial only when every one misclassifies it); the forward passes
    that judge the steps are counted as forward passes, not gradients.
    """

    name = "fgsm"
    takes_start = True
    renamed: ClassVar[dict[str, str]] = {"steps": "iters"}

    _: KW_ONLY
    step: float | Sequence[float] | None = None
    iters: int = 1
    random_start: bool = False
    loss: str = "ce"
    eot_iter: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        step = self.step
        sizes = (
            [step] * count_at_least("iters", self.iters, 1)
            if not isinstance(step, Sequence)
            else step
        )
        if not sizes:
            raise ValueError("step needs at least one size")
        if not all(size is None or 0 < size <= 1 for size in sizes):
            raise ValueError(f"step sizes must be in (0, 1], got {step}")
        self.sizes = [self.eps if size is None else float(size) for size in sizes]
        self.iters = len(self.sizes)
        self.loss_fn = get_loss(self.loss)
        self.eot_iter = count_at_least("eot_iter", self.eot_iter, 1)

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "step": self.sizes[0] if len(set(self.sizes)) == 1 else self.sizes
        }

    def max_spend_per_point(self) -> int:
        return self.iters * self.eot_iter

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
        x_init: torch.Tensor | None = None,
    ) -> AttackResult:
        n = x.shape[0]
        lower, upper = ball(x, self.eps)
        start = x.clone()
        if x_init is not None:
            start = clip(x_init, lower, upper)
        elif self.random_start:
            unit = keyed_uniform(self.key, index, 0, tuple(x.shape[1:]), dtype=x.dtype)
            start = clip(x + (unit * 2 - 1) * self.eps, lower, upper)
        clean = forward(model, x, self.max_batch)
        cost = Cost(forwards=n)
        wrong = is_adversarial(clean, y, None)  # broken by the clean input itself
        x_adv, logits = x.clone(), clean.clone()
        best = torch.full((n,), float("-inf"), dtype=clean.dtype, device=x.device)
        spent = torch.zeros(n, dtype=torch.int64, device=x.device)
        # the points still stepping, their iterates, balls, labels and targets packed in
        # one batch (repacked only when some break)
        live = (~wrong).nonzero().squeeze(1)
        current, lower, upper, y_live = start[live], lower[live], upper[live], y[live]
        t = None if target is None else target[live]
        for size in self.sizes:
            if live.numel() == 0:
                break
            *_, here, grad = loss_and_grad(model, current, y_live, t, self.loss_fn, self.eot_iter)
            # a zero gradient leaves this step and every later one where the point is: its
            # candidate is its current iterate, whose logits are known, and it stops there
            still = zero_gradient(grad) if self.eot_iter == 1 else torch.zeros_like(live).bool()
            moved = clip(current + size * grad.sign(), lower, upper)
            found = here.clone()
            if not still.all():  # judged on eot_iter draws: adversarial only if all are
                draws = [
                    forward(model, moved[~still], self.max_batch) for _ in range(self.eot_iter)
                ]
                found[~still] = least_adversarial(draws, y_live[~still])
            cost = cost + Cost(
                gradients=live.numel() * self.eot_iter,
                forwards=(live.numel() + int((~still).sum())) * self.eot_iter,
            )
            spent[live] += self.eot_iter
            gap = margin(found, y_live, None)
            closer = gap > best[live]  # keep each point's iterate nearest the boundary
            x_adv[live[closer]], logits[live[closer]], best[live[closer]] = (
                moved[closer],
                found[closer],
                gap[closer],
            )
            current = moved
            going = ~is_adversarial(found, y_live, None) & ~still
            if not going.all():
                live, current, lower, upper, y_live = (
                    v[going] for v in (live, current, lower, upper, y_live)
                )
                t = None if t is None else t[going]
        return AttackResult(
            x_adv=x_adv,
            success=is_adversarial(logits, y, None),
            loss=self.loss_fn(logits, y, target),
            margin=margin(logits, y, None),
            cost=cost,
            spent=spent,
        )
