"""FAB-T (Croce & Hein 2020): targeted fast adaptive boundary attack, L-infinity."""

from __future__ import annotations

from dataclasses import KW_ONLY
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
    lockstep_on,
    rounds,
    rows_view,
    zero_gradient,
)
from lpbench.attacks.base import (
    Attack,
    AttackResult,
    Cost,
    attack_settings,
    count_at_least,
    setting,
)
from lpbench.attacks.keyed import keyed_uniform
from lpbench.attacks.losses import is_adversarial, margin
from lpbench.attacks.targets import top_other_classes

PROJECTION_HALVINGS = 8
"""Bisection steps that bracket the projection's step size before its exact solve."""


def project_linf(
    z: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest L-infinity step ``d`` with ``w . (z + d) = b`` and ``z + d`` in [0, 1].

    Rows are flat. Moving every coordinate by ``lam`` towards the hyperplane (each stopping
    at the box) changes ``w . z`` by ``reach(lam)``, a concave, piecewise-linear,
    increasing function whose breakpoints are the coordinates' distances to the box.
    Bisection brackets ``lam`` in ``(lo, hi]``; distances up to ``lo`` are saturated,
    those from ``hi`` on are free, and sorting the few in between gives ``lam`` exactly
    (sorting whole rows cost four times all the rest). When the hyperplane is out of reach
    inside the box, every coordinate goes to the box's face. Returns ``(d, reachable)``.
    """
    n = z.shape[0]
    need = b - torch.linalg.vecdot(w, z)
    direction = torch.sign(w) * torch.sign(need)[:, None]
    moving = direction.abs()  # arithmetic masks: torch.where on whole rows is slow on CPU
    room = (z - (direction + moving) / 2).abs() * moving  # 1 - z going up, z going down
    weight = w.abs() * moving
    gap = need.abs()
    widest = room.amax(dim=1)
    reachable = torch.linalg.vecdot(weight, room) >= gap
    lo, hi, reach_lo = torch.zeros_like(gap), widest, torch.zeros_like(gap)
    for _ in range(PROJECTION_HALVINGS):  # keeps reach(lo) < gap <= reach(hi)
        mid = (lo + hi) / 2
        reach_mid = torch.linalg.vecdot(weight, torch.minimum(room, mid[:, None]))
        up = reach_mid >= gap
        lo, hi = torch.where(up, lo, mid), torch.where(up, mid, hi)
        reach_lo = torch.where(up, reach_lo, reach_mid)
    rows, cols = ((room > lo[:, None]) & (room < hi[:, None])).nonzero(as_tuple=True)
    count = torch.bincount(rows, minlength=n)
    width = int(count.max()) if rows.numel() else 0
    slot = torch.arange(rows.numel(), device=z.device) - (torch.cumsum(count, 0) - count)[rows]
    # the bracket's breakpoints, padded with weightless ones at hi; then every free
    # coordinate as one breakpoint at hi (none of them saturates before lam)
    room_sorted = hi[:, None].repeat(1, width + 1)
    weight_sorted = torch.zeros_like(room_sorted)
    room_sorted[rows, slot] = room[rows, cols]
    weight_sorted[rows, slot] = weight[rows, cols]
    room_sorted[:, :width], order = room_sorted[:, :width].sort(dim=1)
    weight_sorted[:, :width] = weight_sorted[:, :width].gather(1, order)
    weight_sorted[:, width] = torch.linalg.vecdot(weight, (room >= hi[:, None]).to(z.dtype))
    # reach(lo) = (saturated coordinates' w . room) + lo * (weight of all the others);
    # running sums only (the padding adds exact zeros), so a row's result does not
    # depend on the other rows' widths
    weight_before = torch.cumsum(weight_sorted, dim=1)
    total = weight_before[:, -1:]
    base = reach_lo - lo * total[:, 0]
    below = base[:, None] + torch.cumsum(weight_sorted * room_sorted, dim=1)
    left = total - weight_before
    reach = below + room_sorted * left  # reach(lam) at each breakpoint
    k = (reach < gap[:, None]).sum(dim=1).clamp(max=width)  # segment holding lam
    done_before = torch.where(
        k > 0, below.gather(1, (k - 1).clamp(min=0)[:, None]).squeeze(1), base
    )
    free = left.gather(1, k[:, None]).squeeze(1) + weight_sorted.gather(1, k[:, None]).squeeze(1)
    lam = (gap - done_before) / free.clamp_min(1e-12)
    lam = torch.where(reachable, lam, widest)
    return direction * torch.minimum(room, lam[:, None]), reachable


@attack_settings
class FAB(Attack):
    """FAB-T, L-infinity (Croce & Hein 2020): always targeted.

    Each run targets one class: each point's ``targets`` highest-scoring other
    classes of the clean input after the first ``skip_targets`` of them (capped at
    ``classes - 1`` in all), in that order, ``restarts`` runs each (the first from the
    clean point, later ones from a random point at eps/2, keyed per point and run, the
    run numbered by the target's rank, so that ranks split over two attacks run exactly
    as in one); an explicit ``target`` passed to the call is the only target.
    An iteration linearises ``logit[target] - logit[y]`` at the iterate, projects both the
    iterate and the clean point onto the approximate boundary within [0, 1], mixes the two
    (weight at most ``alpha_max`` on the clean side), overshoots by ``eta`` and, once
    misclassified, steps back towards the clean point by ``beta``. A point counts as
    broken when an iterate within the eps-ball is misclassified (its run stops there).
    For a point left robust, ``x_adv`` is the smallest adversarial iterate found (else the
    last iterate) clipped into the eps-ball, one more forward pass (it counts as broken if
    that clipped example is misclassified). Loss reported: the margin. A run from the
    clean point ends at once on a point whose gradient there is exactly zero (the
    reference's steps would keep it at the clean point, up to rounding). ``lockstep``
    (None: on CUDA devices only): a point's runs in one batch, as in
    :class:`~lpbench.attacks.APGD`.
    """

    name = "fab-t"
    renamed: ClassVar[dict[str, str]] = {"n_iter": "iters", "n_target_classes": "targets"}

    iters: int = 100
    restarts: int = 1
    _: KW_ONLY
    targets: int = 9
    skip_targets: int = 0
    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9
    lockstep: bool | None = setting(default=None, config=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.iters = count_at_least("iters", self.iters, 1)
        self.restarts = count_at_least("restarts", self.restarts, 1)
        self.targets = count_at_least("targets", self.targets, 1)
        self.skip_targets = count_at_least("skip_targets", self.skip_targets, 0)
        self.alpha_max = float(self.alpha_max)
        self.eta = float(self.eta)
        self.beta = float(self.beta)

    def config(self) -> dict[str, Any]:
        return super().config() | {"targeted": True}

    def max_spend_per_point(self) -> int:
        """Every run to its end, charged for all ``targets`` (fewer with fewer classes)."""
        return self.restarts * self.targets * self.iters

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
    ) -> AttackResult:
        clean = forward(model, x, self.max_batch)
        skip = self.skip_targets
        if target is not None:
            skip, targets = 0, target[:, None]
        elif skip >= clean.shape[1] - 1:
            raise ValueError(
                f"skip_targets={skip} leaves no target: the model has {clean.shape[1]} classes"
            )
        else:
            targets = top_other_classes(clean, y, skip + self.targets)[:, skip:]
        track = Tracker(x, targets.shape[1] * self.restarts)
        track.cost.forwards += x.shape[0]
        clean_margin = margin(clean, y, None)
        track.settle_clean(is_adversarial(clean, y, None), clean_margin, clean_margin)
        together = lockstep_on(self.lockstep, x.device)
        runs = targets.shape[1] * self.restarts
        for points, begun, count in rounds(track, runs, together, self.max_batch):
            m = points.numel()
            rows = points.repeat(count)
            run = torch.arange(begun, begun + count, device=x.device).repeat_interleave(m)
            t = targets[rows, run // self.restarts]
            siblings = Siblings.of(m, count, x.device) if count > 1 else None
            out = self._run(
                model, x[rows], y[rows], t, index[rows], skip * self.restarts + run, siblings
            )
            track.add_round(points, begun, count, out)
        return track.result()

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor,
        index: torch.Tensor,
        run: torch.Tensor,
        siblings: Siblings | None = None,
    ) -> RunOutcome:
        """FAB-T runs of ``iters`` iterations towards ``t`` over still-robust points, one
        per row (``run``: each row's run number, the target's rank counted; ``siblings``:
        several runs of the same points, a row stopping once an earlier run of its point
        has succeeded)."""
        m, device = x.shape[0], x.device
        cost = Cost()
        lower, upper = ball(x, self.eps)
        x1 = x.clone()
        from_clean = run % self.restarts == 0
        if not from_clean.all():  # later restarts start at a random point at eps / 2
            unit = keyed_uniform(self.key, index, run, tuple(x.shape[1:]), dtype=x.dtype) * 2 - 1
            peak = unit.flatten(1).abs().amax(dim=1).clamp_min(1e-12)
            start = (x + 0.5 * self.eps * unit / rows_view(peak, x)).clamp(0.0, 1.0)
            x1 = torch.where(rows_view(from_clean, x), x1, start)
        x0 = x.flatten(1)
        smallest = torch.full((m,), float("inf"), dtype=x.dtype, device=device)
        adv = x.clone()
        success = torch.zeros(m, dtype=torch.bool, device=device)
        out_x = x.clone()
        out_margin = torch.full((m,), float("-inf"), dtype=x.dtype, device=device)
        rows = torch.arange(m, device=device)
        stuck = torch.zeros(m, dtype=torch.bool, device=device)  # or cut (see siblings)
        spent = torch.zeros(m, dtype=torch.int64, device=device)
        for it in range(self.iters):
            idx = (~success & ~stuck).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xi = x1[idx].detach().requires_grad_(True)
            with torch.enable_grad():
                logits = model(xi)
                diff = logits[rows[: idx.numel()], t[idx]] - logits[rows[: idx.numel()], y[idx]]
                (grad,) = torch.autograd.grad(diff.sum(), xi)
            cost.gradients += idx.numel()
            cost.forwards += idx.numel()
            spent[idx] += 1
            w = grad.flatten(1)
            if it == 0:
                # from the clean point a zero gradient projects nowhere: every step mixes
                # the iterate with the clean point, both the same, so the run stays there
                flat = zero_gradient(w) & from_clean[idx]
                if flat.any():
                    stuck[idx[flat]] = True
                    idx, xi, w, diff = idx[~flat], xi[~flat], w[~flat], diff[~flat]
                    if idx.numel() == 0:
                        break
            b = (w * xi.detach().flatten(1)).sum(dim=1) - diff.detach()
            # the iterate's and the clean point's projections in one batch (rows are
            # independent)
            both, _ = project_linf(
                torch.cat([xi.detach().flatten(1), x0[idx]]), w.repeat(2, 1), b.repeat(2)
            )
            d1, d2 = both.split(idx.numel())
            a1 = d1.abs().amax(dim=1).clamp_min(1e-8)
            a2 = d2.abs().amax(dim=1).clamp_min(1e-8)
            alpha = (a1 / (a1 + a2)).clamp(0.0, self.alpha_max)[:, None]
            step = (xi.detach().flatten(1) + self.eta * d1) * (1 - alpha) + (
                x0[idx] + self.eta * d2
            ) * alpha
            x_new = step.clamp(0.0, 1.0).view_as(xi)

            logits_new = forward(model, x_new, self.max_batch)
            cost.forwards += idx.numel()
            hit = is_adversarial(logits_new, y[idx], None)
            norm = (x_new - x[idx]).flatten(1).abs().amax(dim=1)
            closer = hit & (norm < smallest[idx])
            adv[idx[closer]], smallest[idx[closer]] = x_new[closer], norm[closer]
            won = hit & (norm <= self.eps)
            out_x[idx[won]] = x_new[won]
            out_margin[idx[won]] = margin(logits_new[won], y[idx[won]], None)
            success[idx[won]] = True
            back = x[idx] + self.beta * (x_new - x[idx])
            x1[idx] = torch.where(rows_view(hit, x_new), back, x_new)
            if siblings is not None and won.any():
                stuck |= siblings.cut(success)
        cut = torch.zeros_like(stuck) if siblings is None else siblings.cut(success)
        failed = (~success & ~cut).nonzero().squeeze(1)
        if failed.numel():
            found = rows_view(torch.isfinite(smallest[failed]), x)
            last = clip(torch.where(found, adv[failed], x1[failed]), lower[failed], upper[failed])
            logits_last = forward(model, last, self.max_batch)
            cost.forwards += failed.numel()
            out_x[failed] = last
            out_margin[failed] = margin(logits_last, y[failed], None)
            success[failed] = is_adversarial(logits_last, y[failed], None)
        return RunOutcome(success, out_x, out_margin, out_margin, cost, spent=spent)
