"""L-infinity PGD with random start, batched restarts and early stopping."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from lpbench.attacks.base import Attack, AttackResult
from lpbench.attacks.losses import get_loss, is_adversarial


@contextmanager
def input_gradients_only(model: nn.Module) -> Iterator[None]:
    """Skip weight gradients while attacking (about 20% faster), restoring them after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class PGD(Attack):
    """Projected gradient ascent with signed steps (Madry et al. 2018).

    Every restart starts uniformly in the eps-ball; after each step the iterate is projected
    onto the ball and onto [0, 1]. All restarts of all points run as one batch of up to
    ``max_batch`` rows (more restarts are split into rounds). A point counts as broken as
    soon as any iterate of any restart is adversarial, and that iterate is kept.

    ``early_stop``: stop attacking a point once it is broken (fastest; per-restart records
    of the other restarts then stop too). Turn it off to run every restart to the end,
    e.g. for per-restart loss histograms or mean-over-restarts accuracy.
    ``keep_last``: return each point's last iterate (of its highest-loss restart) instead
    of its first adversarial one, as adversarial training does; implies no early stop.
    ``record_at``: iteration counts k at which to record which points are broken within
    their first k iterations (one long run reads off a whole column of an iteration grid).
    """

    name = "pgd"

    def __init__(
        self,
        eps: float,
        step: float,
        iters: int,
        restarts: int = 1,
        *,
        loss: str = "ce",
        random_start: bool = True,
        early_stop: bool = True,
        keep_last: bool = False,
        seed: int = 0,
        max_batch: int = 10_000,
        record_at: Sequence[int] = (),
    ) -> None:
        super().__init__(eps)
        if not 0 < step <= 1:
            raise ValueError(f"step must be in (0, 1], got {step}")
        if iters < 0:
            raise ValueError(f"iters must be >= 0, got {iters}")
        if restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {restarts}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        bad = [k for k in record_at if not 0 <= k <= iters]
        if bad:
            raise ValueError(f"record_at iterations {bad} are outside 0..{iters}")
        self.step = float(step)
        self.iters = int(iters)
        self.restarts = int(restarts)
        self.loss_name = loss
        self.loss_fn = get_loss(loss)
        self.random_start = random_start
        self.early_stop = early_stop and not keep_last
        self.keep_last = keep_last
        self.seed = int(seed)
        self.max_batch = int(max_batch)
        self.record_at = tuple(sorted(set(int(k) for k in record_at)))

    def config(self) -> dict[str, Any]:
        return {
            "attack": self.name,
            "eps": self.eps,
            "step": self.step,
            "iters": self.iters,
            "restarts": self.restarts,
            "loss": self.loss_name,
            "random_start": self.random_start,
            "early_stop": self.early_stop,
            "keep_last": self.keep_last,
            "seed": self.seed,
        }

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> AttackResult:
        n, restarts = x.shape[0], self.restarts
        device = x.device
        generator = torch.Generator().manual_seed(self.seed)
        per_round = max(1, min(restarts, self.max_batch // max(n, 1)))
        best_x = x.detach().clone()
        best_loss = torch.full((n,), float("-inf"), device=device)
        success = torch.zeros(n, dtype=torch.bool, device=device)
        restart_loss = torch.full((n, restarts), float("nan"), device=device)
        restart_success = torch.zeros(n, restarts, dtype=torch.bool, device=device)
        restart_ran = torch.zeros(n, restarts, dtype=torch.bool, device=device)
        success_at = {k: torch.zeros(n, dtype=torch.bool, device=device) for k in self.record_at}
        grad_evals = forward_evals = 0
        for first in range(0, restarts, per_round):
            count = min(per_round, restarts - first)
            # Draw the start for every point so that results do not depend on which
            # points earlier rounds already broke.
            noise = self._start_noise(count, x, generator)
            todo = ~success if self.early_stop else torch.ones_like(success)
            points = todo.nonzero().squeeze(1)
            if points.numel() == 0:
                continue
            with input_gradients_only(model):
                out = self._run_round(
                    model,
                    x[points],
                    y[points],
                    None if target is None else target[points],
                    noise[:, points],
                )
            grad_evals += out["grad_evals"]
            forward_evals += out["forward_evals"]
            cols = slice(first, first + count)
            restart_loss[points, cols] = out["loss"].T
            restart_success[points, cols] = out["broken"].T
            restart_ran[points, cols] = True
            for k in self.record_at:
                success_at[k][points] |= out["broken_at"][k]
            # Keep the best example per point: a successful one beats any loss.
            round_success = out["point_success"]
            round_loss, round_x = out["point_loss"], out["point_x"]
            old_success, old_loss = success[points], best_loss[points]
            better = (round_success & ~old_success) | (
                (round_success == old_success) & (round_loss > old_loss)
            )
            chosen = points[better]
            best_x[chosen] = round_x[better]
            best_loss[chosen] = round_loss[better]
            success[points] = old_success | round_success
        return AttackResult(
            x_adv=best_x,
            success=success,
            best_loss=best_loss,
            restart_loss=restart_loss,
            restart_success=restart_success,
            restart_ran=restart_ran,
            grad_evals=grad_evals,
            forward_evals=forward_evals,
            success_at=success_at,
        )

    def _start_noise(self, count: int, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        shape = (count, *x.shape)
        if not self.random_start:
            return torch.zeros(shape, dtype=x.dtype, device=x.device)
        noise = torch.rand(shape, generator=generator, dtype=x.dtype) * 2 - 1
        return (noise * self.eps).to(x.device)

    def _run_round(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        noise: torch.Tensor,
    ) -> dict[str, Any]:
        """Attack ``count`` restarts of ``n`` points as rows restart * n + point."""
        count, n = noise.shape[0], x.shape[0]
        rows = count * n
        x_rep = x.repeat(count, *([1] * (x.dim() - 1)))
        y_rep = y.repeat(count)
        t_rep = None if target is None else target.repeat(count)
        lower = (x_rep - self.eps).clamp(0.0, 1.0)
        upper = (x_rep + self.eps).clamp(0.0, 1.0)
        x_adv = torch.min(torch.max(x_rep + noise.reshape(x_rep.shape), lower), upper)
        keep_x = x_adv.clone()
        keep_loss = torch.full((rows,), float("-inf"), device=x.device)
        last_loss = torch.full((rows,), float("nan"), device=x.device)
        broken = torch.zeros(rows, dtype=torch.bool, device=x.device)
        active = torch.ones(rows, dtype=torch.bool, device=x.device)
        broken_at: dict[int, torch.Tensor] = {}
        grad_evals = forward_evals = 0
        for it in range(self.iters + 1):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            needs_grad = it < self.iters
            xa = x_adv[idx].requires_grad_(needs_grad)
            with torch.set_grad_enabled(needs_grad):
                logits = model(xa)
                loss = self.loss_fn(logits, y_rep[idx], None if t_rep is None else t_rep[idx])
            forward_evals += idx.numel()
            hit = is_adversarial(logits.detach(), y_rep[idx], None if t_rep is None else t_rep[idx])
            loss_now = loss.detach()
            last_loss[idx] = loss_now
            was_broken = broken[idx]
            # First adversarial iterate wins; before that, the highest loss so far.
            take = (hit & ~was_broken) | (~was_broken & ~hit & (loss_now > keep_loss[idx]))
            keep_x[idx[take]] = xa.detach()[take]
            keep_loss[idx[take]] = loss_now[take]
            broken[idx] = was_broken | hit
            if it in self.record_at:
                broken_at[it] = broken.view(count, n).any(dim=0).clone()
            if not needs_grad:
                break
            (grad,) = torch.autograd.grad(loss.sum(), xa)
            grad_evals += idx.numel()
            stepped = xa.detach() + self.step * grad.sign()
            x_adv[idx] = torch.min(torch.max(stepped, lower[idx]), upper[idx])
            if self.early_stop:
                active = ~broken.view(count, n).any(dim=0).repeat(count)
        if self.keep_last:
            keep_x, keep_loss = x_adv, last_loss
            broken = is_adversarial(logits.detach(), y_rep, t_rep)  # every row ran to the end
        point_broken = broken.view(count, n).any(dim=0)
        for k in self.record_at:  # a round that ended early: later counts see its final state
            broken_at.setdefault(k, point_broken.clone())
        # Per point: a successful restart if any, else the restart with the highest loss.
        score = torch.where(broken, torch.full_like(keep_loss, float("inf")), keep_loss)
        best_restart = score.view(count, n).argmax(dim=0)
        pick = best_restart * n + torch.arange(n, device=x.device)
        return {
            "loss": last_loss.view(count, n),
            "broken": broken.view(count, n),
            "broken_at": broken_at,
            "point_success": point_broken,
            "point_loss": keep_loss[pick],
            "point_x": keep_x[pick],
            "grad_evals": grad_evals,
            "forward_evals": forward_evals,
        }
