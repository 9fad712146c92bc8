"""Runs in lock step (a point's targets and restarts in one batch, as on a GPU): the
result of the runs one after another, for more gradients in fewer passes."""

from __future__ import annotations

import pytest
import torch

from lpbench.attacks import APGD, APGDT, FAB, Attack
from lpbench.attacks._common import Siblings, Tracker, lockstep_on, rounds
from tests.attack_models import Counting, RowwiseNet


def _make(kind: str, lockstep: bool) -> Attack:
    if kind == "apgd-restarts":
        return APGD(0.08, iters=6, restarts=4, loss="dlr", lockstep=lockstep)
    if kind == "apgd-t":
        return APGDT(0.08, iters=6, targets=3, restarts=2, lockstep=lockstep)
    if kind == "apgd-t-give-up":
        return APGDT(0.08, iters=8, targets=3, give_up=((3, 0.95),), lockstep=lockstep)
    if kind == "apgd-t-smooth":
        return APGDT(0.08, iters=6, targets=3, smooth_relu=3.0, lockstep=lockstep)
    return FAB(0.08, iters=6, targets=3, restarts=2, skip_targets=0, lockstep=lockstep)


KINDS = ["apgd-restarts", "apgd-t", "apgd-t-give-up", "apgd-t-smooth", "fab-t"]


@pytest.mark.parametrize("kind", KINDS)
def test_lockstep_gives_the_runs_one_after_another(kind: str) -> None:
    model = Counting(RowwiseNet(classes=10).eval())
    x = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model.model(x).argmax(1)
    runs = {}
    for lockstep in (False, True):
        model.calls = 0
        runs[lockstep] = (_make(kind, lockstep)(model, x, y), model.calls)
    (one_by_one, calls_one), (together, calls_together) = runs[False], runs[True]
    records = one_by_one.restarts
    assert records is not None and together.restarts is not None
    first_win = records.success.int().argmax(dim=1)
    assert (records.success.any(dim=1) & (first_win > 0)).any()  # later runs break points
    assert (~one_by_one.success).any()  # and some points survive every run
    assert torch.equal(together.x_adv, one_by_one.x_adv)
    assert torch.equal(together.success, one_by_one.success)
    assert torch.equal(together.loss, one_by_one.loss)
    assert torch.equal(together.margin, one_by_one.margin)
    assert torch.equal(together.restarts.status, records.status)
    assert torch.equal(together.restarts.loss.nan_to_num(), records.loss.nan_to_num())
    assert calls_together < calls_one
    assert together.cost.gradients > one_by_one.cost.gradients
    assert together.spent is not None and one_by_one.spent is not None
    assert int(together.spent.sum()) == together.cost.gradients
    assert (together.spent <= _make(kind, True).max_spend_per_point()).all()
    # a point no run broke spent the same: every run ran to its end (or gave up) either way
    survived = ~one_by_one.success
    assert torch.equal(together.spent[survived], one_by_one.spent[survived])


def test_a_row_stops_once_an_earlier_run_of_its_point_has_succeeded() -> None:
    siblings = Siblings.of(points=2, count=3, device=torch.device("cpu"))
    # rows: run 0 of points 0, 1; run 1 of points 0, 1; run 2 of points 0, 1
    success = torch.tensor([False, False, True, False, False, True])
    # point 0: run 1 won, so run 2 stops, run 0 goes on (it may still win first);
    # point 1: only its last run won, nothing to stop
    assert siblings.cut(success).tolist() == [False, False, False, False, True, False]


def test_lockstep_by_default_only_on_cuda() -> None:
    assert lockstep_on(None, torch.device("cuda")) and not lockstep_on(None, torch.device("cpu"))
    assert lockstep_on(True, torch.device("cpu")) and not lockstep_on(False, torch.device("cuda"))


def _rounds(runs: int, together: bool, max_batch: int, broken_after: int) -> list[tuple]:
    """The rounds drawn over 10 points when the first ``broken_after`` of them break in
    their first round."""
    track = Tracker(torch.zeros(10, 1), runs)
    drawn = []
    for points, first, count in rounds(track, runs, together, max_batch):
        drawn.append((points.tolist(), first, count))
        if first == 0:
            track.success[points[points < broken_after]] = True
    return drawn


def test_rounds_one_run_after_another_or_all_of_a_points_runs_together() -> None:
    every = list(range(10))
    assert _rounds(3, False, 100, 4) == [(every, 0, 1), (every[4:], 1, 1), (every[4:], 2, 1)]
    # together: all three runs of a point in one round, points grouped to fit 12 rows
    assert _rounds(3, True, 12, 4) == [(every[:4], 0, 3), (every[4:8], 0, 3), (every[8:], 0, 3)]
    # fewer rows than runs: as many runs as fit, still whatever the batch-mates
    last = [(every[i : i + 2], 2, 1) for i in range(0, 10, 2)]
    assert _rounds(3, True, 2, 0) == [([p], 0, 2) for p in every] + last


@pytest.mark.parametrize("kind", ["apgd-t", "fab-t"])
def test_in_lockstep_a_points_cost_does_not_depend_on_its_batch_mates(kind: str) -> None:
    model = RowwiseNet(classes=10).eval()
    x = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    index = torch.arange(60)
    among = _make(kind, True)(model, x, y)
    alone = _make(kind, True)(model, x[:20], y[:20], index=index[:20])
    small = _make(kind, True).replace(max_batch=7)(model, x, y)  # 2 points per group
    one_by_one = _make(kind, False)(model, x, y)
    assert among.spent is not None and alone.spent is not None and small.spent is not None
    assert torch.equal(alone.spent, among.spent[:20])
    assert torch.equal(small.spent, among.spent)
    assert torch.equal(small.x_adv, among.x_adv)
    assert one_by_one.spent is not None and not torch.equal(one_by_one.spent, among.spent)
