"""FGSM (Goodfellow et al. 2015): one signed gradient step, optionally from a random start."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lpbench.attacks._common import ball, clip, loss_and_grad, rows_view
from lpbench.attacks.base import Attack, AttackResult, Cost, count_at_least
from lpbench.attacks.keyed import keyed_uniform
from lpbench.attacks.losses import get_loss, is_adversarial, margin


class FGSM(Attack):
    """One step of ``step`` (default eps) along the loss gradient's sign, then projected.

    ``random_start`` starts uniformly in the eps-ball (keyed per point). The example is
    judged by one more forward pass: success means misclassified, also when a ``target``
    is given (the loss then descends towards it); a point misclassified as given keeps
    its clean input (one forward pass). ``eot_iter`` averages the gradient.
    """

    name = "fgsm"

    def __init__(
        self,
        eps: float,
        *,
        step: float | None = None,
        random_start: bool = False,
        loss: str = "ce",
        eot_iter: int = 1,
        seed: int = 0,
        stream: str | None = None,
        max_batch: int = 10_000,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(eps, seed=seed, stream=stream, max_batch=max_batch, model_mode=model_mode)
        if step is not None and not 0 < step <= 1:
            raise ValueError(f"step must be in (0, 1], got {step}")
        self.step = self.eps if step is None else float(step)
        self.random_start = random_start
        self.loss_name = loss
        self.loss_fn = get_loss(loss)
        self.eot_iter = count_at_least("eot_iter", eot_iter, 1)

    def config(self) -> dict[str, Any]:
        return {
            **self.base_config(),
            "step": self.step,
            "random_start": self.random_start,
            "loss": self.loss_name,
            "eot_iter": self.eot_iter,
        }

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
    ) -> AttackResult:
        n = x.shape[0]
        lower, upper = ball(x, self.eps)
        start = x.clone()
        if self.random_start:
            unit = keyed_uniform(self.key, index, 0, tuple(x.shape[1:]), dtype=x.dtype)
            start = clip(x + (unit * 2 - 1) * self.eps, lower, upper)
        *_, grad = loss_and_grad(model, start, y, target, self.loss_fn, self.eot_iter)
        x_adv = clip(start + self.step * grad.sign(), lower, upper)
        with torch.no_grad():
            clean = model(x)
            logits = model(x_adv)
        wrong = is_adversarial(clean, y, None)  # broken by the clean input itself
        logits = torch.where(wrong[:, None], clean, logits)
        return AttackResult(
            x_adv=torch.where(rows_view(wrong, x), x, x_adv),
            success=is_adversarial(logits, y, None),
            loss=self.loss_fn(logits, y, target),
            margin=margin(logits, y, None),
            cost=Cost(gradients=n * self.eot_iter, forwards=n * (self.eot_iter + 2)),
        )
