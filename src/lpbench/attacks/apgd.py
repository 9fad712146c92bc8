"""APGD and APGD-T (Croce & Hein 2020): step-size-free PGD with momentum, its step size
halved where progress stalls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from lpbench.attacks._common import (
    RunOutcome,
    Siblings,
    Tracker,
    ball,
    clip,
    forward,
    keep_rows,
    lockstep_on,
    loss_and_grad,
    require_classes,
    rounds,
    rows_view,
    score_and_loss,
    zero_gradient,
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
    ``eot_iter`` averages the gradient over that many forward passes (randomised models);
    an iterate then counts as adversarial only when every one of them misclassifies it,
    and a run does not stop at a point's first adversarial iterate: it runs on and keeps
    the one with the largest margin (in its least adversarial draw), as the first one the
    draws agree on lies at the boundary, where fresh draws often classify it correctly.

    ``give_up`` (default none, as in the reference) ends a run early on points that make
    too little progress: for each ``(iterations, share)`` pair, a point still robust after
    that many iterations of the run stops there if its best margin so far is below
    ``share`` times its margin at the run's random start (margins are negative while
    robust, so ``share=0.9`` asks for a tenth of the distance to the boundary). With
    several targets it is decided per target: the point goes on to its next target. The
    decision depends only on the point's own run; stopped runs count as robust.

    A run ends at once on a point whose gradient at its start is exactly zero (a
    quantising input layer, say): every step of the reference would leave it there, so
    the outcome is the same and the iterations are not spent.

    ``lockstep`` (None: on CUDA devices only) runs all of a point's runs (targets x
    restarts) in one batch, points grouped to fit ``max_batch`` rows, a run stopping once
    an earlier run of its point has succeeded: the result is that of the runs one after
    another (the same examples and records), in fewer passes through the model, for more
    gradients on the points broken before their last run, whose later runs go on until
    then (``spent`` counts them; a point's cost, like its result, does not depend on its
    batch-mates).

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
    lockstep: bool | None = setting(default=None, config=False)

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
        together = lockstep_on(self.lockstep, x.device)
        runs = n_targets * self.restarts
        for points, begun, count in rounds(track, runs, together, self.max_batch):
            m = points.numel()
            rows = points.repeat(count)
            run = torch.arange(begun, begun + count, device=x.device).repeat_interleave(m)
            t = None if targets is None else targets[rows, run // self.restarts]
            siblings = Siblings.of(m, count, x.device) if count > 1 else None
            out = self._run(model, x[rows], y[rows], t, index[rows], run, siblings)
            track.add_round(points, begun, count, out)
        return track.result()

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor | None,
        index: torch.Tensor,
        run: torch.Tensor,
        siblings: Siblings | None = None,
    ) -> RunOutcome:
        """APGD runs of ``iters`` iterations over points that are all still robust, one
        per row (``run``: each row's run number; ``siblings``: several runs of the same
        points, a row stopping once an earlier run of its point has succeeded).

        The rows still iterating keep their state packed in one batch (:class:`_Live`),
        repacked only when some stop, so an iteration indexes nothing."""
        m = x.shape[0]
        cost = Cost()
        lower, upper = ball(x, self.eps)
        unit = keyed_uniform(self.key, index, run, tuple(x.shape[1:]), dtype=x.dtype) * 2 - 1
        peak = unit.flatten(1).abs().amax(dim=1).clamp_min(1e-12)
        x_cur = clip(x + self.eps * unit / rows_view(peak, x), lower, upper)

        # the smoothed ReLUs act in the model's forward passes only (the backward pass they
        # record is smoothed), not in the bookkeeping around them
        smooth = None if self.smooth_relu is None else SmoothReLUBackward(self.smooth_relu)
        score, loss, logits, grad = loss_and_grad(
            model, x_cur, y, t, self.loss_fn, self.eot_iter, smooth
        )
        cost.gradients += m * self.eot_iter
        cost.forwards += m * self.eot_iter
        success = is_adversarial(logits, y, None)
        start_margin = margin(logits, y, None)
        out_score = torch.where(success, float("inf"), score)
        gave_up = torch.zeros_like(success)
        spent = torch.full((m,), self.eot_iter, dtype=torch.int64, device=x.device)
        out = RunOutcome(
            success,
            x_cur.clone(),
            loss.clone(),
            start_margin.clone(),
            cost,
            out_score,
            gave_up,
            spent,
        )
        history = torch.zeros(m, self.iters + 1, dtype=score.dtype, device=x.device)
        history[:, 0] = score
        live = _Live(
            rows=torch.arange(m, device=x.device),
            x=x_cur,
            prev=x_cur,
            grad=grad,
            lower=lower,
            upper=upper,
            y=y,
            t=t,
            step=torch.full((m,), 2.0 * self.eps, dtype=x.dtype, device=x.device),
            history=history,
            x_best=x_cur,
            grad_best=grad,
            score_best=score,
            loss_best=loss,
            margin_best=start_margin,
            score_best_last=score,
            reduced_last=torch.ones_like(success),
            start_margin=start_margin,
            top_margin=start_margin,
        )
        # a point whose gradient at the start is exactly zero never moves: its first step
        # and every later one (momentum from a zero move) stay at the start, so the run's
        # outcome is the start and its iterations are not spent
        randomised = self.eot_iter > 1  # adversarial points iterate on (see the class)
        stuck = ~success & zero_gradient(grad) if not randomised else torch.zeros_like(success)
        if stuck.any():
            live.settle(stuck, out, out_score)
        done = stuck if randomised else success | stuck
        if siblings is not None:
            done = done | siblings.cut(success)
        if done.any():
            live = live.keep(~done)
        interval, interval_min, interval_decr = step_halving_points(self.iters)
        since_check = 0
        give_up = dict(self.give_up)
        for i in range(self.iters):
            if i in give_up:
                slow = ~success[live.rows] & (live.top_margin < give_up[i] * live.start_margin)
                if slow.any():
                    gave_up[live.rows[slow]] = True
                    live.settle(slow, out, out_score)
                    live = live.keep(~slow)
            if live.rows.numel() == 0:
                break
            momentum = 0.75 if i > 0 else 1.0
            xc, lo, hi = live.x, live.lower, live.upper
            moved = xc - live.prev
            z = clip(xc + rows_view(live.step, xc) * live.grad.sign(), lo, hi)
            x_new = clip(xc + momentum * (z - xc) + (1 - momentum) * moved, lo, hi)

            score, loss, logits, g = loss_and_grad(
                model, x_new, live.y, live.t, self.loss_fn, self.eot_iter, smooth
            )
            cost.gradients += x_new.shape[0] * self.eot_iter
            cost.forwards += x_new.shape[0] * self.eot_iter
            spent[live.rows] += self.eot_iter
            marg = margin(logits, live.y, None)
            live.top_margin = torch.maximum(live.top_margin, marg)
            hit = is_adversarial(logits, live.y, None)
            live.history[:, i + 1] = score
            better = score > live.score_best
            rows_better = rows_view(better, x_new)
            live.x_best = torch.where(rows_better, x_new, live.x_best)
            live.grad_best = torch.where(rows_better, g, live.grad_best)
            live.score_best = torch.where(better, score, live.score_best)
            live.loss_best = torch.where(better, loss, live.loss_best)
            live.margin_best = torch.where(better, marg, live.margin_best)
            live.prev, live.x, live.grad = xc, x_new, g

            since_check += 1
            if since_check == interval:
                window = live.history[:, i + 1 - interval : i + 2]
                rises = (window[:, 1:] > window[:, :-1]).sum(dim=1)
                oscillating = rises <= interval * self.rho
                stalled = ~live.reduced_last & (live.score_best_last >= live.score_best)
                reduce = oscillating | stalled
                live.reduced_last = reduce
                live.score_best_last = live.score_best
                live.step = torch.where(reduce, live.step / 2.0, live.step)
                back = rows_view(reduce, x_new)
                live.x = torch.where(back, live.x_best, live.x)
                live.grad = torch.where(back, live.grad_best, live.grad)
                since_check = 0
                interval = max(interval - interval_decr, interval_min)
            if hit.any():
                if randomised:  # keep the deepest adversarial iterate, iterate on
                    hit = hit & (~success[live.rows] | (marg > out.margin[live.rows]))
                won = live.rows[hit]
                out.x[won], out.loss[won], out.margin[won] = x_new[hit], loss[hit], marg[hit]
                success[won] = True
                out_score[won] = float("inf")
                if not randomised:
                    live = live.keep(~hit)
                if siblings is not None:
                    cut = siblings.cut(success)[live.rows]
                    if cut.any():
                        live.settle(cut, out, out_score)
                        live = live.keep(~cut)
        live.settle(~success[live.rows], out, out_score)
        return out


@dataclass
class _Live:
    """The points an APGD run still iterates on, packed in one batch in the points' order:
    ``rows`` are their positions in the run; the rest is their state (iterate, the one
    before it, its gradient, the ball, step size, score history, best iterate so far,
    margins for ``give_up``)."""

    rows: torch.Tensor
    x: torch.Tensor
    prev: torch.Tensor
    grad: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    y: torch.Tensor
    t: torch.Tensor | None
    step: torch.Tensor
    history: torch.Tensor
    x_best: torch.Tensor
    grad_best: torch.Tensor
    score_best: torch.Tensor
    loss_best: torch.Tensor
    margin_best: torch.Tensor
    score_best_last: torch.Tensor
    reduced_last: torch.Tensor
    start_margin: torch.Tensor
    top_margin: torch.Tensor

    def keep(self, keep: torch.Tensor) -> _Live:
        """Only the points where ``keep`` holds."""
        return keep_rows(self, keep)

    def settle(self, mask: torch.Tensor, out: RunOutcome, score: torch.Tensor) -> None:
        """The points where ``mask`` holds end the run robust: their best iterate is the
        run's result (``score``: the run's scores, ``out.score``)."""
        rows = self.rows[mask]
        out.x[rows], out.loss[rows] = self.x_best[mask], self.loss_best[mask]
        out.margin[rows], score[rows] = self.margin_best[mask], self.score_best[mask]


@attack_settings
class APGDT(APGD):
    """APGD-T: APGD on the targeted DLR loss over each point's top ``targets`` classes
    (``loss`` and ``targeted`` are fixed)."""

    name = "apgd-t"

    loss: str = setting(default="dlr", init=False)
    targeted: bool = setting(default=True, init=False)
