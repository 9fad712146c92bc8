"""PGD: constraints, the analytic optimum of a linear model, restarts, budgets."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lpbench.attacks import PGD
from lpbench.attacks.losses import dlr, margin

from .conftest import TinyNet


@settings(max_examples=25, deadline=None)
@given(
    eps=st.floats(0.01, 0.5),
    step=st.floats(0.005, 1.0),
    iters=st.integers(0, 6),
    restarts=st.integers(1, 3),
    seed=st.integers(0, 1000),
    loss=st.sampled_from(["ce", "dlr"]),
    early_stop=st.booleans(),
)
def test_pgd_stays_in_ball_and_box(
    eps: float, step: float, iters: int, restarts: int, seed: int, loss: str, early_stop: bool
) -> None:
    gen = torch.Generator().manual_seed(seed)
    model = TinyNet(classes=4, seed=seed).eval()
    x = torch.rand(6, 1, 8, 8, generator=gen)
    x[0] = 0.0  # corners of the box
    x[1] = 1.0
    y = torch.randint(0, 4, (6,), generator=gen)
    out = PGD(eps, step, iters, restarts, loss=loss, seed=seed, early_stop=early_stop)(model, x, y)
    assert (out.x_adv - x).abs().max() <= eps + 1e-6
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    with torch.no_grad():
        pred = model(out.x_adv).argmax(1)
    assert torch.equal(out.success, pred != y)  # success claims hold on re-run
    assert out.restart_loss.shape == (6, restarts)


def _linear_two_class(dim: int = 20, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(dim, 2))
    with torch.no_grad():
        # class 0 wins whatever the input (|(w1 - w0) . x| < 9), yet gradients stay non-zero
        model[1].bias.copy_(torch.tensor([10.0, 0.0]))
    direction = (model[1].weight[1] - model[1].weight[0]).detach()
    return model.eval(), direction


def test_pgd_reaches_linear_optimum() -> None:
    """For a 2-class linear model the CE maximiser is clip(x + eps * sign(w1 - w0))."""
    model, direction = _linear_two_class()
    x = torch.rand(8, 20)
    y = torch.zeros(8, dtype=torch.long)
    eps, step = 0.1, 0.025
    out = PGD(eps, step, iters=10, restarts=2, keep_last=True)(model, x, y)
    optimum = (x + eps * direction.sign()).clamp(0, 1)
    assert torch.allclose(out.x_adv, optimum, atol=1e-6)
    expected_loss = nn.functional.cross_entropy(model(optimum), y, reduction="none")
    assert torch.allclose(out.best_loss, expected_loss.detach(), atol=1e-5)
    assert not out.success.any()  # the bias keeps class 0: nothing can be broken


def test_best_example_is_highest_loss_when_unbroken() -> None:
    model, direction = _linear_two_class()
    x = torch.rand(4, 20)
    y = torch.zeros(4, dtype=torch.long)
    out = PGD(0.1, 0.025, iters=10, restarts=3)(model, x, y)
    optimum = (x + 0.1 * direction.sign()).clamp(0, 1)
    optimal_loss = nn.functional.cross_entropy(model(optimum), y, reduction="none").detach()
    assert torch.allclose(out.best_loss, optimal_loss, rtol=1e-5)
    kept_loss = nn.functional.cross_entropy(model(out.x_adv), y, reduction="none").detach()
    assert torch.equal(kept_loss, out.best_loss)


class FirstPixelThreshold(nn.Module):
    """Predicts class 1 (wrong) exactly when the first pixel exceeds ``threshold``."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.flatten(1)[:, 0]
        wrong = (first > self.threshold).float()
        return torch.stack([1.0 - wrong, wrong], dim=1) + self.anchor * first[:, None]


def test_worst_case_over_restarts() -> None:
    """A point is broken if any restart breaks it; per-restart success is kept."""
    n, restarts, eps = 3, 8, 0.1
    x = torch.tensor([0.5, 0.3, 0.52]).view(n, 1, 1, 1).repeat(1, 1, 1, 2)
    model = FirstPixelThreshold(0.55)  # point 1 can never get above it
    # zero iterations: the random start alone decides, so compare with the start draws
    out = PGD(eps, step=0.001, iters=0, restarts=restarts, early_stop=False, seed=3)(
        model, x, torch.zeros(n, dtype=torch.long)
    )
    noise = (
        torch.rand((restarts, n, 1, 1, 2), generator=torch.Generator().manual_seed(3)) * 2 - 1
    ) * eps
    expected = ((x + noise).clamp(0, 1)[:, :, 0, 0, 0] > 0.55).T  # (n, R)
    assert torch.equal(out.restart_success, expected)
    assert torch.equal(out.success, expected.any(1))
    assert out.success.tolist() == [True, False, True]
    assert 0 < int(expected[0].sum()) < restarts  # some restarts fail where others succeed


def test_early_stop_saves_gradients_without_changing_verdict(tiny_net: nn.Module) -> None:
    x = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 4, (30,), generator=torch.Generator().manual_seed(1))
    full = PGD(0.2, 0.05, 10, restarts=3, early_stop=False)(tiny_net, x, y)
    fast = PGD(0.2, 0.05, 10, restarts=3, early_stop=True)(tiny_net, x, y)
    assert torch.equal(full.success, fast.success)
    assert fast.grad_evals < full.grad_evals == 30 * 3 * 10
    assert full.forward_evals == 30 * 3 * 11


def test_record_at_matches_separate_runs(tiny_net: nn.Module) -> None:
    x = torch.rand(25, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 4, (25,), generator=torch.Generator().manual_seed(3))
    long_run = PGD(0.1, 0.01, 12, restarts=2, record_at=[1, 4, 12], seed=5)(tiny_net, x, y)
    for k in (1, 4, 12):
        short = PGD(0.1, 0.01, k, restarts=2, seed=5)(tiny_net, x, y)
        assert torch.equal(long_run.success_at[k], short.success)


def test_restart_rounds_match_one_batch(tiny_net: nn.Module) -> None:
    """Splitting restarts into rounds (memory cap) gives the same per-restart results."""
    x = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    y = torch.randint(0, 4, (10,), generator=torch.Generator().manual_seed(5))
    one = PGD(0.1, 0.02, 5, restarts=4, early_stop=False)(tiny_net, x, y)
    split = PGD(0.1, 0.02, 5, restarts=4, early_stop=False, max_batch=20)(tiny_net, x, y)
    assert torch.equal(one.restart_success, split.restart_success)
    assert torch.allclose(one.restart_loss, split.restart_loss, atol=1e-5)


def test_targeted_success_means_target_class(tiny_net: nn.Module) -> None:
    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    y = torch.zeros(20, dtype=torch.long)
    target = torch.full((20,), 3)
    out = PGD(0.3, 0.05, 20)(tiny_net, x, y, target)
    with torch.no_grad():
        pred = tiny_net(out.x_adv).argmax(1)
    assert torch.equal(out.success, pred == 3)


def test_margin_and_dlr_losses() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    y = torch.tensor([0])
    assert margin(logits, y, None).item() == pytest.approx(-2.0)
    assert dlr(logits, y, None).item() == pytest.approx(-2.0 / 3.0)
    # DLR is invariant to scaling the logits (what logit squeezing does)
    assert dlr(logits * 0.01, y, None).item() == pytest.approx(-2.0 / 3.0, rel=1e-4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"eps": -0.1, "step": 0.1, "iters": 1}, "eps"),
        ({"eps": 0.1, "step": 1.5, "iters": 1}, "step"),
        ({"eps": 0.1, "step": 0.1, "iters": 1, "restarts": 0}, "restarts"),
        ({"eps": 0.1, "step": 0.1, "iters": 1, "loss": "nope"}, "loss"),
        ({"eps": 0.1, "step": 0.1, "iters": 3, "record_at": [5]}, "record_at"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PGD(**kwargs)


def test_attack_leaves_model_untouched(tiny_net: nn.Module) -> None:
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    flags = [p.requires_grad for p in tiny_net.parameters()]
    PGD(0.1, 0.02, 3)(tiny_net, torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    assert all(torch.equal(before[k], v) for k, v in tiny_net.state_dict().items())
    assert [p.requires_grad for p in tiny_net.parameters()] == flags
    assert all(p.grad is None for p in tiny_net.parameters())
