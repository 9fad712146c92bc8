"""L-infinity PGD with keyed random starts, batched restarts and exact early stopping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import ClassVar

import torch
from torch import nn

from lpbench.attacks._common import ball, clip, keep_rows, least_adversarial, rows_view
from lpbench.attacks.base import (
    COMPLETE,
    SKIPPED,
    Attack,
    AttackResult,
    Cost,
    RestartRecords,
    attack_settings,
    count_at_least,
    setting,
)
from lpbench.attacks.keyed import keyed_uniform
from lpbench.attacks.losses import get_loss, is_adversarial, margin
from lpbench.attacks.targets import TARGET_MODES, choose_targets

SCORES = ("any", "last")
_NEVER = torch.iinfo(torch.int64).max


@dataclass
class _Round:
    """Per-row outcome of one round of restarts (rows ``restart * n + point``)."""

    success: torch.Tensor
    first_iter: torch.Tensor
    x: torch.Tensor
    loss: torch.Tensor
    margin: torch.Tensor
    last_loss: torch.Tensor
    adv_at: dict[int, torch.Tensor]
    gradients_within: dict[int, int]
    cost: Cost


@attack_settings
class PGD(Attack):
    """Projected gradient ascent with signed steps (Madry et al. 2018).

    Each restart starts uniformly in the eps-ball (drawn from the point's key); after each
    step the iterate is projected onto the ball and onto [0, 1].

    ``score``: ``"any"`` counts a restart as successful when any of its iterates is
    adversarial (lpbench's strong attacks); ``"last"`` judges only its last iterate, as
    the seed's code (cleverhans) did for its baseline.

    Restarts mean "try restart 0, then 1, ...": with ``early_stop`` a point's later
    restarts are skipped once one breaks it, and a restart stops at its first adversarial
    iterate (``score="any"``). Up to ``max_batch`` rows (points x restarts) run in lock
    step; results are exactly those of running restarts one after another, whatever the
    batch. Without ``early_stop`` every restart runs to the end (exact per-restart
    records, e.g. for loss histograms). ``keep_last`` returns each point's last iterate
    of its highest-loss restart, as adversarial training does (implies no early stop).
    ``record_at``: iteration counts k at which to record which points are broken within
    their first k iterations (one run reads off a whole column of an iteration grid).
    ``target_mode``: ``"ll"`` (least-likely class of the clean input) or ``"random"`` (a
    class drawn once per point, fixed across restarts); an explicit ``target`` passed to
    the call wins. A targeted attack steers towards its target, but a point counts as
    broken as soon as it is misclassified: robust accuracy is accuracy under attack.
    ``eot_iter`` (randomised models): each iterate goes through the model that many times;
    the step follows the sum of the loss gradients of the draws and the iterate counts as
    adversarial only when every draw misclassifies it (each draw's gradient is counted);
    restarts then run to their end, keeping the adversarial iterate with the largest margin
    (the first one lies at the boundary, where fresh draws often classify it correctly).
    """

    name = "pgd"
    renamed: ClassVar[dict[str, str]] = {"targeted": "target_mode"}

    step: float
    iters: int
    restarts: int = 1
    _: KW_ONLY
    loss: str = "ce"
    score: str = "any"
    random_start: bool = True
    early_stop: bool = True
    keep_last: bool = False
    target_mode: str | None = None
    record_at: Sequence[int] = setting(default=(), config=False)
    eot_iter: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.step <= 1:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, got {self.score!r}")
        if self.target_mode is not None and self.target_mode not in TARGET_MODES:
            raise ValueError(f"target_mode must be one of {', '.join(TARGET_MODES)} or None")
        bad = [k for k in self.record_at if not 0 <= k <= self.iters]
        if bad:
            raise ValueError(f"record_at iterations {bad} are outside 0..{self.iters}")
        self.step = float(self.step)
        self.iters = count_at_least("iters", self.iters, 0)
        self.restarts = count_at_least("restarts", self.restarts, 1)
        self.loss_fn = get_loss(self.loss)
        self.early_stop = self.early_stop and not self.keep_last
        self.record_at = tuple(sorted({int(k) for k in self.record_at}))
        self.eot_iter = count_at_least("eot_iter", self.eot_iter, 1)

    def max_spend_per_point(self) -> int:
        return self.restarts * self.iters * self.eot_iter

    def rows_per_point(self, points: int) -> int:
        # Restarts in lock step only while points are too few to fill a batch: run one
        # after another, later restarts skip the points earlier ones broke.
        return min(self.restarts, max(1, self.max_batch // max(points, 1)))

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
    ) -> AttackResult:
        n, restarts, device = x.shape[0], self.restarts, x.device
        if target is None and self.target_mode is not None:
            assert self.stream is not None  # __post_init__ sets it (default: the name)
            target = choose_targets(
                self.target_mode, model, x, y, index, seed=self.seed, stream=self.stream
            )
        per_round = max(1, min(restarts, self.max_batch // max(n, 1)))
        best_x = x.detach().clone()
        best_loss = torch.full((n,), float("-inf"), device=device)
        best_margin = torch.full((n,), float("-inf"), device=device)
        success = torch.zeros(n, dtype=torch.bool, device=device)
        first_iter = torch.full((n,), _NEVER, dtype=torch.int64, device=device)
        rec_loss = torch.full((n, restarts), float("nan"), device=device)
        rec_success = torch.zeros(n, restarts, dtype=torch.bool, device=device)
        rec_status = torch.full((n, restarts), SKIPPED, dtype=torch.int8, device=device)
        adv_at = {k: torch.zeros(n, dtype=torch.bool, device=device) for k in self.record_at}
        within = dict.fromkeys(self.record_at, 0)
        cost = Cost()
        for first in range(0, restarts, per_round):
            count = min(per_round, restarts - first)
            points = self._points_to_run(success, first_iter)
            if points.numel() == 0:
                break
            t = None if target is None else target[points]
            out = self._run_round(
                model, x[points], y[points], t, index[points], first, count, first_iter[points]
            )
            cost = cost + out.cost
            for k in self.record_at:
                within[k] += out.gradients_within[k]
            m = points.numel()
            row_success = out.success.view(count, m)
            # A restart counts only if no earlier restart of its point broke it.
            earlier = torch.cumsum(row_success.int(), dim=0) - row_success.int() > 0
            counted = (
                ~(earlier | success[points][None, :])
                if self.early_stop
                else (torch.ones_like(row_success))
            )
            cols = torch.arange(first, first + count, device=device)
            rec_status[points[:, None], cols[None, :]] = torch.where(
                counted.T, COMPLETE, SKIPPED
            ).to(torch.int8)
            rec_loss[points[:, None], cols[None, :]] = torch.where(
                counted, out.last_loss.view(count, m), float("nan")
            ).T
            rec_success[points[:, None], cols[None, :]] = (row_success & counted).T
            for k in self.record_at:
                adv_at[k][points] |= out.adv_at[k].view(count, m).any(dim=0)
            first_iter[points] = torch.minimum(
                first_iter[points], out.first_iter.view(count, m).min(dim=0).values
            )
            self._keep_best(points, out, count, success, best_x, best_loss, best_margin)
        success_at = adv_at
        if self.score == "any":
            success_at = {k: first_iter <= k for k in self.record_at}
        return AttackResult(
            x_adv=best_x,
            success=success,
            loss=best_loss,
            margin=best_margin,
            cost=cost,
            restarts=RestartRecords(rec_loss, rec_success, rec_status),
            success_at=success_at,
            gradients_within=within,
        )

    def _points_to_run(self, success: torch.Tensor, first_iter: torch.Tensor) -> torch.Tensor:
        """Points whose next restarts can still change the result."""
        if not self.early_stop:
            return torch.arange(success.numel(), device=success.device)
        if self.record_at and self.score == "any":
            # Still needed while a later restart could break the point in fewer iterations
            # than the earliest success so far, for the smallest recorded count.
            return (first_iter > self.record_at[0]).nonzero().squeeze(1)
        if self.record_at:  # last-iterate grids need every restart's every recorded iterate
            return torch.arange(success.numel(), device=success.device)
        return (~success).nonzero().squeeze(1)

    def _keep_best(
        self,
        points: torch.Tensor,
        out: _Round,
        count: int,
        success: torch.Tensor,
        best_x: torch.Tensor,
        best_loss: torch.Tensor,
        best_margin: torch.Tensor,
    ) -> None:
        """Fold one round into the per-point best example.

        A success beats any failure. Among successes: the first successful restart with
        early stop (sequential semantics), else the largest margin. Among failures: the
        highest loss. Ties go to the earlier restart, so rounds of any size agree.
        """
        m = points.numel()
        arange = torch.arange(m, device=points.device)
        row_success = out.success.view(count, m)
        if self.early_stop:  # the earliest successful restart
            rank = -torch.arange(count, device=points.device, dtype=out.loss.dtype)[:, None]
            rank = rank.expand(count, m)
        else:
            rank = out.margin.view(count, m)
        key = torch.where(row_success, rank, out.loss.view(count, m))
        pick = _lex_argmax(row_success.to(key.dtype), key) * m + arange
        cand_success = row_success.any(dim=0)
        cand_loss, cand_margin = out.loss[pick], out.margin[pick]
        old = success[points]
        if self.early_stop:  # an earlier restart's success is final
            better = ~old & (cand_success | (cand_loss > best_loss[points]))
        else:
            better = (cand_success & ~old) | (
                (cand_success == old)
                & torch.where(
                    cand_success, cand_margin > best_margin[points], cand_loss > best_loss[points]
                )
            )
        chosen = points[better]
        best_x[chosen] = out.x[pick][better]
        best_loss[chosen] = cand_loss[better]
        best_margin[chosen] = cand_margin[better]
        success[points] = old | cand_success

    def _start(
        self, x_rep: torch.Tensor, index: torch.Tensor, first: int, count: int
    ) -> torch.Tensor:
        """Random starts for restarts ``first .. first+count-1`` of the rows of ``x_rep``
        (the points repeated restart-major)."""
        if not self.random_start:
            return x_rep.clone()
        n = index.shape[0]
        restart = torch.arange(first, first + count, device=x_rep.device).repeat_interleave(n)
        unit = keyed_uniform(
            self.key, index.repeat(count), restart, tuple(x_rep.shape[1:]), dtype=x_rep.dtype
        )
        return x_rep + (unit * 2 - 1) * self.eps

    def _run_round(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        index: torch.Tensor,
        first: int,
        count: int,
        deadline: torch.Tensor,
    ) -> _Round:
        """Attack restarts ``first .. first+count-1`` of ``n`` points in lock step."""
        n = x.shape[0]
        rows = count * n
        device = x.device
        x_rep = x.repeat(count, *([1] * (x.dim() - 1)))
        y_rep = y.repeat(count)
        t_rep = None if target is None else target.repeat(count)
        lower, upper = ball(x_rep, self.eps)
        x_adv = clip(self._start(x_rep, index, first, count), lower, upper)
        keep_x = x_adv.clone()
        keep_loss = torch.full((rows,), float("-inf"), device=device)
        keep_margin = torch.full((rows,), float("-inf"), device=device)
        last_loss = torch.full((rows,), float("nan"), device=device)
        success = torch.zeros(rows, dtype=torch.bool, device=device)
        first_iter = torch.full((rows,), _NEVER, dtype=torch.int64, device=device)
        adv_at: dict[int, torch.Tensor] = {
            k: torch.zeros(rows, dtype=torch.bool, device=device) for k in self.record_at
        }
        within = dict.fromkeys(self.record_at, 0)
        row_deadline = deadline.repeat(count)
        # the rows still iterating, packed in one batch (repacked only when some stop)
        live = _Live(torch.arange(rows, device=device), x_adv, lower, upper, y_rep, t_rep, keep_x)
        cost = Cost()
        judge_every_iterate = self.score == "any" and not self.keep_last
        for it in range(self.iters + 1):
            idx = live.rows
            if idx.numel() == 0:
                break
            needs_grad = it < self.iters
            xa = live.x.requires_grad_(needs_grad)
            out, loss_now, grad = self._draws(model, xa, live.y, live.t, needs_grad)
            cost.forwards += idx.numel() * self.eot_iter
            hit = is_adversarial(out, live.y, None)  # misclassified, targeted or not
            margin_now = margin(out, live.y, None)
            last_loss[idx] = loss_now
            if it in adv_at:
                adv_at[it][idx] = hit
            if judge_every_iterate:
                was = success[idx]
                take = torch.where(
                    hit, ~was | (margin_now > keep_margin[idx]), ~was & (loss_now > keep_loss[idx])
                )
                first_iter[idx] = torch.where(hit & ~was, it, first_iter[idx])
                success[idx] = was | hit
            else:  # only the last iterate is judged: keep the latest iterate
                take = torch.ones_like(hit)
                if it == self.iters:
                    success[idx] = hit
                    first_iter[idx] = torch.where(hit, it, first_iter[idx])
            xd = xa.detach()
            live.keep_x = torch.where(rows_view(take, xd), xd, live.keep_x)
            keep_loss[idx] = torch.where(take, loss_now, keep_loss[idx])
            keep_margin[idx] = torch.where(take, margin_now, keep_margin[idx])
            if grad is None:
                break
            cost.gradients += idx.numel() * self.eot_iter
            for k in self.record_at:
                if it < k:
                    within[k] += idx.numel() * self.eot_iter
            live.x = clip(xd + self.step * grad.sign(), live.lower, live.upper)
            if self.early_stop and judge_every_iterate and self.eot_iter == 1:
                going = self._still_active(success, count, n, row_deadline, it)[idx]
                if not going.all():
                    keep_x[idx[~going]] = live.keep_x[~going]
                    live = live.keep(going)
        keep_x[live.rows] = live.keep_x
        return _Round(
            success=success,
            first_iter=first_iter,
            x=keep_x,
            loss=keep_loss,
            margin=keep_margin,
            last_loss=last_loss,
            adv_at=adv_at,
            gradients_within=within,
            cost=cost,
        )

    def _draws(
        self,
        model: nn.Module,
        xa: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        needs_grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Logits (:func:`~lpbench.attacks._common.least_adversarial` over the
        ``eot_iter`` passes), loss averaged over them, and the summed input gradient (None
        without ``needs_grad``)."""
        outs, losses, grad = [], [], None
        for _ in range(self.eot_iter):
            with torch.set_grad_enabled(needs_grad):
                logits = model(xa)
                loss = self.loss_fn(logits, y, target)
            if needs_grad:
                (g,) = torch.autograd.grad(loss.sum(), xa)
                grad = g if grad is None else grad + g
            outs.append(logits.detach())
            losses.append(loss.detach())
        if self.eot_iter == 1:  # a mean over one draw is that draw
            return outs[0], losses[0], grad
        return least_adversarial(outs, y), torch.stack(losses).mean(dim=0), grad

    @staticmethod
    def _still_active(
        success: torch.Tensor, count: int, n: int, deadline: torch.Tensor, it: int
    ) -> torch.Tensor:
        """Rows that go on: not broken, no earlier restart broke their point, before deadline."""
        grid = success.view(count, n).int()
        earlier = (torch.cumsum(grid, dim=0) - grid) > 0
        return ~(success | earlier.reshape(-1) | (deadline <= it))


@dataclass
class _Live:
    """The rows of a round still iterating, packed in one batch in their order: ``rows``
    are their positions in the round; then their iterate, ball, labels, targets and the
    example each keeps so far."""

    rows: torch.Tensor
    x: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    y: torch.Tensor
    t: torch.Tensor | None
    keep_x: torch.Tensor

    def keep(self, keep: torch.Tensor) -> _Live:
        """Only the rows where ``keep`` holds."""
        return keep_rows(self, keep)


def _lex_argmax(primary: torch.Tensor, secondary: torch.Tensor) -> torch.Tensor:
    """Per column, the first row maximising ``(primary, secondary)``."""
    top = primary.max(dim=0, keepdim=True).values
    masked = torch.where(primary == top, secondary, torch.full_like(secondary, float("-inf")))
    best = masked.max(dim=0, keepdim=True).values
    hits = (masked == best) & (primary == top)
    return hits.int().argmax(dim=0)
