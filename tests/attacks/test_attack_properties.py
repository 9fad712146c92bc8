"""Properties every new attack keeps: eps-ball and box, honest success, counted budgets."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lpbench.attacks import APGD, APGDT, FAB, FGSM, SPSA, Attack, AttackResult, Square, Universal
from tests.attack_models import RowwiseNet
from tests.support import TinyNet


def _make(kind: str, eps: float, seed: int, budget: int) -> Attack:
    if kind == "apgd-ce":
        return APGD(eps, iters=budget, seed=seed)
    if kind == "apgd-dlr":
        return APGD(eps, iters=budget, loss="dlr", seed=seed)
    if kind == "apgd-t":
        return APGDT(eps, iters=budget, targets=2, seed=seed)
    if kind == "apgd-dlr-smooth":
        return APGD(eps, iters=budget, loss="dlr", smooth_relu=1.0, seed=seed)
    if kind == "apgd-t-smooth":
        return APGDT(eps, iters=budget, targets=2, smooth_relu=3.0, seed=seed)
    if kind == "fab-t":
        return FAB(eps, iters=budget, targets=2, restarts=2, seed=seed)
    if kind == "square":
        return Square(eps, queries=budget * 3, seed=seed)
    if kind == "spsa":
        return SPSA(eps, iters=budget, samples=8, seed=seed)
    if kind == "fgsm-steps":
        step = eps / 2 if eps / 2 > 0 else None  # a step must be positive (eps/2 may underflow)
        return FGSM(eps, step=step, iters=budget, random_start=bool(seed % 2), seed=seed)
    if kind == "universal":
        gen = torch.Generator().manual_seed(seed)
        sources = (torch.rand(12, 1, 8, 8, generator=gen), torch.arange(12) % 4)
        return Universal(eps, sources, iters=budget, seed=seed)
    return FGSM(eps, random_start=bool(seed % 2), seed=seed)


KINDS = ["apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square", "spsa", "fgsm", "fgsm-steps"]
KINDS += ["universal", "apgd-dlr-smooth", "apgd-t-smooth"]


@settings(max_examples=20, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    eps=st.floats(0.0, 0.6),
    seed=st.integers(0, 1000),
    budget=st.integers(1, 5),
)
def test_stays_in_ball_and_box(kind: str, eps: float, seed: int, budget: int) -> None:
    _check_ball_and_box(kind, eps, seed, budget)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("eps", [0.0, 5e-324, 1e-12, 1.0])
def test_stays_in_ball_and_box_at_extreme_eps(kind: str, eps: float) -> None:
    """Zero, the smallest subnormal (whose half underflows to 0), and the whole box."""
    _check_ball_and_box(kind, eps, 3, 2)


def _check_ball_and_box(kind: str, eps: float, seed: int, budget: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    model = TinyNet(classes=4, seed=seed).eval()
    x = torch.rand(5, 1, 8, 8, generator=gen)
    x[0] = 0.0  # corners of the box
    x[1] = 1.0
    with torch.no_grad():
        y = model(x).argmax(1)
    y[2] = (y[2] + 1) % 4  # one point misclassified from the start
    out = _make(kind, eps, seed, budget)(model, x, y)
    assert (out.x_adv - x).abs().max() <= eps + 1e-6
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    with torch.no_grad():
        logits = model(out.x_adv)
    assert torch.equal(out.success, logits.argmax(1) != y)  # success claims hold on re-run
    assert bool(out.success[2])
    assert torch.isfinite(out.margin).all()


@pytest.mark.parametrize("kind", KINDS)
def test_config_is_json_and_names_the_attack(kind: str) -> None:
    import json

    attack = _make(kind, 0.1, 0, 2)
    config = json.loads(json.dumps(attack.config()))
    assert config["attack"] == attack.name and config["eps"] == 0.1


def _equal(a: AttackResult, b: AttackResult) -> None:
    assert torch.equal(a.x_adv, b.x_adv)
    assert torch.equal(a.success, b.success)
    assert torch.equal(a.loss, b.loss)
    assert torch.equal(a.margin, b.margin)
    if a.restarts is not None:
        assert torch.equal(a.restarts.status, b.restarts.status)


@pytest.mark.parametrize("kind", KINDS)
def test_identical_per_point_results_for_any_batch_and_shard(kind: str) -> None:
    """Bit-identical per point on a model whose per-row outputs do not depend on the batch
    (with a matrix product, rounding may: continuous attacks such as FAB and SPSA then
    carry last-bit differences into their iterates)."""
    model = RowwiseNet().eval()
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    outs = []
    for max_batch in (3, 7, 10_000):
        attack = _make(kind, 0.1, 0, 4)
        attack.max_batch = max_batch
        outs.append(attack(model, x, y))
    assert 0 < int(outs[0].success.sum()) < 12  # points stop at different times
    _equal(outs[0], outs[1])
    _equal(outs[0], outs[2])
    full = outs[2]
    assert outs[0].cost == full.cost
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    permuted = _make(kind, 0.1, 0, 4)(model, x[perm], y[perm], index=perm)
    assert torch.equal(permuted.x_adv, full.x_adv[perm])
    assert torch.equal(permuted.success, full.success[perm])
    parts = [
        _make(kind, 0.1, 0, 4)(model, x[s], y[s], index=torch.arange(12)[s])
        for s in (slice(0, 5), slice(5, 12))
    ]
    _equal(AttackResult.concat(parts), full)
