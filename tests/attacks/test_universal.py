"""Universal perturbations and iterated FGSM: the cheap first rungs of ``auto``."""

from __future__ import annotations

import pytest
import torch

from lpbench.attacks import FGSM, Universal
from tests.attack_models import Scaled, _trained, trained_mlp


def _sources(count: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of the MLP's distribution that are not the points attacked, with its labels."""
    _, x, pred = _trained(5)
    return x[200 : 200 + count].clone(), pred[200 : 200 + count].clone()


def test_universal_breaks_most_points_of_an_undefended_model_for_a_shared_cost() -> None:
    model, x, y = trained_mlp(5, 40)
    attack = Universal(0.15, _sources(), iters=4)
    out = attack(model, x, y)
    assert out.success.float().mean() >= 0.5
    assert out.cost.gradients == attack.spend == 4 * 60  # the sources' gradients, none per point
    assert (out.x_adv - x).abs().max() <= 0.15 + 1e-6
    again = attack(model, x[:10], y[:10])  # same weights: the perturbations are reused
    assert again.cost.gradients == 0 and torch.equal(again.x_adv, out.x_adv[:10])
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.0)  # an in-place update: the perturbations are found again
    assert attack(model, x[:10], y[:10]).cost.gradients == attack.spend


def test_universal_moves_each_point_by_its_own_class_perturbation() -> None:
    model, x, y = trained_mlp(5, 40)
    images, labels = _sources()
    attack = Universal(0.15, (images, labels), iters=3)
    deltas, _ = attack.perturbations(model, x.device)
    out = attack(model, x, y)
    assert torch.allclose(out.x_adv, (x + deltas[y]).clamp(0, 1))
    only_zero = Universal(0.15, (images[labels == 0], labels[labels == 0]), iters=3)
    kept = only_zero(model, x, y).x_adv
    assert torch.equal(kept[y != 0], x[y != 0])  # classes without sources are not moved


def test_universal_sees_through_saturated_logits() -> None:
    """Logits x 10,000 leave the decisions unchanged but the cross-entropy of every source
    rounds to 0 even in float64: the perturbations still follow its gradient's direction,
    the same as without the scale when one source dominates the sum, and break points."""
    model, x, y = trained_mlp(5, 40)
    scaled = Scaled(model, 1e4)
    images, labels = _sources()
    attack = Universal(0.15, (images, labels), iters=4)
    deltas, _ = attack.perturbations(scaled, x.device)
    moved = deltas.flatten(1).abs().amax(dim=1) > 0
    assert moved[labels.unique()].all()  # every class with sources
    assert attack(scaled, x, y).success.float().mean() >= 0.3
    # in chunks of one source at a time the sum is the same up to rounding
    chunked, _ = attack.replace(max_batch=1).perturbations(scaled, x.device)
    assert (chunked == deltas).float().mean() > 0.99


def test_universal_rejects_bad_sources() -> None:
    images, labels = _sources(8)
    with pytest.raises(ValueError, match="as many labels"):
        Universal(0.1, (images, labels[:5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Universal(0.1, (images * 3, labels))


def test_iterated_fgsm_stops_each_point_at_its_first_adversarial_step() -> None:
    model, x, y = trained_mlp(5, 40)
    one = FGSM(0.05, step=0.02)(model, x, y)
    many = FGSM(0.05, step=0.02, iters=3)(model, x, y)
    assert bool((many.success | ~one.success).all())  # the first step is FGSM's
    assert int(many.success.sum()) > int(one.success.sum())
    assert torch.equal(many.x_adv[one.success], one.x_adv[one.success])  # stopped there
    assert one.cost.gradients == 40
    assert 40 < many.cost.gradients < 3 * 40  # later steps only on points still robust
    assert (many.x_adv - x).abs().max() <= 0.05 + 1e-6
    assert FGSM(0.05, step=[0.05, 0.02]).config()["step"] == [0.05, 0.02]
    with pytest.raises(ValueError, match="step sizes"):
        FGSM(0.05, step=[0.05, 2.0])
