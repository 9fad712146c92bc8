"""What an evaluation reports it spent: every forward pass, and a shared cost for the
universal perturbations that does not depend on the points or the sources given."""

from __future__ import annotations

import pytest
import torch

from lpbench.attacks import APGD, FAB, FGSM, PGD, Square, Universal
from lpbench.evaluation import (
    UNIVERSAL_ITERATIONS,
    UNIVERSAL_SOURCES_PER_CLASS,
    AttackRequest,
    ModelFacts,
    NamedAttack,
    evaluate,
    evaluate_model,
    resolve_attacks,
)
from lpbench.evaluation.result import EvaluationResult
from tests.attack_models import Counting, trained_mlp

FACTS = ModelFacts(torch.device("cpu"), 5, True)


def test_every_forward_pass_of_an_evaluation_is_reported() -> None:
    model, x, y = trained_mlp(5, 40)
    y = y.clone()
    y[:3] = (y[:3] + 1) % 5  # misclassified as given
    _, pool, labels = trained_mlp(5, 512)
    eps = 0.03
    attacks = [
        NamedAttack("universal", Universal(eps, (pool[400:440], labels[400:440]), iters=2)),
        NamedAttack("fgsm", FGSM(eps, iters=2), warm_start=True),
        NamedAttack("pgd", PGD(eps, eps / 4, 10, restarts=2)),
        NamedAttack("apgd", APGD(eps, iters=10)),
        NamedAttack("fab", FAB(eps, iters=5, targets=2)),
        NamedAttack("square", Square(eps, queries=60, window_schedule="fixed")),
    ]
    counting = Counting(model)
    result = evaluate(counting, x, y, attacks, facts=FACTS, batch_size=16, show_progress=False)
    assert 0 < result.robust_accuracy < result.clean_accuracy
    assert result.forwards == counting.rows and result.gradients == counting.gradient_rows
    cost = result.to_dict()["cost"]
    assert cost["forwards"] == result.to_dict()["forwards"] == counting.rows
    steps = cost["forwards_by_step"]
    attacked = sum(b not in (None, "clean") for b in result.broken_by)  # re-checked again
    # the re-check of each example; the final predictions come from it and the clean pass
    assert steps["clean"] == 40 and steps["final_check"] == attacked
    assert steps["verification"] == sum(a.verification_forwards for a in result.attacks) > 0
    assert sum(steps.values()) == counting.rows
    universal = result.attacks[0]
    assert cost["shared"] == {
        "gradients": universal.shared_gradients,
        "forwards": universal.shared_forwards,
    }
    assert universal.shared_gradients == 2 * 40 and universal.gradients == 2 * 40
    assert f"{counting.rows:,} forward passes" in result.summary().splitlines()[0]


def _auto(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    positions: slice,
    sources: tuple[torch.Tensor, torch.Tensor],
) -> EvaluationResult:
    """``auto`` on the points at ``positions`` of (x, y), each keyed by its position."""
    request = AttackRequest("auto", None, 0.04, budget=700)
    attacks = resolve_attacks(request, facts=FACTS, sources=sources, seed=1).attacks
    indices = list(range(len(x)))[positions]
    return evaluate(
        model, x[positions], y[positions], attacks, indices=indices, facts=FACTS,
        batch_size=64, show_progress=False,
    )  # fmt: skip


def test_autos_cost_per_point_does_not_depend_on_the_other_points_and_sources_are_capped():
    """40 points alone cost what they cost among 1,000: the 960 others add exactly their
    own cost, and the universal perturbations are a shared cost of 5 sources x 5 classes x
    5 steps, whatever the number of sources."""
    model, x, y = trained_mlp(5, 1000)
    assert len(x) == 1000
    images = torch.rand(900, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    sources = (images, torch.arange(900) % 5)  # 180 images per class: never all used
    alone = _auto(model, x, y, slice(0, 40), sources)
    rest = _auto(model, x, y, slice(40, 1000), sources)
    among = _auto(model, x, y, slice(0, 1000), sources)
    assert 0 < among.robust_accuracy < 1 and alone.robust[:40] == among.robust[:40]
    shared = UNIVERSAL_SOURCES_PER_CLASS * 5 * UNIVERSAL_ITERATIONS
    costs = [r.to_dict()["cost"] for r in (alone, rest, among)]
    for cost in costs:
        assert cost["shared"]["gradients"] == shared
        assert cost["shared"]["forwards"] == shared + 1  # and the pass reading the classes
    for key in ("gradients", "forwards", "queries"):
        own = [c[key] - c["shared"].get(key, 0) for c in costs]
        assert own[0] + own[1] == own[2] and own[0] > 0, key
        assert costs[0]["per_point"][key] == own[0] / 40


def test_the_pre_flight_passes_are_charged_as_a_shared_cost() -> None:
    model, x, y = trained_mlp(5, 30)
    counting = Counting(model)
    attacks = [NamedAttack("pgd", PGD(0.03, 0.01, 5))]
    result = evaluate_model(counting, x, y, eps=0.03, attacks=attacks, show_progress=False)
    cost = result.cost()
    preflight = cost["forwards_by_step"]["preflight"]
    assert preflight > 0 and result.forwards == counting.rows
    assert cost["shared"]["forwards"] == preflight
    per_point = (result.forwards - preflight) / len(x)
    assert cost["per_point"]["forwards"] == pytest.approx(per_point)
