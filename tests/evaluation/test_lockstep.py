"""An evaluation with lock step (``lockstep``): the same verdicts and examples as without,
recorded in the manifest, and a resume may switch it."""

from __future__ import annotations

import torch

from lpbench.attacks import APGD, APGDT, FAB
from lpbench.evaluation import NamedAttack, evaluate_model
from tests.attack_models import RowwiseNet


def _attacks() -> list[NamedAttack]:
    return [
        NamedAttack("apgd-ce", APGD(0.08, iters=6, restarts=2)),
        NamedAttack("apgd-t", APGDT(0.08, iters=6, targets=3)),
        NamedAttack("fab-t", FAB(0.08, iters=6, targets=3)),
    ]


def test_lockstep_changes_cost_not_results() -> None:
    model = RowwiseNet(classes=10).eval()
    x = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    runs = {
        lockstep: evaluate_model(
            model, x, y, eps=0.08, attacks=_attacks(), lockstep=lockstep, show_progress=False
        )
        for lockstep in (False, True, None)
    }
    off, on, default = runs[False], runs[True], runs[None]
    assert 0 < sum(off.robust) < len(off.robust)
    assert on.robust == off.robust and on.broken_by == off.broken_by
    assert torch.equal(on.x_adv, off.x_adv)
    assert on.gradients > off.gradients
    assert [on.meta["manifest"]["lockstep"], off.meta["manifest"]["lockstep"]] == [True, False]
    # on a CPU the default is one run after another
    assert default.meta["manifest"]["lockstep"] is False
    assert default.gradients == off.gradients


def test_manifest_records_an_attacks_own_lockstep() -> None:
    """An attack built with ``lockstep=True`` runs in lock step on a CPU even when the
    evaluation leaves the setting to the attacks; the manifest says so."""
    model = RowwiseNet(classes=10).eval()
    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    own = [NamedAttack("apgd-t", APGDT(0.08, iters=6, targets=3, lockstep=True))]
    result = evaluate_model(model, x, y, eps=0.08, attacks=own, show_progress=False)
    assert result.meta["manifest"]["lockstep"] is True
    overridden = [NamedAttack("apgd-t", APGDT(0.08, iters=6, targets=3, lockstep=True))]
    result = evaluate_model(
        model, x, y, eps=0.08, attacks=overridden, lockstep=False, show_progress=False
    )
    assert result.meta["manifest"]["lockstep"] is False
