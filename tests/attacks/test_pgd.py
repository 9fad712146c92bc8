"""PGD: constraints, the linear optimum, keyed restarts, scoring, early stop, invariance."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lpbench.attacks import PGD, keyed_uniform
from lpbench.attacks.base import SKIPPED
from lpbench.attacks.losses import dlr, margin
from tests.support import BatchNormNet, TinyNet


def _correct_points(model: nn.Module, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and the model's own labels: every point starts correctly classified."""
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, model(x).argmax(1)


@settings(max_examples=25, deadline=None)
@given(
    eps=st.floats(0.01, 0.5),
    step=st.floats(0.005, 1.0),
    iters=st.integers(0, 6),
    restarts=st.integers(1, 3),
    seed=st.integers(0, 1000),
    loss=st.sampled_from(["ce", "dlr"]),
    score=st.sampled_from(["any", "last"]),
    early_stop=st.booleans(),
)
def test_pgd_stays_in_ball_and_box(
    eps: float,
    step: float,
    iters: int,
    restarts: int,
    seed: int,
    loss: str,
    score: str,
    early_stop: bool,
) -> None:
    model = TinyNet(classes=4, seed=seed).eval()
    x, y = _correct_points(model, 6, seed)
    x[0] = 0.0  # corners of the box
    x[1] = 1.0
    with torch.no_grad():
        y = model(x).argmax(1)
    attack = PGD(
        eps, step, iters, restarts, loss=loss, score=score, seed=seed, early_stop=early_stop
    )
    out = attack(model, x, y)
    assert (out.x_adv - x).abs().max() <= eps + 1e-6
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    with torch.no_grad():
        pred = model(out.x_adv).argmax(1)
    assert torch.equal(out.success, pred != y)  # success claims hold on re-run
    assert torch.equal(out.margin > 0, out.success)
    assert out.restarts is not None and out.restarts.loss.shape == (6, restarts)


def _linear_two_class(
    dim: int = 20, seed: int = 0, bias: float = 10.0
) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(dim, 2))
    with torch.no_grad():
        model[1].bias.copy_(torch.tensor([bias, 0.0]))
    direction = (model[1].weight[1] - model[1].weight[0]).detach()
    return model.eval(), direction


def test_pgd_reaches_linear_optimum() -> None:
    """For a 2-class linear model the CE maximiser is clip(x + eps * sign(w1 - w0))."""
    model, direction = _linear_two_class()  # class 0 wins whatever the input
    x = torch.rand(8, 20)
    y = torch.zeros(8, dtype=torch.long)
    eps, step = 0.1, 0.025
    out = PGD(eps, step, iters=10, restarts=2, keep_last=True)(model, x, y)
    optimum = (x + eps * direction.sign()).clamp(0, 1)
    assert torch.allclose(out.x_adv, optimum, atol=1e-6)
    expected_loss = nn.functional.cross_entropy(model(optimum), y, reduction="none")
    assert torch.allclose(out.loss, expected_loss.detach(), atol=1e-5)
    assert not out.success.any()  # the bias keeps class 0: nothing can be broken


def test_best_example_is_highest_loss_when_unbroken() -> None:
    model, direction = _linear_two_class()
    x = torch.rand(4, 20)
    y = torch.zeros(4, dtype=torch.long)
    out = PGD(0.1, 0.025, iters=10, restarts=3)(model, x, y)
    optimum = (x + 0.1 * direction.sign()).clamp(0, 1)
    optimal_loss = nn.functional.cross_entropy(model(optimum), y, reduction="none").detach()
    assert torch.allclose(out.loss, optimal_loss, rtol=1e-5)
    kept_loss = nn.functional.cross_entropy(model(out.x_adv), y, reduction="none").detach()
    assert torch.equal(kept_loss, out.loss)


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


def test_random_starts_are_keyed_by_index_and_restart() -> None:
    """Zero iterations: the keyed random start alone decides, restart by restart."""
    n, restarts, eps = 3, 8, 0.1
    x = torch.tensor([0.5, 0.3, 0.52]).view(n, 1, 1, 1).repeat(1, 1, 1, 2)
    index = torch.tensor([11, 5, 42])
    model = FirstPixelThreshold(0.55)  # point 1 can never get above it
    attack = PGD(eps, step=0.001, iters=0, restarts=restarts, early_stop=False, seed=3)
    out = attack(model, x, torch.zeros(n, dtype=torch.long), index=index)
    starts = torch.stack(
        [keyed_uniform(attack.key, index, r, (1, 1, 2)) * 2 - 1 for r in range(restarts)]
    )  # (R, n, 1, 1, 2)
    expected = ((x + starts * eps).clamp(0, 1)[:, :, 0, 0, 0] > 0.55).T  # (n, R)
    assert out.restarts is not None
    assert torch.equal(out.restarts.success, expected)
    assert torch.equal(out.success, expected.any(1))
    assert out.success.tolist() == [True, False, True]
    assert 0 < int(expected[0].sum()) < restarts  # some restarts fail where others succeed
    other = PGD(eps, 0.001, 0, restarts, early_stop=False, seed=3, stream="another-attack")
    moved = other(model, x, torch.zeros(n, dtype=torch.long), index=index)
    assert not torch.equal(moved.restarts.success, out.restarts.success)  # type: ignore[union-attr]


class Band(nn.Module):
    """Misclassifies only while pixel 0 is within ``1 / scale`` of 0.575 (margin
    ``1 - scale * distance``); CE pulls it towards 0.575.

    PGD from 0.5 with step 0.02 and no random start visits 0.52, 0.54, 0.56, 0.58, 0.56,
    0.58, ...: its iterates oscillate across the band. With the default scale 100 only
    0.58 is misclassified; with 50, 0.56 (margin 0.25) and 0.58 (margin 0.75) both are.
    """

    def __init__(self, scale: float = 100.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distance = (x.flatten(1)[:, 0] - 0.575).abs()
        wrong = 1.0 - self.scale * distance
        return torch.stack([torch.zeros_like(wrong), wrong], dim=1)


@pytest.mark.parametrize("iters,last_broken", [(4, True), (5, False), (6, True)])
def test_last_iterate_scoring_is_the_seeds(iters: int, last_broken: bool) -> None:
    model = Band().eval()
    x = torch.full((1, 1, 1, 2), 0.5)
    y = torch.zeros(1, dtype=torch.long)
    common = {"random_start": False}
    last = PGD(0.2, 0.02, iters, score="last", **common)(model, x, y)
    anyiter = PGD(0.2, 0.02, iters, score="any", **common)(model, x, y)
    assert bool(anyiter.success) is True  # iterate 4 is adversarial
    assert bool(last.success) is last_broken
    assert abs(float(anyiter.x_adv.flatten()[0]) - 0.58) < 1e-6


def test_early_stop_gradient_counts_are_exact() -> None:
    """Every row breaks after exactly one step: counts follow from the semantics."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(20, 2)).eval()
    with torch.no_grad():  # z1 - z0 = sum(x) - 10.5: -0.5 at x = 0.5, +3.5 one step later
        model[1].weight.copy_(torch.stack([torch.zeros(20), torch.ones(20)]))
        model[1].bias.copy_(torch.tensor([0.0, -10.5]))
    x = torch.full((6, 20), 0.5)
    y = torch.zeros(6, dtype=torch.long)
    kwargs = {"random_start": False, "seed": 1}
    with torch.no_grad():
        assert (model(x).argmax(1) == 0).all()
    # A row found adversarial at iterate t ran t + 1 forward+backward passes (the pass
    # that finds it computes its gradient too). Lock step: all 3 restarts of a point run
    # until one breaks it, at iterate 1.
    one_round = PGD(0.2, 0.2, 10, restarts=3, **kwargs)(model, x, y)
    assert one_round.success.all()
    assert one_round.cost.gradients == 6 * 3 * 2 and one_round.cost.forwards == 6 * 3 * 2
    # one restart per round: later restarts are skipped altogether
    rounds = PGD(0.2, 0.2, 10, restarts=3, max_batch=6, **kwargs)(model, x, y)
    assert rounds.cost.gradients == 6 * 2 and rounds.cost.forwards == 6 * 2
    # without early stop every restart runs to the end
    full = PGD(0.2, 0.2, 10, restarts=3, early_stop=False, **kwargs)(model, x, y)
    assert full.cost.gradients == 6 * 3 * 10 and full.cost.forwards == 6 * 3 * 11
    for out in (one_round, rounds):  # restart 0 broke every point, the rest count as skipped
        assert out.restarts is not None
        assert out.restarts.success[:, 0].all()
        assert (out.restarts.status[:, 1:] == SKIPPED).all()
        assert torch.isnan(out.restarts.loss[:, 1:]).all()


@pytest.mark.parametrize("early_stop", [True, False])
@pytest.mark.parametrize("record_at", [(), (1, 3, 8)])
def test_results_do_not_depend_on_batch_size(early_stop: bool, record_at: tuple) -> None:
    model = TinyNet(classes=4, seed=1).eval()
    x, y = _correct_points(model, 24, seed=2)
    index = torch.arange(500, 524)
    outs = [
        PGD(
            0.1,
            0.02,
            8,
            restarts=4,
            early_stop=early_stop,
            record_at=record_at,
            seed=3,
            max_batch=batch,
        )(model, x, y, index=index)
        for batch in (7, 256, 10_000)
    ]
    first = outs[0]
    assert 0 < int(first.success.sum()) < 24  # some points survive, some do not
    for out in outs[1:]:
        assert torch.equal(out.success, first.success)
        assert torch.equal(out.x_adv, first.x_adv)
        assert torch.allclose(out.loss, first.loss, atol=1e-6)
        assert out.restarts is not None and first.restarts is not None
        assert torch.equal(out.restarts.status, first.restarts.status)
        assert torch.equal(out.restarts.success, first.restarts.success)
        torch.testing.assert_close(
            out.restarts.loss, first.restarts.loss, atol=1e-6, rtol=0, equal_nan=True
        )
        for k in record_at:
            assert torch.equal(out.success_at[k], first.success_at[k])


def test_results_do_not_depend_on_order_or_company() -> None:
    model = TinyNet(classes=4, seed=1).eval()
    x, y = _correct_points(model, 30, seed=4)
    index = torch.arange(30) * 7
    attack = PGD(0.1, 0.02, 6, restarts=3, seed=9)
    whole = attack(model, x, y, index=index)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    shuffled = attack(model, x[perm], y[perm], index=index[perm])
    assert torch.equal(shuffled.x_adv, whole.x_adv[perm])
    half = attack(model, x[10:20], y[10:20], index=index[10:20])
    assert torch.equal(half.x_adv, whole.x_adv[10:20])


def test_record_at_matches_separate_runs() -> None:
    model = TinyNet().eval()
    x, y = _correct_points(model, 25, seed=2)
    long_run = PGD(0.1, 0.01, 12, restarts=2, record_at=[1, 4, 12], seed=5)(model, x, y)
    for k in (1, 4, 12):
        short = PGD(0.1, 0.01, k, restarts=2, seed=5)(model, x, y)
        assert torch.equal(long_run.success_at[k], short.success)


def test_record_at_with_restart_rounds() -> None:
    """A point broken late by restart 0 must still be run by restart 1 (maybe earlier)."""
    model = TinyNet().eval()
    x, y = _correct_points(model, 30, seed=6)
    kwargs = {"restarts": 6, "record_at": [1, 2, 3, 12], "seed": 2}
    lockstep = PGD(0.1, 0.01, 12, **kwargs)(model, x, y)
    rounds = PGD(0.1, 0.01, 12, max_batch=30, **kwargs)(model, x, y)  # one restart a round
    for k in (1, 2, 3, 12):
        short = PGD(0.1, 0.01, k, restarts=6, seed=2)(model, x, y)
        assert torch.equal(rounds.success_at[k], short.success), k
        assert torch.equal(lockstep.success_at[k], short.success), k


def test_kept_example_has_the_largest_margin() -> None:
    """Without early stop the adversarial iterate with the largest margin is kept: here
    neither the first adversarial iterate (iteration 3, at 0.56, margin 0.25) nor the last
    (iteration 11, at 0.56 again) but those at 0.58 (margin 0.75)."""
    model = Band(scale=50.0).eval()
    x = torch.full((1, 1, 1, 2), 0.5)
    y = torch.zeros(1, dtype=torch.long)
    out = PGD(0.2, 0.02, 11, early_stop=False, random_start=False)(model, x, y)
    with torch.no_grad():
        assert float(margin(model(out.x_adv), y, None)) == pytest.approx(float(out.margin))
    assert float(out.x_adv[0, 0, 0, 0]) == pytest.approx(0.58)
    assert float(out.margin) == pytest.approx(0.75, abs=1e-4)
    first = PGD(0.2, 0.02, 3, random_start=False)(model, x, y)  # stops at its first hit
    assert float(first.x_adv[0, 0, 0, 0]) == pytest.approx(0.56)
    assert float(first.margin) == pytest.approx(0.25, abs=1e-4)


def test_targeted_attacks_steer_to_their_target() -> None:
    """A 3-class linear model: targeted PGD reaches the least-likely class."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.rand(20, 1, 4, 4)
    with torch.no_grad():
        logits = model(x)
    y, least = logits.argmax(1), logits.argmin(1)
    out = PGD(1.0, 0.1, 30, target_mode="ll", early_stop=False)(model, x, y)
    with torch.no_grad():
        pred = model(out.x_adv).argmax(1)
    assert (pred == least).float().mean() > 0.9
    explicit = PGD(1.0, 0.1, 30, early_stop=False)(model, x, y, target=(y + 1) % 3)
    with torch.no_grad():
        assert (model(explicit.x_adv).argmax(1) == (y + 1) % 3).float().mean() > 0.9


def test_random_targets_are_fixed_per_point() -> None:
    from lpbench.attacks import random_other_class

    y = torch.randint(0, 7, (50,), generator=torch.Generator().manual_seed(1))
    index = torch.arange(50) + 1000
    t = random_other_class(3, "pgd", index, y, 7)
    assert (t != y).all() and t.min() >= 0 and t.max() < 7
    assert torch.equal(random_other_class(3, "pgd", index[10:], y[10:], 7), t[10:])
    assert len(set(t.tolist())) > 3


def test_margin_and_dlr_losses() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
    y = torch.tensor([0])
    assert margin(logits, y, None).item() == pytest.approx(-2.0)
    assert dlr(logits, y, None).item() == pytest.approx(-2.0 / 3.0)
    # DLR is invariant to scaling the logits (what logit squeezing does)
    assert dlr(logits * 0.01, y, None).item() == pytest.approx(-2.0 / 3.0, rel=1e-4)


def test_dlr_when_the_true_class_is_not_on_top_and_targeted() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0, -2.0]])
    y = torch.tensor([2])  # already misclassified: positive DLR
    assert dlr(logits, y, None).item() == pytest.approx((3.0 - 0.0) / (3.0 - 0.0))
    # targeted: -(z_y - z_t) / (z_1 - (z_3 + z_4) / 2)
    target = torch.tensor([1])
    assert dlr(logits, y, target).item() == pytest.approx(-(0.0 - 1.0) / (3.0 - (0.0 - 1.0) / 2))
    with pytest.raises(ValueError, match="4 classes"):
        dlr(logits[:, :3], torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(ValueError, match="3 classes"):
        dlr(logits[:, :2], torch.tensor([0]), None)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"eps": -0.1, "step": 0.1, "iters": 1}, "eps"),
        ({"eps": 0.1, "step": 1.5, "iters": 1}, "step"),
        ({"eps": 0.1, "step": 0.1, "iters": 1, "restarts": 0}, "restarts"),
        ({"eps": 0.1, "step": 0.1, "iters": 1, "loss": "nope"}, "loss"),
        ({"eps": 0.1, "step": 0.1, "iters": 3, "record_at": [5]}, "record_at"),
        ({"eps": 0.1, "step": 0.1, "iters": 3, "score": "best"}, "score"),
        ({"eps": 0.1, "step": 0.1, "iters": 3, "target_mode": "most"}, "target_mode"),
        ({"eps": 0.1, "step": 0.1, "iters": 3, "model_mode": "train"}, "model_mode"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PGD(**kwargs)


def test_bad_inputs_are_rejected(tiny_net: nn.Module) -> None:
    x, y = _correct_points(tiny_net, 4)
    attack = PGD(0.1, 0.02, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attack(tiny_net, x * 3, y)
    with pytest.raises(ValueError, match="labels"):
        attack(tiny_net, x, y[:2])
    with pytest.raises(ValueError, match="indices"):
        attack(tiny_net, x, y, index=torch.arange(3))


def test_empty_and_single_point_inputs(tiny_net: nn.Module) -> None:
    attack = PGD(0.1, 0.02, 3, restarts=2)
    empty = attack(tiny_net, torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    assert empty.x_adv.shape == (0, 1, 8, 8) and empty.cost.gradients == 0
    x, y = _correct_points(tiny_net, 1)
    one = attack(tiny_net, x, y)
    assert one.x_adv.shape == x.shape and one.success.shape == (1,)


def test_attack_leaves_model_untouched(tiny_net: nn.Module) -> None:
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    flags = [p.requires_grad for p in tiny_net.parameters()]
    x, y = _correct_points(tiny_net, 4)
    PGD(0.1, 0.02, 3)(tiny_net, x, y)
    assert all(torch.equal(before[k], v) for k, v in tiny_net.state_dict().items())
    assert [p.requires_grad for p in tiny_net.parameters()] == flags
    assert all(p.grad is None for p in tiny_net.parameters())


def test_attacks_run_in_eval_mode_and_restore_the_mode() -> None:
    model = BatchNormNet()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    reference = PGD(0.1, 0.02, 5, seed=1)(model, x, y)
    model.train()
    stats = model.body[1].running_mean.clone()
    out = PGD(0.1, 0.02, 5, seed=1)(model, x, y)
    assert model.training  # the caller's mode is back
    assert torch.equal(model.body[1].running_mean, stats)  # no statistics were updated
    assert torch.equal(out.x_adv, reference.x_adv)  # BatchNorm used running stats, no dropout
    # "caller" keeps training mode, as recipes that craft with BatchNorm in training mode do
    PGD(0.1, 0.02, 1, model_mode="caller")(model, x, y)
    assert not torch.equal(model.body[1].running_mean, stats)


def test_out_of_memory_halves_the_batch_and_keeps_results(monkeypatch) -> None:
    model = TinyNet().eval()
    x, y = _correct_points(model, 20)
    expected = PGD(0.1, 0.02, 4, restarts=2, seed=1, max_batch=40)(model, x, y)
    attack = PGD(0.1, 0.02, 4, restarts=2, seed=1, max_batch=40)
    real = PGD.perturb

    def flaky(self, model, x, y, index, target):  # runs out of memory above 10 rows
        per_round = max(1, min(self.restarts, self.max_batch // len(x)))
        if len(x) * per_round > 10:
            raise torch.OutOfMemoryError("simulated")
        return real(self, model, x, y, index, target)

    monkeypatch.setattr(PGD, "perturb", flaky)
    with pytest.warns(UserWarning, match="out of memory"):
        out = attack(model, x, y)
    assert attack.max_batch == 10
    assert torch.equal(out.x_adv, expected.x_adv) and torch.equal(out.success, expected.success)


def test_eot_iter_counts_every_draw_and_keeps_a_deterministic_model_s_steps() -> None:
    torch.manual_seed(0)
    model = TinyNet().eval()
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    one = PGD(0.05, 0.01, 7, 2, early_stop=False)(model, x, y)
    three = PGD(0.05, 0.01, 7, 2, early_stop=False, eot_iter=3)(model, x, y)
    assert three.cost.gradients == 3 * one.cost.gradients == 3 * 6 * 2 * 7
    assert three.cost.forwards == 3 * one.cost.forwards
    assert torch.equal(one.success, three.success)  # the same gradients, summed: same signs
    torch.testing.assert_close(one.x_adv, three.x_adv)
    assert PGD(0.05, 0.01, 7, 2, eot_iter=3).max_spend_per_point() == 42
    assert PGD(0.05, 0.01, 7, eot_iter=3).config()["eot_iter"] == 3
    with pytest.raises(ValueError, match="eot_iter"):
        PGD(0.05, 0.01, 7, eot_iter=0)
