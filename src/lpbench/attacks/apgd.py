"""APGD and APGD-T (Croce & Hein 2020): step-size-free PGD with momentum, its step size
halved where progress stalls."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import KW_ONLY
from typing import Any, ClassVar

import torch
from torch import nn

from lpbench.attacks._common import (
    RunOutcome,
    Tracker,
    ball,
    clip,
    forward,
    loss_and_grad,
    require_classes,
    rows_view,
    score_and_loss,
)
from lpbench.attacks.base import (
    Attack,
    AttackResult,
    Cost,
    attack_settings,
    checked_give_up,
    count_at_least,
    setting,
)
from lpbench.attacks.keyed import keyed_uniform
from lpbench.attacks.losses import get_loss, is_adversarial, margin
from lpbench.attacks.smooth import SmoothReLUBackward, computes_relu
from lpbench.attacks.targets import top_other_classes


def step_halving_points(iters: int) -> tuple[int, int, int]:
    """The iterations between the first two points where the step size may halve, their
    least spacing and its decrease from one interval to the next (22%, 6% and 3% of
    ``iters``)."""
    return max(int(0.22 * iters), 1), max(int(0.06 * iters), 1), max(int(0.03 * iters), 1)


@attack_settings
class APGD(Attack):
    """Auto-PGD, L-infinity (Croce & Hein 2020), untargeted or targeted.

    Each run starts at a random corner-touching point of the eps-ball (keyed per point and
    run), takes a first step of 2*eps and then momentum steps (0.75); at step-halving points
    (after 22% of ``iters``, then at intervals shrinking by 3% down to 6%) a point's step is
    halved and it goes back to its best iterate when its loss rose in at most ``rho`` of
    the steps since the last such point, or when its best loss did not improve while its
    step was not halved at the last one. All decisions are per point.

    ``targeted``: every run steers towards one target class; the targets are each point's
    ``targets`` highest-scoring other classes of the clean input (capped at
    ``classes - 1``), tried in that order with ``restarts`` runs each. An explicit
    ``target`` passed to the call is the only target (also when ``targeted`` is False).
    Success means misclassified, as for every lpbench attack; a point's runs stop at its
    first adversarial iterate and points already misclassified are not attacked.
    ``eot_iter`` averages the gradient over that many forward passes (randomised models).

    ``give_up`` (default none, as in the reference) ends a run early on points that make
    too little progress: for each ``(iterations, share)`` pair, a point still robust after
    that many iterations of the run stops there if its best margin so far is below
    ``share`` times its margin at the run's random start (margins are negative while
    robust, so ``share=0.9`` asks for a tenth of the distance to the boundary). With
    several targets it is decided per target: the point goes on to its next target. The
    decision depends only on the point's own run; stopped runs count as robust.

    ``smooth_relu`` (default none, as in the reference): backpropagate every ReLU of the
    model as ``sigmoid(smooth_relu * x)`` instead of its step (ReLU6, LeakyReLU, Hardtanh,
    ``clamp`` and the other kinks alike), the forward pass left exact
    (:class:`~lpbench.attacks.smooth.SmoothReLUBackward`); steps then see the units a
    masking model keeps off. A model with no ReLU it can smooth raises ValueError.

    Loss and gradient are computed from float64 logits, cross-entropy in a closed form
    that cannot underflow, with a rescaled backward pass: a confident model's
    cross-entropy, 0 in float32, still gives the sign of its gradient, and iterates are
    ranked by ``logsumexp(other logits) - logit[y]``, which orders them like the
    cross-entropy but does not round to 0.
    """

    name = "apgd"
    renamed: ClassVar[dict[str, str]] = {"n_iter": "iters", "n_target_classes": "targets"}

    iters: int = 100
    restarts: int = 1
    _: KW_ONLY
    loss: str = "ce"
    targeted: bool = False
    targets: int = 9
    eot_iter: int = 1
    rho: float = 0.75
    give_up: Sequence[tuple[int, float]] = ()
    smooth_relu: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.give_up = checked_give_up(self.give_up)
        if self.smooth_relu is not None and not self.smooth_relu > 0:
            raise ValueError(f"smooth_relu must be positive (or None), got {self.smooth_relu}")
        self.smooth_relu = None if self.smooth_relu is None else float(self.smooth_relu)
        if not 0 < self.rho < 1:
            raise ValueError(f"rho must be in (0, 1), got {self.rho}")
        self.iters = count_at_least("iters", self.iters, 1)
        self.restarts = count_at_least("restarts", self.restarts, 1)
        self.loss_fn = get_loss(self.loss)
        self.targeted = bool(self.targeted)
        self.targets = count_at_least("targets", self.targets, 1)
        self.eot_iter = count_at_least("eot_iter", self.eot_iter, 1)
        self.rho = float(self.rho)

    def config(self) -> dict[str, Any]:
        config = super().config()
        if self.smooth_relu is None:  # as before smoothing existed
            del config["smooth_relu"]
        return config

    def max_spend_per_point(self) -> int:
        """All runs to their end: a gradient at the start and one per iteration, per run.
        Targeted, it is charged for all ``targets`` even when a model has fewer other
        classes (it then spends less)."""
        runs = self.restarts * (self.targets if self.targeted else 1)
        return runs * (self.iters + 1) * self.eot_iter

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
    ) -> AttackResult:
        if self.smooth_relu is not None and x.shape[0] and not computes_relu(model, x[:1]):
            raise ValueError(
                "smooth_relu is set but the model computes no ReLU that can be smoothed "
                "(lpbench.attacks.smooth): there is nothing to smooth; use smooth_relu=None"
            )
        clean = forward(model, x, self.max_batch)
        require_classes(clean.shape[1], self.loss, self.targeted or target is not None)
        targets: torch.Tensor | None = None
        if target is not None:
            targets = target[:, None]
        elif self.targeted:
            targets = top_other_classes(clean, y, self.targets)
        n_targets = 1 if targets is None else targets.shape[1]
        track = Tracker(x, n_targets * self.restarts)
        track.cost.forwards += x.shape[0]
        first = None if targets is None else targets[:, 0]
        _, clean_loss = score_and_loss(clean, y, first, self.loss_fn)
        track.settle_clean(is_adversarial(clean, y, None), clean_loss, margin(clean, y, None))
        smooth = self.smooth_relu
        with nullcontext() if smooth is None else SmoothReLUBackward(smooth):
            for j in range(n_targets):
                for r in range(self.restarts):
                    points = track.pending()
                    if points.numel() == 0:
                        break
                    run = j * self.restarts + r
                    t = None if targets is None else targets[points, j]
                    out = self._run(model, x[points], y[points], t, index[points], run)
                    track.add(points, run, out)
        return track.result()

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor | None,
        index: torch.Tensor,
        run: int,
    ) -> RunOutcome:
        """One APGD run of ``iters`` iterations over points that are all still robust."""
        m, device = x.shape[0], x.device
        cost = Cost()
        lower, upper = ball(x, self.eps)
        unit = keyed_uniform(self.key, index, run, tuple(x.shape[1:]), dtype=x.dtype) * 2 - 1
        peak = unit.flatten(1).abs().amax(dim=1).clamp_min(1e-12)
        x_cur = clip(x + self.eps * unit / rows_view(peak, x), lower, upper)

        score, loss, logits, grad = loss_and_grad(model, x_cur, y, t, self.loss_fn, self.eot_iter)
        cost.gradients += m * self.eot_iter
        cost.forwards += m * self.eot_iter
        success = is_adversarial(logits, y, None)
        out_x, out_loss, out_margin = x_cur.clone(), loss.clone(), margin(logits, y, None)
        x_best, grad_best, score_best = x_cur.clone(), grad.clone(), score.clone()
        loss_best, margin_best = loss.clone(), out_margin.clone()
        x_prev = x_cur.clone()
        step = torch.full((m,), 2.0 * self.eps, dtype=x.dtype, device=device)
        history = torch.zeros(m, self.iters + 1, dtype=score.dtype, device=device)
        history[:, 0] = score
        interval, interval_min, interval_decr = step_halving_points(self.iters)
        since_check = 0
        reduced_last = torch.ones(m, dtype=torch.bool, device=device)
        score_best_last = score_best.clone()
        active = ~success
        give_up = dict(self.give_up)
        start_margin, top_margin = out_margin.clone(), out_margin.clone()
        stopped = torch.zeros_like(success)
        for i in range(self.iters):
            if i in give_up:
                slow = active & (top_margin < give_up[i] * start_margin)
                stopped |= slow
                active &= ~slow
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xc, lo, hi = x_cur[idx], lower[idx], upper[idx]
            momentum = 0.75 if i > 0 else 1.0
            moved = xc - x_prev[idx]
            x_prev[idx] = xc
            z = clip(xc + rows_view(step[idx], xc) * grad[idx].sign(), lo, hi)
            x_new = clip(xc + momentum * (z - xc) + (1 - momentum) * moved, lo, hi)

            ti = None if t is None else t[idx]
            score, loss, logits, g = loss_and_grad(
                model, x_new, y[idx], ti, self.loss_fn, self.eot_iter
            )
            cost.gradients += idx.numel() * self.eot_iter
            cost.forwards += idx.numel() * self.eot_iter
            marg = margin(logits, y[idx], None)
            top_margin[idx] = torch.maximum(top_margin[idx], marg)
            hit = is_adversarial(logits, y[idx], None)
            won = idx[hit]
            out_x[won], out_loss[won], out_margin[won] = x_new[hit], loss[hit], marg[hit]
            success[won] = True
            active[won] = False

            history[idx, i + 1] = score
            better = score > score_best[idx]
            up = idx[better]
            x_best[up], grad_best[up], score_best[up] = x_new[better], g[better], score[better]
            loss_best[up], margin_best[up] = loss[better], marg[better]
            x_cur[idx], grad[idx] = x_new, g

            since_check += 1
            if since_check == interval:
                window = history[idx, i + 1 - interval : i + 2]
                rises = (window[:, 1:] > window[:, :-1]).sum(dim=1)
                oscillating = rises <= interval * self.rho
                stalled = ~reduced_last[idx] & (score_best_last[idx] >= score_best[idx])
                reduce = oscillating | stalled
                reduced_last[idx] = reduce
                score_best_last[idx] = score_best[idx]
                back = idx[reduce]
                step[back] /= 2.0
                x_cur[back], grad[back] = x_best[back], grad_best[back]
                since_check = 0
                interval = max(interval - interval_decr, interval_min)
        failed = ~success
        out_x[failed], out_loss[failed] = x_best[failed], loss_best[failed]
        out_margin[failed] = margin_best[failed]
        out_score = torch.where(failed, score_best, torch.full_like(score_best, float("inf")))
        return RunOutcome(success, out_x, out_loss, out_margin, cost, out_score, gave_up=stopped)


@attack_settings
class APGDT(APGD):
    """APGD-T: APGD on the targeted DLR loss over each point's top ``targets`` classes
    (``loss`` and ``targeted`` are fixed)."""

    name = "apgd-t"

    loss: str = setting(default="dlr", init=False)
    targeted: bool = setting(default=True, init=False)
