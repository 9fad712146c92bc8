"""SPSA and FGSM: the gradient estimate, budgets, breaking power."""

from __future__ import annotations

import torch
from torch import nn

from lpbench.attacks import FGSM, SPSA
from lpbench.attacks.losses import margin
from tests.attack_models import trained_mlp, unbreakable


def test_spsa_gradient_estimate_follows_the_true_gradient() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 4)).eval()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(5, dtype=torch.long)
    attack = SPSA(0.1, samples=2048, delta=0.01)
    estimate = attack.estimate_gradient(model, x, y, None, torch.arange(5), 0, 0)
    xr = x.clone().requires_grad_(True)
    (true,) = torch.autograd.grad(margin(model(xr), y, None).sum(), xr)
    cosine = nn.functional.cosine_similarity(estimate.flatten(1), true.flatten(1))
    assert (cosine > 0.6).all(), cosine
    few = SPSA(0.1, samples=8).estimate_gradient(model, x, y, None, torch.arange(5), 0, 0)
    assert nn.functional.cosine_similarity(few.flatten(1), true.flatten(1)).mean() < 0.6


def test_spsa_budget_is_exact_on_an_unbreakable_model() -> None:
    model = unbreakable()
    x = torch.rand(3, 1, 8, 8)
    y = torch.zeros(3, dtype=torch.long)
    out = SPSA(0.2, iters=4, restarts=2, samples=16, max_batch=10)(model, x, y)
    assert not out.success.any()
    assert out.cost.queries == 3 * 2 * (1 + 4 * (16 + 1))
    assert out.cost.gradients == 0


def test_spsa_breaks_an_undefended_model() -> None:
    model, x, y = trained_mlp(n=10)
    out = SPSA(0.15, iters=20, samples=128, lr=0.02)(model, x, y)
    assert out.success.float().mean() >= 0.8


def test_fgsm_is_one_signed_step() -> None:
    model, x, y = trained_mlp(n=3)
    out = FGSM(0.1)(model, x, y)
    xr = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(xr), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xr)
    assert torch.allclose(out.x_adv, (x + 0.1 * grad.sign()).clamp(0, 1))
    assert out.cost.gradients == 3 and out.cost.forwards == 9


def test_fgsm_random_start_is_keyed_and_in_the_ball() -> None:
    model, x, y = trained_mlp(n=10)
    a = FGSM(0.1, random_start=True, step=0.05, seed=4)(model, x, y)
    b = FGSM(0.1, random_start=True, step=0.05, seed=4)(
        model, x[5:], y[5:], index=torch.arange(5, 10)
    )
    assert torch.equal(a.x_adv[5:], b.x_adv)
    assert (a.x_adv - x).abs().max() <= 0.1 + 1e-6
    assert FGSM(0.15)(model, x, y).success.float().mean() > 0.5
