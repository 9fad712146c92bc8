"""Run attacks on a fixed set of points, keep the worst case per point, verify, record.

A point's outcome depends only on the model, the point, the attacks and their seeds:
never on the batch size, the order of points, how many processes share the work, or
whether the run was interrupted and resumed (see :mod:`lpbench.evaluation.journal`).
A randomised model (pre-flight ``facts.randomised``) is the exception: its noise comes
from torch's global generator, which lpbench seeds per block of points
(:func:`~lpbench.evaluation.verify.keyed_noise`), so such a run repeats exactly with the
same points, batch size and processes; its examples count as adversarial only when every
one of :data:`~lpbench.evaluation.verify.RANDOMISED_RECHECKS` draws misclassifies them.
The result types are in :mod:`lpbench.evaluation.result`, the re-checks of examples in
:mod:`lpbench.evaluation.verify`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lpbench.attacks import APGD, FAB, Attack
from lpbench.attacks.base import GAVE_UP, Cost
from lpbench.distributed import Context, all_gather, broadcast_from_main
from lpbench.evaluation.journal import Journal, Part
from lpbench.evaluation.preflight import ModelFacts, prepared, smoothing_record
from lpbench.evaluation.result import AttackSummary, EvaluationResult
from lpbench.evaluation.specs import NamedAttack
from lpbench.evaluation.state import State, merge, pool_limit, share
from lpbench.evaluation.verify import (
    RANDOMISED_RECHECKS,
    adversarial_mask,
    checked_predictions,
    keyed_noise,
    predict,
)
from lpbench.runtime import default_batch_rows, progress_bar

#: Key of a journal part's cost: forward passes that re-checked the attack's examples.
VERIFICATION = "verification_forwards"


def _restart_record(result: Any, row: int) -> dict[str, Any]:
    """JSON record of one point: per-restart final loss and success (None: not run), and
    ``gave_up`` when a run stopped on the point early for too little progress."""
    record: dict[str, Any] = {
        "loss": _round(float(result.loss[row])),
        "margin": _round(float(result.margin[row])),
    }
    if result.spent is not None:
        record["spent"] = int(result.spent[row])
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
    facts: ModelFacts | None = None,
    lockstep: bool | None = None,
) -> EvaluationResult:
    """Attack the points ``(x, y)`` with each attack in turn, on the points still robust.

    A point is robust only if it is classified correctly and survives every restart of
    every attack. Each adversarial example is re-checked (re-run, in the eps-ball, in
    [0, 1]) as soon as it is found and again at the end; one that fails counts its point
    as robust and is reported, it never aborts the run. ``batch_size`` is the number of
    rows (points x restarts) per forward pass (default: what runs fastest on the device).
    Every forward pass is counted: the attacks' own in their summaries (with the
    re-checks of their examples, ``verification_forwards``), the clean pass and the last
    re-check and prediction in ``forwards_outside_attacks``.

    The model runs in eval mode on ``device``; its mode and device are restored after.
    ``journal``: a folder where finished blocks are written as they finish, so that a
    killed run continues with ``resume=True`` (``manifest`` guards against resuming with
    other settings). ``shard``: this process's share under ``torchrun``; every process
    returns the merged result. An attack marked ``warm_start`` starts on each point from
    the not-adversarial example of the earlier attacks with the largest margin.
    ``facts``: the model's :func:`~lpbench.evaluation.preflight.prepared`, run by a caller
    that holds the model in eval mode on ``facts.device`` (which then replaces ``device``);
    without, the pre-flight runs here. ``lockstep`` (None: each attack's own setting, by
    default on CUDA devices only) sets whether attacks with several runs per point
    (APGD's restarts, APGD-T's and FAB-T's targets) run a point's runs in one batch,
    points grouped to fit ``batch_size`` rows: the same results in fewer passes, for more
    gradients on the points broken before their last run (the later ones go on until then).
    """
    run = (indices, batch_size, show_progress, journal, resume, manifest, shard, lockstep)
    if facts is not None:
        return _evaluate(model, x, y, attacks, facts, *run)
    with prepared(model, x, y, torch.device(device)) as found:
        return _evaluate(model, x, y, attacks, found, *run)


def _evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Sequence[NamedAttack],
    facts: ModelFacts,
    indices: Sequence[int] | None,
    batch_size: int | None,
    show_progress: bool,
    journal: str | Path | None,
    resume: bool,
    manifest: dict[str, Any] | None,
    shard: Context | None,
    lockstep: bool | None,
) -> EvaluationResult:
    """:func:`evaluate` on a model the pre-flight has put in eval mode on ``facts.device``."""
    x, y = x.detach().cpu(), y.detach().cpu()
    eps_values = {a.attack.eps for a in attacks}
    if len(eps_values) > 1:
        raise ValueError(f"all attacks of one evaluation must share eps, got {sorted(eps_values)}")
    labels = [a.label for a in attacks]
    if len(set(labels)) != len(labels):
        raise ValueError(f"attack labels must be distinct, got {labels}")
    eps = eps_values.pop() if eps_values else 0.0
    device = facts.device
    batch_size = batch_size or default_batch_rows(device)
    shard = shard or Context()
    n = len(x)
    indices = list(range(n)) if indices is None else [int(i) for i in indices]
    if len(indices) != n:
        raise ValueError(f"{n} inputs but {len(indices)} indices")
    y_list = [int(v) for v in y.tolist()]
    for each in attacks:
        each.attack.max_batch = batch_size
        if lockstep is not None and isinstance(each.attack, (APGD, FAB)):
            each.attack.lockstep = lockstep
    state = State(x, attacks)
    book = None
    if journal is not None:
        book = _open_journal(journal, manifest or {}, resume, shard)
        for part in book.parts():
            state.apply(part, y_list)
    smoothing = smoothing_record(facts, attacks, warn=shard.is_main)  # warned once, here
    random, draws = facts.randomised, RANDOMISED_RECHECKS if facts.randomised else 1
    mine = shard.positions(n)
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
            limit = None
            if named is not None and named.pooled and named.attack.takes_limit:
                limit = pool_limit(state, attacks, stage, block)
            key = (desc, named.attack.key if named else 0, indices[block[0]], len(block))
            with keyed_noise(random, device, *key):
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
                    limit=limit,
                    keep_best=0 < stage < state.last_warm,
                    draws=draws,
                )
            if book is not None:
                book.write(part)
            state.apply(part, y_list)
            bar.update(len(block))
        bar.close()
    if shard.distributed:
        for other in all_gather(shard, share(state, mine)):
            merge(state, other)
    with keyed_noise(random, device, "final check", n):
        result = _finish(model, x, y, eps, attacks, state, indices, device, batch_size, draws)
    result.smoothing = smoothing
    if facts.forwards:  # the pre-flight's passes, once per process that ran it
        preflight = facts.forwards * (shard.world_size if shard.distributed else 1)
        result.forwards_outside_attacks = {
            "preflight": preflight,
            **result.forwards_outside_attacks,
        }
    return result


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
    limit: torch.Tensor | None = None,
    keep_best: bool = False,
    draws: int = 1,
) -> Part:
    """Clean predictions (stage 0) or one attack on the positions ``block``, from
    ``start`` when given; with ``keep_best`` the part keeps the not-broken examples;
    ``draws``: re-checks of each example (a randomised model)."""
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
    out = named.attack(
        model,
        xb.to(device),
        yb.to(device),
        index=index.to(device),
        x_init=x_init,
        limit=None if limit is None else limit.to(device),
    )
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
            draws=draws,
        )
    hit = success & ok
    return Part(
        stage=stage,
        label=named.label,
        positions=block,
        hit=hit.tolist(),
        mismatch=(success & ~ok).tolist(),
        records=[_restart_record(out, row) for row in range(len(block))],
        cost=out.cost.to_dict() | {VERIFICATION: int(success.sum()) * draws},
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
    state: State,
    indices: list[int],
    device: torch.device,
    batch_size: int,
    draws: int = 1,
) -> EvaluationResult:
    """Re-check every stored example once more (``draws`` times: a randomised model) and
    assemble the result."""
    n = len(x)
    robust = torch.tensor(state.robust, dtype=torch.bool)
    attacked = torch.tensor([s not in (None, "clean") for s in state.broken_by], dtype=torch.bool)
    broken = attacked & ~robust
    # every point's prediction on its final input: the re-check's on the examples that
    # pass it, the clean one on the rest (whose final input is the clean one)
    adv_pred = torch.tensor([-1 if p is None else p for p in state.clean_pred])
    if broken.any():
        ok, pred = checked_predictions(
            model,
            x[broken],
            state.x_adv[broken],
            y[broken],
            eps,
            batch_size=batch_size,
            device=device,
            draws=draws,
        )
        positions = broken.nonzero().squeeze(1)
        adv_pred[positions[ok]] = pred[ok]
        for pos in positions[~ok].tolist():
            state.mismatch[pos].append(f"final re-check of {state.broken_by[pos]}")
            state.robust[pos] = True
            state.broken_by[pos] = None
    keep_clean = torch.tensor(state.robust, dtype=torch.bool).view(-1, *[1] * (x.dim() - 1))
    x_final = torch.where(keep_clean, x, state.x_adv)
    unknown = (adv_pred < 0).nonzero().squeeze(1)  # no clean prediction recorded
    if unknown.numel():
        adv_pred[unknown] = predict(model, x_final[unknown], batch_size, device)
    clean_forwards = sum(
        e["cost"]["forwards"] for e in state.costs.values() if e["label"] == "clean"
    )
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
        forwards_outside_attacks={
            "clean": clean_forwards,
            "final_check": int(broken.sum()) * draws + int(unknown.numel()),  # the re-check
        },
    )


def _summary(named: NamedAttack, k: int, state: State, n: int) -> AttackSummary:
    label = named.label
    later = set(state.labels[k + 1 :])
    attacked = [p for p in range(n) if label in state.records[p]]
    broken = [p for p in attacked if state.broken_by[p] == label]
    robust_after = sum(1 for p in range(n) if state.robust[p] or state.broken_by[p] in later)
    cost, wall, verification = Cost(), 0.0, 0
    for entry in state.costs.values():
        if entry["label"] == label:
            spent = dict(entry["cost"])
            verification += spent.pop(VERIFICATION, 0)
            cost = cost + Cost(**spent)
            wall += entry["wall_time_s"]
    return AttackSummary(
        label=label,
        config=named.config(),
        points_attacked=len(attacked),
        points_broken=len(broken),
        robust_accuracy_after=robust_after / n if n else float("nan"),
        mean_over_restarts_accuracy=_mean_over_restarts(label, k, state, n),
        gradients=cost.gradients,
        forward_evals=cost.forwards,
        queries=cost.queries,
        verification_forwards=verification,
        shared_gradients=cost.shared_gradients,
        shared_forwards=cost.shared_forwards,
        wall_time_s=wall,
        verification_mismatches=sum(1 for m in state.mismatch if label in m),
        points_given_up=sum(1 for p in attacked if state.records[p][label].get("gave_up")),
    )


def _mean_over_restarts(label: str, k: int, state: State, n: int) -> float | None:
    """The original paper's mean over restarts, for the first attack when every restart was run."""
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
