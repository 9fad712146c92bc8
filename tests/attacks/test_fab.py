"""FAB-T: the exact L-infinity projection, breaking power, targeting, budgets, batches."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lpbench.attacks import FAB
from lpbench.attacks.base import COMPLETE
from lpbench.attacks.fab import project_linf
from tests.attack_models import Quantised, trained_mlp, two_way_linear, unbreakable


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    dim=st.integers(1, 12) | st.sampled_from([100, 784]),
    sparse=st.booleans(),
    levels=st.sampled_from([0, 2, 5]),
)
def test_projection_is_the_smallest_step_onto_the_hyperplane(
    seed: int, dim: int, sparse: bool, levels: int
) -> None:
    """Exact on short rows and on image-sized ones (where bisection brackets the step),
    also when many coordinates share a distance to the box (``levels``: grey levels)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.rand(6, dim, generator=gen, dtype=torch.float64)
    if levels:
        z = torch.round(z * (levels - 1)) / (levels - 1)
    w = torch.randn(6, dim, generator=gen, dtype=torch.float64)
    if sparse:
        w[:, 0] = 0.0
    b = (w * torch.rand(6, dim, generator=gen, dtype=torch.float64)).sum(1) * 1.5
    d, reachable = project_linf(z, w, b)
    moved = z + d
    assert (moved >= -1e-12).all() and (moved <= 1 + 1e-12).all()
    assert torch.allclose((w * moved).sum(1)[reachable], b[reachable], atol=1e-9)
    # any shorter step (each coordinate towards the plane, stopped by the box) falls short
    need = b - (w * z).sum(1)
    direction = torch.sign(w) * torch.sign(need)[:, None]
    room = torch.where(direction > 0, 1 - z, z)
    shorter = d.abs().amax(1, keepdim=True) * 0.999
    reach = (w.abs() * torch.minimum(room, shorter)).sum(1)
    moving = reachable & (need.abs() > 0)
    assert (reach[moving] < need.abs()[moving]).all()
    # out of reach: every coordinate that matters goes all the way to the box
    far = ~reachable
    expected = torch.where(w[far] != 0, direction[far] * room[far], torch.zeros_like(d[far]))
    assert torch.allclose(d[far], expected)


def test_breaks_an_undefended_model() -> None:
    model, x, y = trained_mlp()
    out = FAB(0.1, iters=20)(model, x, y)
    assert out.success.float().mean() >= 0.95
    assert (out.x_adv - x).abs().amax() <= 0.1 + 1e-6


def test_standalone_fab_is_targeted() -> None:
    """Other toolkits shipped a FAB that silently ran untargeted when run on its own. On this
    model the untargeted closest boundary is class 1; targeting class 2 must end in 2."""
    model = two_way_linear()
    x = 0.05 + 0.02 * torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(6, dtype=torch.long)
    out = FAB(0.2, iters=20)(model, x, y, target=torch.full((6,), 2))
    with torch.no_grad():
        assert (model(out.x_adv).argmax(1) == 2).all() and out.success.all()
    default = FAB(0.2, iters=20)(model, x, y)  # top other class first: class 1
    with torch.no_grad():
        assert (model(default.x_adv).argmax(1) == 1).all()
    assert FAB(0.2).config()["targeted"] is True


def test_budget_and_target_count_from_the_logits() -> None:
    model = unbreakable(classes=4)
    x = torch.rand(5, 1, 8, 8)
    y = torch.zeros(5, dtype=torch.long)
    out = FAB(0.3, iters=6, restarts=2)(model, x, y)  # default 9 targets, capped at 3
    assert not out.success.any()
    assert out.restarts.status.shape == (5, 3 * 2)
    assert (out.restarts.status == COMPLETE).all()
    runs = 5 * 3 * 2
    assert out.cost.gradients == runs * 6
    assert out.cost.forwards == 5 + runs * (6 + 6 + 1)  # clean, per step 1 + 1, final clip


def test_target_ranks_split_over_two_attacks_run_as_in_one() -> None:
    """``auto`` splits FAB-T's ranks (top 3, then the next 6): per point, the later ranks'
    runs (random restarts included) must be those of one FAB-T over all ranks."""
    model, x, y = trained_mlp(classes=10, n=40)
    index = torch.arange(100, 140)
    whole = FAB(0.04, iters=8, restarts=2, targets=9)(model, x, y, index=index)
    first = FAB(0.04, iters=8, restarts=2, targets=3)(model, x, y, index=index)
    left = (~first.success).nonzero().squeeze(1)
    rest = FAB(0.04, iters=8, restarts=2, targets=6, skip_targets=3)(
        model, x[left], y[left], index=index[left]
    )
    split = first.success.clone()
    split[left] = rest.success
    assert 0 < len(left) < len(x)
    assert torch.equal(split, whole.success)
    assert torch.equal(rest.restarts.status, whole.restarts.status[left][:, 6:])
    assert torch.equal(rest.restarts.loss, whole.restarts.loss[left][:, 6:])


def test_skipping_every_target_is_an_error() -> None:
    model, x, y = trained_mlp(classes=4, n=3)
    try:
        FAB(0.1, skip_targets=3)(model, x, y)
    except ValueError as err:
        assert "leaves no target" in str(err)
    else:
        raise AssertionError("FAB with every target skipped ran")


def test_a_zero_gradient_at_the_clean_point_ends_that_run_and_no_other() -> None:
    model = Quantised()
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(dim=1)
    first = FAB(0.3, iters=10, targets=4)(model, x, y)
    assert not first.success.any() and torch.equal(first.x_adv, x)
    assert first.cost.gradients == 8 * 4  # one gradient per point and target, not ten
    # runs from a random start still iterate (the iterate is not the clean point)
    later = FAB(0.3, iters=10, targets=4, restarts=2)(model, x, y)
    assert later.success.any() and later.cost.gradients > 8 * 4 * 2
