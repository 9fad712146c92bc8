"""Every forward pass an attack makes is charged: reported costs equal the rows a
counting wrapper sees go through the model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from lpbench.attacks import APGD, APGDT, FAB, FGSM, PGD, SPSA, Attack, Square, Universal
from tests.attack_models import Counting, trained_mlp


def _sources() -> tuple[torch.Tensor, torch.Tensor]:
    _, pool, labels = trained_mlp(5, 512)
    return pool[400:430], labels[400:430]


#: A radius at which the attacks break some points of the MLP but not all.
E = 0.03

ATTACKS: dict[str, Callable[[], Attack]] = {
    "pgd": lambda: PGD(E, E / 4, 20, restarts=3),
    "pgd-last": lambda: PGD(E, E / 4, 10, score="last", early_stop=False),
    "apgd": lambda: APGD(E, iters=20, restarts=2),
    "apgd-dlr-eot": lambda: APGD(E, iters=10, loss="dlr", eot_iter=2),
    "apgd-t": lambda: APGDT(E, iters=10, targets=3, give_up=[(4, 0.9)]),
    "fab-t": lambda: FAB(E, iters=10, targets=3),
    "fab-t-restarts": lambda: FAB(E, iters=5, restarts=2, targets=2, skip_targets=1),
    "square": lambda: Square(E, queries=200, give_up=[(50, 0.5)]),
    "square-fixed": lambda: Square(E, queries=100, restarts=2, window_schedule="fixed"),
    "spsa": lambda: SPSA(E, iters=5, samples=8),
    "fgsm": lambda: FGSM(E, step=[E, E / 2, E / 2], random_start=True),
    "fgsm-eot": lambda: FGSM(E, iters=2, eot_iter=3),
    "universal": lambda: Universal(E, _sources(), iters=3),
}


@pytest.mark.parametrize("kind", sorted(ATTACKS))
def test_reported_forwards_and_gradients_are_the_rows_the_model_saw(kind: str) -> None:
    model, x, y = trained_mlp(5, 40)
    y = y.clone()
    y[:3] = (y[:3] + 1) % 5  # three points misclassified as given
    counting = Counting(model)
    attack = ATTACKS[kind]()
    result = attack.replace(max_batch=16)(counting, x, y)
    assert 0 < int(result.success.sum()) < 40 or kind == "universal"
    assert result.cost.forwards == counting.rows
    assert result.cost.gradients == counting.gradient_rows
    assert result.cost.queries <= result.cost.forwards
    if kind != "universal":
        assert result.cost.shared_gradients == result.cost.shared_forwards == 0
    if result.spent is not None:  # per point, what the attack spent: the same total
        own = result.cost.gradients - result.cost.shared_gradients + result.cost.queries
        assert int(result.spent.sum()) == own and (result.spent[:3] == 0).all()
    else:
        assert kind.startswith(("pgd", "spsa"))  # the attacks that do not count per point


def test_a_limit_gives_each_point_of_square_its_own_query_budget() -> None:
    model, x, y = trained_mlp(5, 40)
    robust = Square(E, queries=60, window_schedule="fixed")(model, x, y)
    left = ~robust.success
    assert left.sum() >= 4
    x, y, index = x[left][:4], y[left][:4], torch.nonzero(left).squeeze(1)[:4]
    limit = torch.tensor([1, 30, 60, 400])
    square = Square(E, queries=60, window_schedule="fixed")
    out = square(model, x, y, index=index, limit=limit)
    assert (out.spent <= limit).all() and out.spent[0] == 1
    assert out.spent[3] > 60 or out.success[3]  # beyond its own 60 queries
    # a longer run is the shorter one continued: the 60-query point is the plain run
    plain = square(model, x[2:3], y[2:3], index=index[2:3])
    assert torch.equal(plain.x_adv, out.x_adv[2:3]) and plain.spent[0] == out.spent[2]
    with pytest.raises(ValueError, match="no per-point limits"):
        FAB(E)(model, x, y, limit=limit)


def test_universal_charges_its_sources_as_shared_cost_once() -> None:
    model, x, y = trained_mlp(5, 40)
    counting = Counting(model)
    attack = ATTACKS["universal"]()
    first = attack(counting, x[:25], y[:25], index=torch.arange(25))
    sources = len(attack.sources[0])
    assert first.cost.shared_gradients == counting.gradient_rows == 3 * sources == attack.spend
    assert first.cost.shared_forwards == 3 * sources + 1  # and the pass reading the classes
    per_point = first.cost.forwards - first.cost.shared_forwards
    assert 25 <= per_point <= 50 and first.cost.gradients == first.cost.shared_gradients
    seen = counting.rows
    again = attack(counting, x[25:], y[25:], index=torch.arange(25, 40))  # cached
    assert again.cost.shared_gradients == again.cost.shared_forwards == again.cost.gradients == 0
    assert again.cost.forwards == counting.rows - seen
