"""Run attacks on a fixed set of points, keep the worst case per point, verify, record.

A point's outcome depends only on the model, the point, the attacks and their seeds:
never on the batch size, the order of points, how many processes share the work, or
whether the run was interrupted and resumed (see :mod:`lpbench.evaluation.journal`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lpbench.attacks import Attack
from lpbench.attacks.base import GAVE_UP, Cost
from lpbench.distributed import Context, all_gather, broadcast_from_main
from lpbench.evaluation.contract import check_inputs, check_model_contract
from lpbench.evaluation.journal import Journal, Part
from lpbench.evaluation.protocol import NamedAttack
from lpbench.io import atomic_write, write_json
from lpbench.runtime import default_batch_rows, evaluation_mode, progress_bar


class VerificationError(RuntimeError):
    """A stored adversarial example does not do what the evaluation claimed."""


@dataclass
class AttackSummary:
    """What one attack of an evaluation did (cost and time summed over processes);
    ``points_given_up``: points a run stopped on early for too little progress."""

    label: str
    config: dict[str, Any]
    points_attacked: int
    points_broken: int
    robust_accuracy_after: float
    mean_over_restarts_accuracy: float | None
    grad_evals: int
    forward_evals: int
    queries: int
    wall_time_s: float
    verification_mismatches: int = 0
    points_given_up: int = 0


@dataclass
class EvaluationResult:
    """Clean and worst-case robust accuracy on a fixed set of points, with per-point records.

    ``verification_mismatches`` lists the data-set indices whose adversarial example was
    not adversarial when the model was re-run on it (numerical non-determinism); those
    points count as robust.
    """

    indices: list[int]
    labels: list[int]
    clean_pred: list[int]
    adv_pred: list[int]
    robust: list[bool]
    broken_by: list[str | None]
    restart_records: list[dict[str, dict[str, Any]]]
    attacks: list[AttackSummary]
    eps: float
    x_adv: torch.Tensor
    clean_time_s: float
    verified_points: int
    verification_mismatches: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return len(self.indices)

    @property
    def clean_accuracy(self) -> float:
        if not self.indices:
            return float("nan")
        correct = sum(p == y for p, y in zip(self.clean_pred, self.labels, strict=True))
        return correct / self.num_points

    @property
    def robust_accuracy(self) -> float:
        return sum(self.robust) / self.num_points if self.indices else float("nan")

    @property
    def grad_evals(self) -> int:
        return sum(a.grad_evals for a in self.attacks)

    @property
    def queries(self) -> int:
        return sum(a.queries for a in self.attacks)

    @property
    def wall_time_s(self) -> float:
        return self.clean_time_s + sum(a.wall_time_s for a in self.attacks)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: summary first, then one record per point."""
        first = self.attacks[0] if self.attacks else None
        points = [
            {
                "index": i,
                "label": y,
                "clean_pred": c,
                "adv_pred": a,
                "robust": r,
                "broken_by": b,
                "attacks": rec,
            }
            for i, y, c, a, r, b, rec in zip(
                self.indices,
                self.labels,
                self.clean_pred,
                self.adv_pred,
                self.robust,
                self.broken_by,
                self.restart_records,
                strict=True,
            )
        ]
        return {
            **self.meta,
            "eps": self.eps,
            "num_points": self.num_points,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "mean_over_restarts_accuracy": first.mean_over_restarts_accuracy if first else None,
            "grad_evals": self.grad_evals,
            "queries": self.queries,
            "wall_time_s": self.wall_time_s,
            "verification": {
                "adversarial_points_rechecked": self.verified_points,
                "mismatches": len(self.verification_mismatches),
                "mismatched_indices": self.verification_mismatches,
                "rule": "a stored example counts only if, re-run, it is misclassified, within "
                "the eps-ball and in [0, 1]; a mismatch counts the point as robust",
            },
            "attacks": [vars(a) for a in self.attacks],
            "subset_indices": self.indices,
            "points": points,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (JSON) and, beside it, the adversarial examples (safetensors)."""
        path = Path(path)
        adv_path = path.with_suffix(".adv.safetensors")
        broken = torch.tensor([not r for r in self.robust], dtype=torch.bool)
        tensors = {
            "indices": torch.tensor(self.indices, dtype=torch.int64)[broken],
            "x_adv": self.x_adv[broken].contiguous().cpu(),
        }
        atomic_write(adv_path, lambda tmp: save_file(tensors, str(tmp)))
        data = self.to_dict()
        data["adversarial_examples"] = adv_path.name
        return write_json(path, data)


def predict(
    model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Predicted classes of ``x`` (on the CPU), ``batch_size`` inputs at a time."""
    with torch.no_grad():
        return torch.cat(
            [
                model(x[i : i + batch_size].to(device)).argmax(1).cpu()
                for i in range(0, len(x), batch_size)
            ]
            or [torch.zeros(0, dtype=torch.int64)]
        )


def adversarial_mask(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
    tol: float = 1e-6,
) -> torch.Tensor:
    """Per example: inside the eps-ball, inside [0, 1] and misclassified when re-run."""
    if len(x_adv) == 0:
        return torch.zeros(0, dtype=torch.bool)
    dist = (x_adv - x).flatten(1).abs().max(dim=1).values
    in_box = (x_adv.flatten(1).min(dim=1).values >= 0) & (x_adv.flatten(1).max(dim=1).values <= 1)
    wrong = predict(model, x_adv, batch_size, torch.device(device)) != y.cpu()
    return (dist.cpu() <= eps + tol) & in_box.cpu() & wrong


def verify_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    **options: Any,
) -> int:
    """Check every example as :func:`adversarial_mask` does (same ``options``); raise on any
    failure. For checking stored results by hand; evaluations count failures as robust.
    """
    ok = adversarial_mask(model, x, x_adv, y, eps, **options)
    if not ok.all():
        raise VerificationError(
            f"{int((~ok).sum())} of {len(ok)} stored adversarial examples are outside the "
            "eps-ball or [0, 1], or classified correctly when the model is re-run on them"
        )
    return len(x_adv)


class _State:
    """Per-point outcome so far, built from journal parts and fresh ones alike."""

    def __init__(self, x: torch.Tensor, attacks: Sequence[NamedAttack]) -> None:
        n = len(x)
        self.labels = [a.label for a in attacks]
        self.clean_pred: list[int | None] = [None] * n
        self.robust = [False] * n
        self.broken_by: list[str | None] = [None] * n
        self.records: list[dict[str, dict[str, Any]]] = [{} for _ in range(n)]
        self.mismatch: list[list[str]] = [[] for _ in range(n)]
        self.x_adv = x.detach().cpu().clone()
        self.costs: dict[str, dict[str, Any]] = {}  # part name -> label, cost, time
        # Warm starts: per point, the not-adversarial example with the largest margin so far,
        # kept from the stages before the last warm-started one.
        self.last_warm = max((k + 1 for k, a in enumerate(attacks) if a.warm_start), default=0)
        self.start = x.detach().cpu().clone() if self.last_warm else None
        self.start_margin = [-math.inf] * n

    def apply(self, part: Part, y: list[int]) -> None:
        if part.name in self.costs:
            return
        self.costs[part.name] = {
            "label": part.label,
            "cost": part.cost,
            "wall_time_s": part.wall_time_s,
        }
        if part.stage == 0:
            for pos, pred in zip(part.positions, part.clean_pred, strict=True):
                self.clean_pred[pos] = pred
                self.robust[pos] = pred == y[pos]
                self.broken_by[pos] = None if pred == y[pos] else "clean"
            return
        adv = iter(part.x_adv if part.x_adv is not None else [])
        best = iter(part.x_best if part.x_best is not None else [])
        for pos, hit, bad, record in zip(
            part.positions, part.hit, part.mismatch, part.records, strict=True
        ):
            self.records[pos][part.label] = record
            if bad:
                self.mismatch[pos].append(part.label)
            if hit:
                self.robust[pos] = False
                self.broken_by[pos] = part.label
                self.x_adv[pos] = next(adv)
            elif part.x_best is not None:
                self._offer_start(pos, next(best), record["margin"])

    def _offer_start(self, pos: int, example: torch.Tensor, margin_: float | None) -> None:
        """Keep ``example`` as the point's warm start if its margin is the largest yet."""
        if self.start is not None and margin_ is not None and margin_ > self.start_margin[pos]:
            self.start[pos] = example
            self.start_margin[pos] = margin_

    def pending(self, stage: int, positions: list[int]) -> list[int]:
        """Positions of ``positions`` still to be run through ``stage``."""
        if stage == 0:
            return [p for p in positions if self.clean_pred[p] is None]
        label = self.labels[stage - 1]
        return [p for p in positions if self.robust[p] and label not in self.records[p]]


def _restart_record(result: Any, row: int) -> dict[str, Any]:
    """JSON record of one point: per-restart final loss and success (None: not run), and
    ``gave_up`` when a run stopped on the point early for too little progress."""
    record: dict[str, Any] = {
        "loss": _round(float(result.loss[row])),
        "margin": _round(float(result.margin[row])),
    }
    if result.restarts is not None:
        ran = result.restarts.ran[row].tolist()
        if (result.restarts.status[row] == GAVE_UP).any():
            record["gave_up"] = True
        losses = result.restarts.loss[row].tolist()
        wins = result.restarts.success[row].tolist()
        record["restart_loss"] = [
            _round(v) if r else None for v, r in zip(losses, ran, strict=True)
        ]
        record["restart_success"] = [bool(s) if r else None for s, r in zip(wins, ran, strict=True)]
    return record


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 6)


def _block_size(attack: Attack | None, points: int, batch_size: int) -> int:
    """Points per journal block: four forward batches' worth (at least one point)."""
    rows = 1 if attack is None else attack.rows_per_point(points)
    return max(1, 4 * (batch_size // rows))


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Sequence[NamedAttack],
    *,
    indices: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    show_progress: bool = True,
    journal: str | Path | None = None,
    resume: bool = False,
    manifest: dict[str, Any] | None = None,
    shard: Context | None = None,
) -> EvaluationResult:
    """Attack the points ``(x, y)`` with each attack in turn, on the points still robust.

    A point is robust only if it is classified correctly and survives every restart of
    every attack. Each adversarial example is re-checked (re-run, in the eps-ball, in
    [0, 1]) as soon as it is found and again at the end; one that fails counts its point
    as robust and is reported, it never aborts the run. ``batch_size`` is the number of
    rows (points x restarts) per forward pass (default: what runs fastest on the device).

    The model runs in eval mode on ``device``; its mode and device are restored after.
    ``journal``: a folder where finished blocks are written as they finish, so that a
    killed run continues with ``resume=True`` (``manifest`` guards against resuming with
    other settings). ``shard``: this process's share under ``torchrun``; every process
    returns the merged result. An attack marked ``warm_start`` starts on each point from
    the not-adversarial example of the earlier attacks with the largest margin.
    """
    check_inputs(x, y)
    x, y = x.detach().cpu(), y.detach().cpu()
    eps_values = {a.attack.eps for a in attacks}
    if len(eps_values) > 1:
        raise ValueError(f"all attacks of one evaluation must share eps, got {sorted(eps_values)}")
    labels = [a.label for a in attacks]
    if len(set(labels)) != len(labels):
        raise ValueError(f"attack labels must be distinct, got {labels}")
    eps = eps_values.pop() if eps_values else 0.0
    device = torch.device(device)
    batch_size = batch_size or default_batch_rows(device)
    shard = shard or Context()
    n = len(x)
    indices = list(range(n)) if indices is None else [int(i) for i in indices]
    if len(indices) != n:
        raise ValueError(f"{n} inputs but {len(indices)} indices")
    y_list = [int(v) for v in y.tolist()]
    for named in attacks:
        named.attack.max_batch = batch_size
    state = _State(x, attacks)
    book = None
    if journal is not None:
        book = _open_journal(journal, manifest or {}, resume, shard)
        for part in book.parts():
            state.apply(part, y_list)
    mine = shard.positions(n)
    with evaluation_mode(model, device):
        if n:
            check_model_contract(model, x[:8].to(device), y[:8].to(device))
        for stage in range(len(attacks) + 1):
            named = attacks[stage - 1] if stage else None
            todo = state.pending(stage, mine)
            size = _block_size(named.attack if named else None, len(todo), batch_size)
            desc = named.label if named else "clean"
            bar = progress_bar(
                desc=desc, total=len(todo), enabled=show_progress and bool(todo), unit="pt"
            )
            for first in range(0, len(todo), size):
                block = todo[first : first + size]
                start = None
                if named is not None and named.warm_start:
                    start = state.start[torch.tensor(block, dtype=torch.int64)]  # type: ignore[index]
                part = _run_block(
                    model,
                    x,
                    y,
                    eps,
                    block,
                    indices,
                    stage,
                    named,
                    device,
                    batch_size,
                    start=start,
                    keep_best=0 < stage < state.last_warm,
                )
                if book is not None:
                    book.write(part)
                state.apply(part, y_list)
                bar.update(len(block))
            bar.close()
        if shard.distributed:
            for share in all_gather(shard, _share(state, mine)):
                _merge(state, share)
        return _finish(model, x, y, eps, attacks, state, indices, device, batch_size)


def _open_journal(
    folder: str | Path, manifest: dict[str, Any], resume: bool, shard: Context
) -> Journal:
    """Rank 0 starts or checks the journal; every rank raises the same error, if any."""
    problem: Exception | None = None
    if shard.is_main:
        try:
            Journal.open(folder, manifest, resume=resume)
        except (FileExistsError, ValueError) as err:
            problem = err
    problem = broadcast_from_main(shard, problem)
    if problem is not None:
        raise problem
    return Journal(folder)


def _share(state: _State, positions: list[int]) -> dict[str, Any]:
    """This process's part of the outcome: only the positions it owns (not its warm
    starts: every attack has run by the time the shares are merged)."""
    return {
        "positions": positions,
        "clean_pred": [state.clean_pred[p] for p in positions],
        "robust": [state.robust[p] for p in positions],
        "broken_by": [state.broken_by[p] for p in positions],
        "records": [state.records[p] for p in positions],
        "mismatch": [state.mismatch[p] for p in positions],
        "x_adv": state.x_adv[positions],
        "costs": state.costs,
    }


def _merge(into: _State, share: dict[str, Any]) -> None:
    """Overwrite the positions another process owns with its outcome for them."""
    for i, pos in enumerate(share["positions"]):
        for key in ("clean_pred", "robust", "broken_by", "records", "mismatch"):
            getattr(into, key)[pos] = share[key][i]
        into.x_adv[pos] = share["x_adv"][i]
    for name, entry in share["costs"].items():
        into.costs.setdefault(name, entry)


def _run_block(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    block: list[int],
    indices: list[int],
    stage: int,
    named: NamedAttack | None,
    device: torch.device,
    batch_size: int,
    *,
    start: torch.Tensor | None = None,
    keep_best: bool = False,
) -> Part:
    """Clean predictions (stage 0) or one attack on the positions ``block``, from
    ``start`` when given; with ``keep_best`` the part keeps the not-broken examples."""
    pos = torch.tensor(block, dtype=torch.int64)
    xb, yb = x[pos], y[pos]
    started = time.perf_counter()
    if named is None:
        pred = predict(model, xb, batch_size, device)
        return Part(
            stage=0,
            label="clean",
            positions=block,
            clean_pred=pred.tolist(),
            cost={"gradients": 0, "forwards": len(block), "queries": 0},
            wall_time_s=time.perf_counter() - started,
        )
    index = torch.tensor([indices[p] for p in block], dtype=torch.int64)
    x_init = None if start is None else start.to(device)
    out = named.attack(model, xb.to(device), yb.to(device), index=index.to(device), x_init=x_init)
    success = out.success.cpu()
    x_adv = out.x_adv.detach().cpu()
    ok = torch.zeros_like(success)
    if success.any():
        ok[success] = adversarial_mask(
            model,
            xb[success],
            x_adv[success],
            yb[success],
            eps,
            batch_size=batch_size,
            device=device,
        )
    hit = success & ok
    return Part(
        stage=stage,
        label=named.label,
        positions=block,
        hit=hit.tolist(),
        mismatch=(success & ~ok).tolist(),
        records=[_restart_record(out, row) for row in range(len(block))],
        cost=out.cost.to_dict(),
        wall_time_s=time.perf_counter() - started,
        x_adv=x_adv[hit],
        x_best=x_adv[~hit] if keep_best else None,
    )


def _finish(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    attacks: Sequence[NamedAttack],
    state: _State,
    indices: list[int],
    device: torch.device,
    batch_size: int,
) -> EvaluationResult:
    """Re-check every stored example once more and assemble the result."""
    n = len(x)
    robust = torch.tensor(state.robust, dtype=torch.bool)
    attacked = torch.tensor([s not in (None, "clean") for s in state.broken_by], dtype=torch.bool)
    broken = attacked & ~robust
    if broken.any():
        ok = adversarial_mask(
            model,
            x[broken],
            state.x_adv[broken],
            y[broken],
            eps,
            batch_size=batch_size,
            device=device,
        )
        for pos in broken.nonzero().squeeze(1)[~ok].tolist():
            state.mismatch[pos].append(f"final re-check of {state.broken_by[pos]}")
            state.robust[pos] = True
            state.broken_by[pos] = None
    keep_clean = torch.tensor(state.robust, dtype=torch.bool).view(-1, *[1] * (x.dim() - 1))
    x_final = torch.where(keep_clean, x, state.x_adv)
    adv_pred = predict(model, x_final, batch_size, device)
    summaries = []
    for k, named in enumerate(attacks):
        summaries.append(_summary(named, k, state, n))
    clean_time = sum(e["wall_time_s"] for e in state.costs.values() if e["label"] == "clean")
    return EvaluationResult(
        indices=indices,
        labels=[int(v) for v in y.tolist()],
        clean_pred=[int(p) if p is not None else -1 for p in state.clean_pred],
        adv_pred=adv_pred.tolist(),
        robust=list(state.robust),
        broken_by=list(state.broken_by),
        restart_records=state.records,
        attacks=summaries,
        eps=eps,
        x_adv=x_final,
        clean_time_s=clean_time,
        verified_points=int(broken.sum()),
        verification_mismatches=[indices[p] for p, m in enumerate(state.mismatch) if m],
    )


def _summary(named: NamedAttack, k: int, state: _State, n: int) -> AttackSummary:
    label = named.label
    later = set(state.labels[k + 1 :])
    attacked = [p for p in range(n) if label in state.records[p]]
    broken = [p for p in attacked if state.broken_by[p] == label]
    robust_after = sum(1 for p in range(n) if state.robust[p] or state.broken_by[p] in later)
    cost, wall = Cost(), 0.0
    for entry in state.costs.values():
        if entry["label"] == label:
            cost = cost + Cost(**entry["cost"])
            wall += entry["wall_time_s"]
    return AttackSummary(
        label=label,
        config=named.config(),
        points_attacked=len(attacked),
        points_broken=len(broken),
        robust_accuracy_after=robust_after / n if n else float("nan"),
        mean_over_restarts_accuracy=_mean_over_restarts(label, k, state, n),
        grad_evals=cost.gradients,
        forward_evals=cost.forwards,
        queries=cost.queries,
        wall_time_s=wall,
        verification_mismatches=sum(1 for m in state.mismatch if label in m),
        points_given_up=sum(1 for p in attacked if state.records[p][label].get("gave_up")),
    )


def _mean_over_restarts(label: str, k: int, state: _State, n: int) -> float | None:
    """The seed's mean over restarts, for the first attack when every restart was run."""
    if k != 0 or n == 0:
        return None
    kept = 0.0
    for p in range(n):
        record = state.records[p].get(label)
        if record is None:
            continue  # misclassified clean: never robust
        wins = record.get("restart_success")
        if wins is None or any(w is None for w in wins):
            return None
        kept += 1 - sum(wins) / len(wins)
    return kept / n


def load_adversarial(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The (indices, x_adv) stored beside a results file."""
    tensors = load_file(str(path))
    return tensors["indices"], tensors["x_adv"]
