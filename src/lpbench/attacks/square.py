"""Square Attack (Andriushchenko et al. 2020), L-infinity: random search on the margin."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from lpbench.attacks._common import RunOutcome, Tracker, ball, clip, forward
from lpbench.attacks.base import (
    Attack,
    AttackResult,
    Cost,
    attack_settings,
    checked_give_up,
    count_at_least,
)
from lpbench.attacks.keyed import KeyedRows
from lpbench.attacks.losses import is_adversarial, margin

#: Colour draws per iteration to find one that changes the square (the paper resamples
#: until it does; a bounded number keeps it vectorised and always terminating).
COLOUR_TRIES = 16
#: Iterations of Square whose random numbers are drawn at once, and the most numbers a
#: block may hold (32 MiB of int64): drawing per block instead of per iteration takes
#: most of the kernel launches out of Square's loop.
_BLOCK_ITERATIONS = 128
_BLOCK_NUMBERS = 1 << 22
#: (bound, divisor of p_init) of the paper's window schedule: p_init is divided by the
#: divisor up to the bound (an iteration, or progress in 1/10000 of the queries when the
#: schedule is rescaled), by 512 past the last bound.
_WINDOW_SCHEDULE = (
    (10, 1), (50, 2), (200, 4), (500, 8), (1000, 16),
    (2000, 32), (4000, 64), (6000, 128), (8000, 256),
)  # fmt: skip
#: Square's window schedules: ``"rescaled"`` spreads the thresholds over the queries (the
#: reference's ``resc_schedule=True``), ``"fixed"`` keeps them at iterations (AutoAttack's
#: standard version, ``resc_schedule=False``).
WINDOW_SCHEDULES = ("rescaled", "fixed")


def p_selection(p_init: float, it: int, queries: int | None) -> float:
    """Fraction of pixels changed at iteration ``it`` (0-based: the reference's ``i_iter``).

    ``queries`` None: the fixed schedule, p_init halved after iterations 10, 50, 200, 500,
    1000, 2000, 4000, 6000 and 8000. Otherwise rescaled: the same thresholds read as
    shares (in 1/10000) of ``queries``; past ``queries`` the schedule starts over.
    """
    progress = it if queries is None else int(it % queries / queries * 10000)
    for bound, divisor in _WINDOW_SCHEDULE:
        if progress <= bound:
            return p_init / divisor
    return p_init / 512


@attack_settings
class Square(Attack):
    """Square Attack, L-infinity, on the margin loss with a budget of ``queries`` per run.

    A run starts from vertical stripes of +-eps (one sign per channel and column) and then
    changes, per iteration, a random square window (side from the ``p_init`` schedule,
    which depends only on the iteration) to a random +-eps colour per channel, keeping the
    change when the margin (best other logit minus true logit; the target's margin for an
    explicit ``target``) grows. Window positions and colours are keyed by (point, restart,
    iteration). Every query counts, the first (the stripes) included; a point stops at its
    first misclassified query. Points misclassified as given are broken by the clean
    input: one forward pass each, outside the query budget (as in the reference, which
    attacks correctly classified points only). Inputs must be images ``(N, C, H, W)``.

    ``window_schedule`` says when the window shrinks. ``"rescaled"`` (the default, the
    reference Square's own ``resc_schedule=True``) lays the paper's schedule over
    ``window_schedule_queries`` queries (default ``queries``): a run with fewer queries is
    then, point by point, the beginning of the run with ``window_schedule_queries``, and a
    longer run starts the schedule over from its best point every
    ``window_schedule_queries`` queries. ``"fixed"`` (AutoAttack's standard version,
    ``resc_schedule=False``, and so ``aa-standard``) halves the window's area after fixed
    iterations (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000) whatever the queries, so
    any shorter run is the beginning of a longer one (``window_schedule_queries`` must
    then be None).

    ``give_up`` (default none, as in the reference) stops a run early on points that make
    too little progress: for each ``(queries, share)`` pair, a point still robust after
    ``queries`` queries stops there if its loss is still below ``share`` times its loss at
    the first query (margins are negative while robust, so ``share=0.4`` asks the run to
    have closed 60% of the distance to the boundary). The decision depends only on the
    point's own run, so it is the same in any batch. Stopped points count as robust; the
    query budget stays the most a point can spend.

    ``x_init`` (a starting point per input, in its eps-ball) replaces the stripes of the
    first restart: the run then refines a given example, e.g. the best a gradient attack
    left, and its first query is that example. Later restarts start from stripes.

    ``limit`` (one count per input) replaces the query budget point by point: each point
    may spend up to its limit in all, more or fewer than ``restarts x queries`` (a budget
    pool hands Square what earlier attacks left; see ``NamedAttack.pooled``). The window
    schedule and every random draw still depend only on the iteration, so a longer run
    on a point is the shorter one continued.
    """

    name = "square"
    takes_start = True
    takes_limit = True
    renamed: ClassVar[dict[str, str]] = {
        "n_queries": "queries",
        "schedule_queries": "window_schedule_queries",
    }

    queries: int = 5000
    restarts: int = 1
    _: KW_ONLY
    p_init: float = 0.8
    window_schedule: str = "rescaled"
    window_schedule_queries: int | None = None
    give_up: Sequence[tuple[int, float]] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must be in (0, 1], got {self.p_init}")
        self.queries = count_at_least("queries", self.queries, 1)
        self.restarts = count_at_least("restarts", self.restarts, 1)
        self.p_init = float(self.p_init)
        if self.window_schedule not in WINDOW_SCHEDULES:
            raise ValueError(
                f"window_schedule must be one of {', '.join(WINDOW_SCHEDULES)}, "
                f"got {self.window_schedule!r}"
            )
        if self.window_schedule_queries is not None:
            if self.window_schedule == "fixed":
                raise ValueError("window_schedule_queries applies to the rescaled schedule only")
            count_at_least("window_schedule_queries", self.window_schedule_queries, 1)
        self.give_up = checked_give_up(self.give_up)

    def config(self) -> dict[str, Any]:
        return super().config() | {"window_schedule_queries": self.horizon}

    def max_spend_per_point(self) -> int:
        return self.restarts * self.queries

    @property
    def horizon(self) -> int | None:
        """The queries the window schedule is laid over (``window_schedule_queries`` or the
        run's); None for the fixed schedule."""
        if self.window_schedule == "fixed":
            return None
        return self.window_schedule_queries or self.queries

    def window_side(self, step: int, height: int, width: int) -> int:
        """The side of the window at change ``step`` (0-based: the reference's ``i_iter``;
        the query after the first) on ``height`` x ``width`` images, the same for every
        point: ``round(sqrt(p * height * width))``, at least 1 and below the image's side."""
        p = p_selection(self.p_init, step, self.horizon)
        return min(max(round(math.sqrt(p * height * width)), 1), min(height, width) - 1)

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
        x_init: torch.Tensor | None = None,
        limit: torch.Tensor | None = None,
    ) -> AttackResult:
        if x.dim() != 4:
            raise ValueError(f"Square needs images (N, C, H, W), got shape {tuple(x.shape)}")
        if min(x.shape[2:]) < 2:
            raise ValueError("Square needs images of at least 2x2 pixels")
        track = Tracker(x, self.restarts)
        clean = forward(model, x, self.max_batch)
        track.cost.forwards += x.shape[0]
        track.settle_clean(
            is_adversarial(clean, y, None), margin(clean, y, target), margin(clean, y, None)
        )
        for r in range(self.restarts):
            points = track.pending()
            allowed = None
            if limit is not None:  # what each point may still spend, in this run and later
                assert track.spent is not None  # every run of Square counts its queries
                allowed = limit[points] - track.spent[points]
                points, allowed = points[allowed > 0], allowed[allowed > 0]
            if points.numel() == 0:
                break
            t = None if target is None else target[points]
            start = None if x_init is None or r else x_init[points]
            run = self._run(model, x[points], y[points], t, index[points], r, start, allowed)
            track.add(points, r, run)
        return track.result()

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor | None,
        index: torch.Tensor,
        restart: int,
        start: torch.Tensor | None,
        allowed: torch.Tensor | None = None,
    ) -> RunOutcome:
        """One run of at most ``queries`` queries per point (``allowed``, per point, instead
        when given), from ``start`` if given, else from stripes."""
        m, c, h, w = x.shape
        stop = self.queries if allowed is None else int(allowed.max())
        cost = Cost()
        lower, upper = ball(x, self.eps)
        streams = KeyedRows(self.key, index, restart)
        if start is None:
            stripes = streams.signs((c, 1, w), stream=0, dtype=x.dtype)
            start = x + self.eps * stripes
        best = clip(start, lower, upper)
        logits = forward(model, best, self.max_batch)
        cost.queries += m
        cost.forwards += m
        best_loss, best_margin = margin(logits, y, t), margin(logits, y, None)
        success = is_adversarial(logits, y, None)
        running = ~success
        spent = torch.ones(m, dtype=torch.int64, device=x.device)
        first_loss = best_loss.clone()
        give_up = dict(self.give_up)
        rows_h = torch.arange(h, device=x.device)
        rows_w = torch.arange(w, device=x.device)
        signs = torch.tensor([1.0, -1.0], dtype=x.dtype, device=x.device)[None, :, None, None, None]
        draws = None
        for it in range(1, stop):
            if it in give_up:
                running &= success | (best_loss >= give_up[it] * first_loss)
            going = running & ~success if allowed is None else running & ~success & (it < allowed)
            idx = going.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            if draws is None or it == draws.stop:
                draws = self._draw_block(streams, idx, it, stop, (c, h, w), x.dtype)
            side, top, left, colours = draws.at(idx, it)
            inside_h = (rows_h[None, :] >= top) & (rows_h[None, :] < top + side)
            inside_w = (rows_w[None, :] >= left) & (rows_w[None, :] < left + side)
            window = (inside_h[:, :, None] & inside_w[:, None, :])[:, None]  # (k, 1, h, w)
            xi, bi, lo, hi = x[idx], best[idx], lower[idx], upper[idx]
            painted_both = clip(xi[:, None] + self.eps * signs, lo[:, None], hi[:, None])
            changes = ((painted_both - bi[:, None]).abs() > 1e-7) & window[:, None]
            by_sign = changes.flatten(3).any(dim=3)  # (k, 2, c): does +eps / -eps change it
            useful = by_sign.gather(1, (colours < 0).long()).any(dim=2)  # (k, tries)
            pick = useful.int().argmax(dim=1)  # the first useful colour (else the first)
            colour = colours[torch.arange(idx.numel(), device=x.device), pick]
            painted = clip(xi + self.eps * colour[..., None, None], lo, hi)
            candidate = torch.where(window, painted, bi)
            logits = forward(model, candidate, self.max_batch)
            cost.queries += idx.numel()
            cost.forwards += idx.numel()
            spent[idx] += 1
            loss = margin(logits, y[idx], None if t is None else t[idx])
            hit = is_adversarial(logits, y[idx], None)
            take = hit | (loss > best_loss[idx])
            chosen = idx[take]
            best[chosen] = candidate[take]
            best_loss[chosen] = loss[take]
            best_margin[chosen] = margin(logits[take], y[chosen], None)
            success[idx[hit]] = True
        return RunOutcome(
            success, best, best_loss, best_margin, cost, gave_up=~running & ~success, spent=spent
        )

    def _draw_block(
        self,
        streams: KeyedRows,
        idx: torch.Tensor,
        first: int,
        stop: int,
        shape: tuple[int, int, int],
        dtype: torch.dtype,
    ) -> _Block:
        """Windows and colours of the rows ``idx`` for iterations ``first``, ``first + 1``,
        ... (before ``stop``): the numbers each iteration would draw alone, drawn in one go
        (each iteration draws from its own streams, so a block changes no number)."""
        c, h, w = shape
        per_iteration = idx.numel() * (2 + COLOUR_TRIES * c)
        count = max(1, min(_BLOCK_ITERATIONS, stop - first, _BLOCK_NUMBERS // per_iteration))
        device = idx.device
        sides = [self.window_side(it - 1, h, w) for it in range(first, first + count)]
        side_t = torch.tensor(sides, device=device)[None, :, None]
        stream = 4 * torch.arange(first, first + count, device=device)
        rows = streams[idx]
        slot = torch.full((len(streams),), -1, dtype=torch.long, device=device)
        slot[idx] = torch.arange(idx.numel(), device=device)
        return _Block(
            first=first,
            stop=first + count,
            slot=slot,
            sides=sides,
            top=rows.randint(h - side_t, stream=stream + 1)[..., 0],
            left=rows.randint(w - side_t, stream=stream + 2)[..., 0],
            colours=rows.signs((COLOUR_TRIES, c), stream=stream + 3, dtype=dtype),
        )


@dataclass
class _Block:
    """The random numbers of a block of iterations for some rows of a run."""

    first: int
    stop: int
    slot: torch.Tensor  # (run rows,): a row's position among the drawn rows, else -1
    sides: list[int]
    top: torch.Tensor  # (drawn rows, iterations)
    left: torch.Tensor
    colours: torch.Tensor  # (drawn rows, iterations, COLOUR_TRIES, c)

    def at(
        self, idx: torch.Tensor, it: int
    ) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Side, top and left corners ``(k, 1)`` and colour tries of rows ``idx`` at ``it``."""
        rows, j = self.slot[idx], it - self.first
        return (
            self.sides[j],
            self.top[rows, j, None],
            self.left[rows, j, None],
            self.colours[rows, j],
        )
