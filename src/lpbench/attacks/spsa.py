"""SPSA (Uesato et al. 2018): gradient-free attack with Adam on a finite-difference estimate."""

from __future__ import annotations

from dataclasses import KW_ONLY
from typing import ClassVar

import torch
from torch import nn

from lpbench.attacks._common import RunOutcome, Tracker, ball, clip, forward
from lpbench.attacks.base import Attack, AttackResult, Cost, attack_settings, count_at_least
from lpbench.attacks.keyed import keyed_signs, keyed_uniform
from lpbench.attacks.losses import is_adversarial, margin

_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


@attack_settings
class SPSA(Attack):
    """SPSA on the margin loss, L-infinity, as cleverhans ships it (lr 0.01, delta 0.01).

    A run starts uniformly in the eps-ball. Per iteration the margin's gradient at the
    iterate is estimated from ``samples`` queries at ``iterate +- delta * v`` (``samples/2``
    Rademacher directions ``v``, each with its antithetic pair, keyed by point, restart and
    iteration), Adam takes an ascent step of ``lr`` and the iterate is projected onto the
    eps-ball and [0, 1]; one more query judges it. A point stops at its first
    misclassified query; queries per point and run: at most ``1 + iters * (samples + 1)``.
    Points misclassified as given are broken by the clean input (one forward pass each,
    not counted as a query).
    """

    name = "spsa"
    renamed: ClassVar[dict[str, str]] = {"n_iter": "iters"}

    iters: int = 100
    restarts: int = 1
    _: KW_ONLY
    samples: int = 8192
    lr: float = 0.01
    delta: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples < 2 or self.samples % 2:
            raise ValueError(f"samples must be even and >= 2, got {self.samples}")
        if self.lr <= 0 or self.delta <= 0:
            raise ValueError("lr and delta must be positive")
        self.iters = count_at_least("iters", self.iters, 0)
        self.restarts = count_at_least("restarts", self.restarts, 1)
        self.samples = int(self.samples)
        self.lr = float(self.lr)
        self.delta = float(self.delta)

    def max_spend_per_point(self) -> int:
        return self.restarts * (1 + self.iters * (self.samples + 1))

    def rows_per_point(self, points: int) -> int:
        return min(self.samples, self.max_batch)

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
    ) -> AttackResult:
        track = Tracker(x, self.restarts)
        clean = forward(model, x, self.max_batch)
        track.cost.forwards += x.shape[0]
        track.settle_clean(
            is_adversarial(clean, y, None), margin(clean, y, target), margin(clean, y, None)
        )
        for r in range(self.restarts):
            points = track.pending()
            if points.numel() == 0:
                break
            t = None if target is None else target[points]
            track.add(points, r, self._run(model, x[points], y[points], t, index[points], r))
        return track.result()

    def estimate_gradient(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        index: torch.Tensor,
        restart: int,
        it: int,
    ) -> torch.Tensor:
        """SPSA estimate of the margin's input gradient at ``x`` (``samples`` queries a row)."""
        m, shape, half = x.shape[0], tuple(x.shape[1:]), self.samples // 2
        v = keyed_signs(self.key, index, restart, (half, *shape), stream=it + 1, dtype=x.dtype)
        v = torch.cat([v, -v], dim=1)  # (m, samples, ...)
        probes = (x[:, None] + self.delta * v).reshape(m * self.samples, *shape)
        rep = torch.arange(m, device=x.device).repeat_interleave(self.samples)
        logits = forward(model, probes, self.max_batch)
        loss = margin(logits, y[rep], None if target is None else target[rep]).view(m, -1)
        weights = loss.view(m, self.samples, *([1] * len(shape)))
        return (weights * v).mean(dim=1) / self.delta

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor | None,
        index: torch.Tensor,
        restart: int,
    ) -> RunOutcome:
        """One SPSA run of ``iters`` Adam steps over still-robust points."""
        m = x.shape[0]
        cost = Cost()
        lower, upper = ball(x, self.eps)
        unit = keyed_uniform(self.key, index, restart, tuple(x.shape[1:]), dtype=x.dtype)
        x_cur = clip(x + (unit * 2 - 1) * self.eps, lower, upper)
        logits = forward(model, x_cur, self.max_batch)
        cost.queries += m
        cost.forwards += m
        best, best_loss = x_cur.clone(), margin(logits, y, t)
        best_margin = margin(logits, y, None)
        success = is_adversarial(logits, y, None)
        moment1, moment2 = torch.zeros_like(x), torch.zeros_like(x)
        for it in range(self.iters):
            idx = (~success).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            ti = None if t is None else t[idx]
            grad = self.estimate_gradient(model, x_cur[idx], y[idx], ti, index[idx], restart, it)
            moment1[idx] = _BETAS[0] * moment1[idx] + (1 - _BETAS[0]) * grad
            moment2[idx] = _BETAS[1] * moment2[idx] + (1 - _BETAS[1]) * grad**2
            m_hat = moment1[idx] / (1 - _BETAS[0] ** (it + 1))
            v_hat = moment2[idx] / (1 - _BETAS[1] ** (it + 1))
            stepped = x_cur[idx] + self.lr * m_hat / (v_hat.sqrt() + _ADAM_EPS)
            x_cur[idx] = clip(stepped, lower[idx], upper[idx])
            logits = forward(model, x_cur[idx], self.max_batch)
            cost.queries += idx.numel() * (self.samples + 1)
            cost.forwards += idx.numel() * (self.samples + 1)
            loss = margin(logits, y[idx], ti)
            hit = is_adversarial(logits, y[idx], None)
            take = hit | (loss > best_loss[idx])
            chosen = idx[take]
            best[chosen] = x_cur[chosen]
            best_loss[chosen] = loss[take]
            best_margin[chosen] = margin(logits[take], y[chosen], None)
            success[idx[hit]] = True
        return RunOutcome(success, best, best_loss, best_margin, cost)
