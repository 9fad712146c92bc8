"""Helpers shared by the attacks: box-and-ball projection, safe gradients, class checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from lpbench.attacks.base import (
    COMPLETE,
    GAVE_UP,
    SKIPPED,
    AttackResult,
    Cost,
    RestartRecords,
)
from lpbench.attacks.losses import AttackLoss, cross_entropy, margin


def ball(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds of the eps-ball around ``x`` intersected with [0, 1]."""
    return (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)


def clip(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Projection onto the box ``[lower, upper]`` (the eps-ball within [0, 1])."""
    return torch.clamp(x, lower, upper)


def rows_view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-row scalars shaped to broadcast against a batch shaped like ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


Packed = TypeVar("Packed")


def keep_rows(state: Packed, keep: torch.Tensor) -> Packed:
    """A copy of the dataclass ``state`` holding only the rows where ``keep`` holds (its
    tensor fields indexed along the first dimension, None fields left None)."""
    rows = keep.nonzero().squeeze(1)
    packed: dict[str, Any] = {}
    for f in fields(state):  # type: ignore[arg-type]  # every caller passes a dataclass
        value = getattr(state, f.name)
        packed[f.name] = value if value is None else value.index_select(0, rows)
    return type(state)(**packed)


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
        starts = range(0, max(x.shape[0], 1), max_batch)  # an empty batch still gives (0, C)
        return torch.cat([model(x[i : i + max_batch]) for i in starts])


def zero_gradient(grad: torch.Tensor) -> torch.Tensor:
    """Per row: whether the gradient is exactly zero (a step along it cannot move)."""
    return grad.flatten(1).abs().amax(dim=1) == 0


def ce_parts(
    z: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy (minus the target's when targeted) without underflow.

    With ``u = logsumexp(other logits) - logit[c]``, CE = softplus(u) and its gradient is
    ``sigmoid(u) * (softmax(other logits) - onehot(c))``. Returns the score ``u`` (ranks
    like CE but never rounds to 0), the loss, the gradient direction (entries at most 1)
    and the log of its scale, ``logsigmoid(u)``.
    """
    c = y if target is None else target
    sign = 1.0 if target is None else -1.0
    others = z.scatter(1, c[:, None], float("-inf"))
    u = torch.logsumexp(others, dim=1) - z.gather(1, c[:, None]).squeeze(1)
    direction = torch.softmax(others, dim=1) - F.one_hot(c, z.shape[1]).to(z.dtype)
    return sign * u, sign * F.softplus(u), sign * direction, F.logsigmoid(u)


def score_and_loss(
    logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, loss_fn: AttackLoss
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss (float64) and a score that orders inputs like it but never underflows."""
    z = logits.detach().double()
    if loss_fn is cross_entropy:
        score, loss, _, _ = ce_parts(z, y, target)
        return score, loss
    loss = loss_fn(z, y, target)
    return loss, loss


def loss_and_grad(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor | None,
    loss_fn: AttackLoss,
    eot_iter: int = 1,
    forward_mode: AbstractContextManager[object] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Score, loss (float64), logits and input-gradient direction over ``eot_iter`` draws.

    The gradient with respect to the logits is formed in float64 (in closed form for
    cross-entropy) and rescaled per row by one positive factor shared by all draws before
    it is backpropagated, so a loss that underflows in float32 (the cross-entropy of a
    confident model) still gives the direction of its gradient; only the direction is
    meaningful. Score and loss are averaged over the draws; the logits are
    :func:`least_adversarial` over them (an iterate counts as adversarial only when every
    draw misclassifies it). ``forward_mode`` (e.g.
    :class:`~lpbench.attacks.smooth.SmoothReLUBackward`) is entered around each forward
    pass of the model.
    """
    xs = x.detach().requires_grad_(True)
    logits_all, scores, losses, directions, log_scales = [], [], [], [], []
    for _ in range(eot_iter):
        with torch.enable_grad(), forward_mode or nullcontext():
            logits = model(xs)
        z = logits.detach().double()
        if loss_fn is cross_entropy:
            score, loss, direction, log_scale = ce_parts(z, y, target)
        else:
            z.requires_grad_(True)
            with torch.enable_grad():
                loss = loss_fn(z, y, target)
                (direction,) = torch.autograd.grad(loss.sum(), z)
            loss = score = loss.detach()
            peak = direction.abs().amax(dim=1)
            direction = direction / peak.clamp_min(torch.finfo(z.dtype).tiny)[:, None]
            log_scale = peak.log()
        logits_all.append(logits)
        scores.append(score)
        losses.append(loss)
        directions.append(direction)
        log_scales.append(log_scale)
    stacked = torch.stack(log_scales)
    top = stacked.amax(dim=0).nan_to_num(0.0, neginf=0.0)
    weights = (stacked - top).exp()
    grads = [
        torch.autograd.grad(
            logits, xs, grad_outputs=(direction * weight[:, None]).to(logits.dtype)
        )[0]
        for logits, direction, weight in zip(logits_all, directions, weights, strict=True)
    ]
    if eot_iter == 1:  # a mean over one draw is that draw
        return scores[0], losses[0], logits_all[0].detach(), grads[0]
    grad = torch.zeros_like(x)
    for g in grads:
        grad += g
    return (
        torch.stack(scores).mean(dim=0),
        torch.stack(losses).mean(dim=0),
        least_adversarial([logits.detach() for logits in logits_all], y),
        grad / eot_iter,
    )


def least_adversarial(draws: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """Per row, the logits of the draw (of a randomised model) with the smallest margin:
    misclassified only when every draw is, the rule by which an evaluation re-checks a
    randomised model's examples. (Mean logits cross the boundary while half the draws
    still classify correctly, and such an example fails the re-check.)"""
    if len(draws) == 1:
        return draws[0]
    margins = torch.stack([margin(d, y, None) for d in draws])
    pick = margins.argmin(dim=0)
    return torch.stack(draws)[pick, torch.arange(len(y), device=y.device)]


def lockstep_on(lockstep: bool | None, device: torch.device) -> bool:
    """Whether an attack's ``lockstep`` setting (None: on CUDA devices only) holds on
    ``device``."""
    return device.type == "cuda" if lockstep is None else lockstep


def rounds(
    track: Tracker, runs: int, together: bool, max_batch: int
) -> Iterator[tuple[torch.Tensor, int, int]]:
    """The rounds of an attack's ``runs`` (targets x restarts) over the points ``track``
    has not seen broken: ``(points, first run, number of runs)``, to be folded into ``track`` before
    the next is drawn.

    One run after another over all those points, or, ``together`` (lock step), all of a
    point's runs in one round (at most ``max_batch`` of them), its points in groups of at
    most ``max_batch`` rows. A point's runs then share a batch whatever its batch-mates,
    so its cost, like its result, does not depend on them. A pass over few rows takes
    about as long as one over many on a GPU: lock step spends more gradients (on the
    points broken before their last run, whose later runs go on until then) in fewer
    passes."""
    per_round = min(runs, max_batch) if together else 1
    begun = 0
    while begun < runs and (pending := track.pending()).numel():
        count = min(per_round, runs - begun)
        for points in pending.split(max(1, max_batch // count)):
            yield points, begun, count
        begun += count


@dataclass(frozen=True)
class Siblings:
    """The rows of several runs over the same points in one batch, run-major: row
    ``i * points + p`` is run ``i`` of point ``p`` (``rank`` i, ``group`` p)."""

    rank: torch.Tensor
    group: torch.Tensor
    points: int
    count: int

    @classmethod
    def of(cls, points: int, count: int, device: torch.device) -> Siblings:
        """``count`` runs over ``points`` points."""
        rank = torch.arange(count, device=device).repeat_interleave(points)
        return cls(rank, torch.arange(points, device=device).repeat(count), points, count)

    def cut(self, success: torch.Tensor) -> torch.Tensor:
        """Per row: whether an earlier run of its point has succeeded, so that, run after
        run, this one would never have run (its row can stop)."""
        first = torch.full((self.points,), self.count, dtype=torch.int64, device=success.device)
        first.scatter_reduce_(0, self.group[success], self.rank[success], reduce="amin")
        return self.rank > first[self.group]


@dataclass
class RunOutcome:
    """One run (a restart, for one target) over some points: what it found, what it cost.

    ``x`` is the adversarial example where ``success`` holds, else the highest-loss example;
    ``loss`` and ``margin`` are taken at ``x``; ``score`` ranks failures across runs (the
    loss itself unless given: see :func:`score_and_loss`); ``gave_up`` marks the points the
    run stopped on early for too little progress; ``spent`` the gradients + queries the run
    spent on each point.
    """

    success: torch.Tensor
    x: torch.Tensor
    loss: torch.Tensor
    margin: torch.Tensor
    cost: Cost
    score: torch.Tensor | None = None
    gave_up: torch.Tensor | None = None
    spent: torch.Tensor | None = None


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
        self.score = torch.full((n,), float("-inf"), dtype=torch.float64, device=device)
        self.rec_loss = torch.full((n, runs), float("nan"), device=device)
        self.rec_success = torch.zeros(n, runs, dtype=torch.bool, device=device)
        self.rec_status = torch.full((n, runs), SKIPPED, dtype=torch.int8, device=device)
        self.cost = Cost()
        self.spent: torch.Tensor | None = torch.zeros(n, dtype=torch.int64, device=device)

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
        self.add_round(points, run, 1, out)

    def add_round(self, points: torch.Tensor, first: int, count: int, out: RunOutcome) -> None:
        """Fold runs ``first .. first + count - 1`` over ``points`` (all still robust
        before them), run in lock step: ``out``'s rows are run-major (row ``i * m + p`` is
        run ``first + i`` on ``points[p]``). Folded in run order, so the result is that of
        the runs one after another: a run of a point an earlier run broke counts as
        skipped (what it spent is still counted)."""
        m = points.numel()
        self.cost = self.cost + out.cost
        if self.spent is not None and out.spent is not None:
            self.spent[points] += out.spent.view(count, m).sum(dim=0)
        else:
            self.spent = None
        for i in range(count):
            open_ = ~self.success[points]
            rows = torch.arange(i * m, (i + 1) * m, device=points.device)[open_]
            self._fold(points[open_], first + i, out, rows)

    def _fold(self, points: torch.Tensor, run: int, out: RunOutcome, rows: torch.Tensor) -> None:
        """Records and best example of run ``run``, from ``out``'s ``rows``, over ``points``."""
        self.rec_status[points, run] = COMPLETE
        if out.gave_up is not None:
            self.rec_status[points[out.gave_up[rows]], run] = GAVE_UP
        success, loss = out.success[rows], out.loss[rows]
        self.rec_loss[points, run] = loss.to(self.rec_loss.dtype)
        self.rec_success[points, run] = success
        score = (loss if out.score is None else out.score[rows]).to(self.score.dtype)
        better = success | (score > self.score[points])
        chosen = points[better]
        self.score[chosen] = score[better]
        self.x[chosen] = out.x[rows[better]].to(self.x.dtype)
        self.loss[chosen] = loss[better].to(self.loss.dtype)
        self.margin[chosen] = out.margin[rows[better]].to(self.margin.dtype)
        self.success[points] |= success

    def result(self) -> AttackResult:
        return AttackResult(
            x_adv=self.x,
            success=self.success,
            loss=self.loss,
            margin=self.margin,
            cost=self.cost,
            restarts=RestartRecords(self.rec_loss, self.rec_success, self.rec_status),
            spent=self.spent,
        )
