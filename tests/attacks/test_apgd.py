"""APGD and APGD-T: breaking power, schedule, budgets, batch invariance, known failure modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lpbench.attacks import APGD, APGDT, FGSM, PGD, top_other_classes
from lpbench.attacks.apgd import step_halving_points
from lpbench.attacks.base import COMPLETE, GAVE_UP, SKIPPED
from tests.attack_models import (
    Noisy,
    Quantised,
    Scaled,
    trained_mlp,
    two_way_linear,
    unbreakable,
)


@pytest.mark.parametrize("attack", [APGD(0.1, 30), APGD(0.1, 30, loss="dlr"), APGDT(0.1, 30)])
def test_breaks_an_undefended_model(attack: APGD) -> None:
    model, x, y = trained_mlp()
    out = attack(model, x, y)
    assert out.success.float().mean() >= 0.95
    small = PGD(0.01, 0.0025, 20)(model, x, y)  # not broken by any perturbation at all
    assert small.success.float().mean() < 0.5


def test_checkpoint_schedule_matches_the_paper() -> None:
    assert step_halving_points(100) == (22, 6, 3)
    assert step_halving_points(10) == (2, 1, 1)


def test_budget_is_exact_on_an_unbreakable_model() -> None:
    model = unbreakable()
    x = torch.rand(6, 1, 8, 8)
    y = torch.zeros(6, dtype=torch.long)
    out = APGD(0.3, iters=7, restarts=3, eot_iter=2)(model, x, y)
    assert not out.success.any()
    runs = 6 * 3
    assert out.cost.gradients == runs * (7 + 1) * 2  # start + iters steps, x eot_iter
    assert out.cost.forwards == out.cost.gradients + 6  # + the clean check
    assert out.cost.queries == 0
    assert (out.restarts.status == COMPLETE).all()
    t = APGDT(0.3, iters=4, restarts=2)(model, x, y)
    assert t.cost.gradients == 6 * 4 * 2 * (4 + 1)  # 4 targets (5 classes) x 2 restarts


def test_give_up_ends_a_target_on_points_that_make_too_little_progress() -> None:
    model, x, y = trained_mlp(n=40)
    rows = torch.arange(40)

    def run(give_up=(), part=rows):
        attack = APGDT(0.05, iters=30, targets=2, give_up=give_up)
        return attack(model, x[part], y[part], index=part)

    full = run()
    assert 5 < full.success.sum() < 35
    # share 1 never gives up: the best margin includes the start's
    kept = run([(10, 1.0)])
    assert torch.equal(kept.x_adv, full.x_adv) and kept.cost == full.cost
    # share 0 gives up every point still robust after 1 iteration, target by target
    cut = run([(1, 0.0)])
    assert not (cut.success & ~full.success).any()
    late = full.success & ~cut.success
    assert late.any()  # full breaks some of them later
    robust = ~cut.success
    assert (cut.restarts.status[robust] == GAVE_UP).all()
    assert cut.cost.gradients < full.cost.gradients
    assert cut.cost.gradients >= int(robust.sum()) * 2 * (1 + 1)
    # in between: some stop, the rest go on as in the full run
    some = run([(2, 0.9), (7, 0.8)])
    assert cut.success.sum() <= some.success.sum() <= full.success.sum()
    assert cut.cost.gradients < some.cost.gradients < full.cost.gradients
    assert (some.restarts.status == GAVE_UP).any()
    assert not (some.success & ~full.success).any()
    assert torch.equal(some.x_adv[some.success], full.x_adv[some.success])
    # the same per point in any batch
    halves = [run([(2, 0.9), (7, 0.8)], part) for part in (rows[::2], rows[1::2])]
    assert torch.equal(halves[0].x_adv, some.x_adv[::2])
    assert torch.equal(halves[1].success, some.success[1::2])
    assert APGD(0.1, give_up=[(20, 0.5), (5, 0.9)]).config()["give_up"] == [[5, 0.9], [20, 0.5]]
    with pytest.raises(ValueError, match="give_up"):
        APGDT(0.1, give_up=[(0, 0.5)])


def test_early_stop_skips_broken_points() -> None:
    model, x, y = trained_mlp()
    out = APGD(0.1, iters=20, restarts=3)(model, x, y)
    assert out.cost.gradients < 40 * 3 * 21
    broken_first = out.restarts.success[:, 0]
    assert (out.restarts.status[broken_first, 1:] == SKIPPED).all()


def test_targeted_reaches_its_target_on_a_linear_model() -> None:
    model = two_way_linear()
    x = 0.05 + 0.02 * torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(6, dtype=torch.long)
    target = torch.full((6,), 2)
    out = APGDT(0.2, iters=30)(model, x, y, target=target)
    with torch.no_grad():
        pred = model(out.x_adv).argmax(1)
    assert out.success.all() and (pred == 2).all()
    ce = APGD(0.2, iters=30)(model, x, y, target=target)  # an explicit target wins
    with torch.no_grad():
        assert (model(ce.x_adv).argmax(1) == 2).all()
    untargeted = APGD(0.2, iters=30, loss="dlr")(model, x, y)
    with torch.no_grad():
        assert (model(untargeted.x_adv).argmax(1) == 1).all()  # the close boundary


def test_targets_are_each_points_own_top_classes_of_the_points_attacked() -> None:
    """Targeted APGD attacking the wrong set of points: targets computed for one subset of
    the batch but applied to another. Here half the points start misclassified: they cost
    no gradient, and each attacked point's targets are its own top other classes."""
    model = unbreakable(classes=6)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.zeros(8, dtype=torch.long)
    y[::2] = 3  # misclassified from the start
    out = APGDT(0.1, iters=3, targets=2)(model, x, y)
    assert torch.equal(out.success, y == 3)
    assert out.cost.gradients == 4 * 2 * (3 + 1)  # only the 4 correct points, 2 targets
    with torch.no_grad():
        logits = model(x)
    expected = top_other_classes(logits, y, 2)
    assert not (expected == y[:, None]).any()
    order = logits.scatter(1, y[:, None], float("-inf")).argsort(1, descending=True)[:, :2]
    assert torch.equal(expected, order)
    alone = APGDT(0.1, iters=3, targets=2)(model, x[1:2], y[1:2], index=torch.tensor([1]))
    assert torch.allclose(alone.loss, out.loss[1:2])


@pytest.mark.parametrize("classes,runs", [(5, 4), (12, 9), (3, 2)])
def test_target_count_comes_from_the_logits(classes: int, runs: int) -> None:
    model = unbreakable(classes=classes)
    x = torch.rand(3, 1, 8, 8)
    y = torch.zeros(3, dtype=torch.long)
    out = APGD(0.1, iters=2, loss="ce", targeted=True)(model, x, y)
    assert out.restarts.status.shape == (3, runs)
    assert (out.restarts.status == COMPLETE).all()


@pytest.mark.parametrize("attack,classes", [(APGDT(0.1, 2), 3), (APGD(0.1, 2, loss="dlr"), 2)])
def test_dlr_with_too_few_classes_is_a_clear_error(attack: APGD, classes: int) -> None:
    model = unbreakable(classes=classes)
    with pytest.raises(ValueError, match=f"at least {classes + 1} classes"):
        attack(model, torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))


def test_underflowing_cross_entropy_keeps_its_gradient() -> None:
    """Logits scaled 1e4: float32 cross-entropy is exactly 0 and its float32 gradient
    vanishes, yet the attack still finds the gradient's sign and breaks the model."""
    base, x, y = trained_mlp(n=20)
    model = Scaled(base, 1e4).eval()
    xr = x.detach().requires_grad_(True)
    ce = nn.functional.cross_entropy(model(xr), y, reduction="none")
    (grad,) = torch.autograd.grad(ce.sum(), xr)
    assert (ce == 0).float().mean() > 0.5 and (grad == 0).all(dim=(1, 2, 3)).float().mean() > 0.5
    assert PGD(0.1, 0.025, 30, random_start=False)(model, x, y).success.float().mean() < 0.5
    for attack in (APGD(0.1, 30), APGD(0.1, 30, loss="dlr"), APGDT(0.1, 30)):
        out = attack(model, x, y)
        assert out.success.float().mean() >= 0.95, attack
        assert torch.isfinite(out.loss).all() and torch.isfinite(out.margin).all()


class NoisyModel(nn.Module):
    """A randomised model: Gaussian noise on the input before a fixed MLP."""

    def __init__(self, model: nn.Module, sigma: float) -> None:
        super().__init__()
        self.model = model
        self.sigma = sigma
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(x + self.sigma * torch.randn_like(x))


def test_eot_averages_several_forward_passes() -> None:
    base, x, y = trained_mlp(n=20)
    model = NoisyModel(base, 0.05).eval()
    torch.manual_seed(0)
    out = APGD(0.1, iters=10, eot_iter=4)(model, x, y)
    assert out.cost.gradients % 4 == 0 and out.cost.gradients >= 20 * 4
    # the clean check, then eot_iter passes per step while any point is still robust
    assert model.calls % 4 == 1 and model.calls <= 1 + 4 * (1 + 10)
    assert out.success.float().mean() >= 0.8


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"iters": 0}, "iters"),
        ({"restarts": 0}, "restarts"),
        ({"loss": "nope"}, "loss"),
        ({"eot_iter": 0}, "eot_iter"),
        ({"rho": 1.5}, "rho"),
        ({"targets": 0}, "targets"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        APGD(0.1, **kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda eot: APGD(0.3, iters=10, restarts=2, eot_iter=eot),
        lambda eot: APGDT(0.3, iters=10, targets=3, eot_iter=eot),
        lambda eot: FGSM(0.3, step=[0.3, 0.15, 0.1], eot_iter=eot),
    ],
)
def test_a_zero_gradient_ends_a_run_with_the_outcome_of_the_whole_run(make) -> None:
    model = Quantised()
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(dim=1)
    # eot_iter=2 runs every iteration (the exit is for deterministic gradients); the model
    # is deterministic, so both see the same gradients: zero everywhere
    short, whole = make(1)(model, x, y), make(2)(model, x, y)
    assert torch.equal(short.success, whole.success) and torch.equal(short.x_adv, whole.x_adv)
    runs = short.cost.gradients // 8
    assert runs in (1, 2, 3)  # one gradient per point and run, not one per iteration
    assert whole.cost.gradients > 4 * short.cost.gradients


@pytest.mark.parametrize("kind", ["apgd", "pgd"])
def test_on_a_randomised_model_runs_go_on_and_keep_the_deepest_adversarial_iterate(
    kind: str,
) -> None:
    """With EOT an iterate counts only when every draw misclassifies it, and the run does
    not stop there (the first such iterate lies at the boundary): it runs to its end and
    keeps the adversarial iterate whose least adversarial draw has the largest margin."""
    model, x, y = trained_mlp(5, 30)
    noisy = Noisy(model, 0.03)
    iters, draws = 10, 4
    if kind == "apgd":
        attack = APGD(0.15, iters - 1, eot_iter=draws)
    else:
        attack = PGD(0.15, 0.04, iters, eot_iter=draws)
    torch.manual_seed(0)
    out = attack(noisy, x, y)
    assert out.success.float().mean() >= 0.8  # points the model classifies correctly
    per_point = iters * draws  # no point attacked stops early (those noise misclassifies
    # at the clean check are not attacked)
    assert out.cost.gradients % per_point == 0 and out.cost.gradients >= 25 * per_point
    with torch.no_grad():  # fresh draws agree: every kept example is deep
        wrong = torch.stack(
            [noisy(out.x_adv[out.success]).argmax(1) != y[out.success] for _ in range(20)]
        )
    assert wrong.all(dim=0).float().mean() >= 0.9
