"""Square Attack: schedule, budgets, breaking power, an all-misclassified batch, keyed draws."""

from __future__ import annotations

import pytest
import torch

from lpbench.attacks import APGD, Square
from lpbench.attacks.base import GAVE_UP
from lpbench.attacks.square import p_selection
from tests.attack_models import trained_mlp, unbreakable


def test_p_schedule_halves_at_the_papers_budget_shares() -> None:
    assert p_selection(0.8, 0, 10_000) == 0.8
    assert p_selection(0.8, 11, 10_000) == 0.4
    assert p_selection(0.8, 51, 10_000) == 0.2
    assert p_selection(0.8, 9_999, 10_000) == 0.8 / 512
    assert p_selection(0.8, 5, 1000) == 0.8 / 2  # shares of the budget, not iterations
    assert p_selection(0.8, 10_011, 10_000) == 0.4  # past the budget the schedule starts over


#: AutoAttack's p_selection (fra31/auto-attack, autoattack/square.py), worked out by hand:
#: p_init is divided by 1 up to iteration 10, by 2 up to 50, 4 up to 200, 8 up to 500,
#: 16 up to 1000, 32 up to 2000, 64 up to 4000, 128 up to 6000, 256 up to 8000, then 512.
#: With resc_schedule=True the iteration is first rescaled to int(it / n_queries * 10000).
#: (iteration, divisor) with resc_schedule=False (AutoAttack's standard version):
FIXED = [
    (9, 1), (10, 1), (11, 2), (49, 2), (50, 2), (51, 4), (199, 4), (200, 4), (201, 8),
    (499, 8), (500, 8), (501, 16), (999, 16), (1000, 16), (1001, 32), (1999, 32),
    (2000, 32), (2001, 64), (3999, 64), (4000, 64), (4001, 128), (5999, 128), (6000, 128),
    (6001, 256), (7999, 256), (8000, 256), (8001, 512), (20000, 512),
]  # fmt: skip
#: resc_schedule=True with n_queries=5000: the rescaled iteration is 2 * it.
RESCALED_5000 = [
    (9, 2), (10, 2), (11, 2), (49, 4), (50, 4), (51, 4), (199, 8), (200, 8), (201, 8),
    (499, 16), (500, 16), (501, 32), (999, 32), (1000, 32), (1001, 64), (1999, 64),
    (2000, 64), (2001, 128), (2999, 128), (3000, 128), (3001, 256), (3999, 256),
    (4000, 256), (4001, 512), (4999, 512),
]  # fmt: skip
#: resc_schedule=True with n_queries=16000: the rescaled iteration is int(it * 5 / 8).
RESCALED_16000 = [
    (9, 1), (10, 1), (11, 1), (16, 1), (17, 1), (18, 2), (49, 2), (50, 2), (51, 2), (81, 2),
    (82, 4), (199, 4), (200, 4), (201, 4), (321, 4), (322, 8), (499, 8), (500, 8), (501, 8),
    (999, 16), (1000, 16), (1001, 16), (1999, 32), (2000, 32), (2001, 32), (3999, 64),
    (4000, 64), (4001, 64), (7999, 128), (8000, 128), (8001, 128), (12800, 256), (12801, 256),
    (12802, 512),
]  # fmt: skip
#: The reference's side max(int(round(sqrt(p * h * w))), 1) on 32 x 32 images, p_init 0.8,
#: by divisor: sqrt(819.2) = 28.6, sqrt(409.6) = 20.2, ..., sqrt(1.6) = 1.26.
SIDE_32 = {1: 29, 2: 20, 4: 14, 8: 10, 16: 7, 32: 5, 64: 4, 128: 3, 256: 2, 512: 1}


@pytest.mark.parametrize(
    ("schedule", "queries", "table"),
    [
        ("fixed", 5000, FIXED),
        ("rescaled", 5000, RESCALED_5000),
        ("rescaled", 16000, RESCALED_16000),
    ],
)
def test_window_schedule_matches_autoattacks_p_selection(schedule, queries, table) -> None:
    square = Square(0.1, queries=queries, window_schedule=schedule)
    for it, divisor in table:
        assert p_selection(0.8, it, square.horizon) == 0.8 / divisor, (it, divisor)
        assert square.window_side(it, 32, 32) == SIDE_32[divisor], (it, divisor)
    assert square.config()["window_schedule"] == schedule
    assert square.config()["window_schedule_queries"] == (None if schedule == "fixed" else queries)


def test_fixed_schedule_ignores_the_budget_and_plain_square_rescales() -> None:
    assert Square(0.1).window_schedule == "rescaled"
    short, long = Square(0.1, 400, window_schedule="fixed"), Square(0.1, 5000)
    assert [short.window_side(i, 28, 28) for i in range(400)] == [
        Square(0.1, 9000, window_schedule="fixed").window_side(i, 28, 28) for i in range(400)
    ]
    assert short.window_side(300, 28, 28) != Square(0.1, 400).window_side(300, 28, 28)
    assert long.window_side(300, 28, 28) != Square(0.1, 400).window_side(300, 28, 28)
    model, x, y = trained_mlp(n=40)
    full = Square(0.05, queries=400, window_schedule="fixed")(model, x, y)
    cut = Square(0.05, queries=60, window_schedule="fixed")(model, x, y)
    assert 0 < cut.success.sum() < full.success.sum()
    assert torch.equal(cut.x_adv[cut.success], full.x_adv[cut.success])
    with pytest.raises(ValueError, match="window_schedule"):
        Square(0.1, window_schedule="linear")
    with pytest.raises(ValueError, match="rescaled schedule only"):
        Square(0.1, window_schedule="fixed", window_schedule_queries=5000)


def test_a_shorter_run_on_a_longer_schedule_is_the_beginning_of_the_longer_run() -> None:
    model, x, y = trained_mlp(n=40)
    long = Square(0.05, queries=400)(model, x, y)
    short = Square(0.05, queries=40, window_schedule_queries=400)(model, x, y)
    assert 0 < short.success.sum() < long.success.sum()
    assert not (short.success & ~long.success).any()
    assert torch.equal(short.x_adv[short.success], long.x_adv[short.success])
    assert short.cost.queries <= 40 * 40
    assert (
        Square(0.05, queries=40, window_schedule_queries=400).config()["window_schedule_queries"]
        == 400
    )
    assert Square(0.05, queries=40).config()["window_schedule_queries"] == 40
    # its own schedule over 40 queries shrinks the windows sooner: a different search
    squeezed = Square(0.05, queries=40)(model, x, y)
    assert not torch.equal(squeezed.x_adv[squeezed.success], long.x_adv[squeezed.success])
    with pytest.raises(ValueError, match="window_schedule_queries"):
        Square(0.05, window_schedule_queries=0)


def test_give_up_stops_points_that_make_too_little_progress() -> None:
    model, x, y = trained_mlp(n=40)
    full = Square(0.05, queries=400)(model, x, y)
    # share 0 gives up every robust point at 40 queries: exactly the run cut at 40
    cut = Square(0.05, queries=400, give_up=[(40, 0.0)])(model, x, y)
    short = Square(0.05, queries=40, window_schedule_queries=400)(model, x, y)
    assert torch.equal(cut.success, short.success) and torch.equal(cut.x_adv, short.x_adv)
    assert cut.cost == short.cost
    status = cut.restarts.status[:, 0]
    assert torch.equal(status == GAVE_UP, ~cut.success) and (short.restarts.status != GAVE_UP).all()
    # share 1 never gives up (the loss never falls below its first value)
    kept = Square(0.05, queries=400, give_up=[(40, 1.0)])(model, x, y)
    assert torch.equal(kept.x_adv, full.x_adv) and kept.cost == full.cost
    # in between: some points stop, those that go on are the full run's
    half = Square(0.05, queries=400, give_up=[(40, 0.6), (100, 0.3)])(model, x, y)
    assert short.cost.queries < half.cost.queries < full.cost.queries
    assert short.success.sum() < half.success.sum() <= full.success.sum()
    assert not (half.success & ~full.success).any()
    assert torch.equal(half.x_adv[half.success], full.x_adv[half.success])
    # the same per point in any batch
    rows = torch.arange(40)
    split = [
        Square(0.05, queries=400, give_up=[(40, 0.6), (100, 0.3)])(
            model, x[part], y[part], index=rows[part]
        )
        for part in (rows[::2], rows[1::2])
    ]
    assert torch.equal(split[0].x_adv, half.x_adv[::2])
    assert torch.equal(split[1].success, half.success[1::2])
    assert Square(0.05, give_up=[(100, 0.3), (40, 0.6)]).config()["give_up"] == [
        [40, 0.6],
        [100, 0.3],
    ]
    for bad in ([(0, 0.5)], [(10, 1.5)], [(10, 0.5), (10, 0.2)], [(2.5, 0.5)]):
        with pytest.raises(ValueError, match="give_up"):
            Square(0.05, give_up=bad)


def test_breaks_an_undefended_model() -> None:
    model, x, y = trained_mlp(n=20)
    out = Square(0.15, queries=100)(model, x, y)
    assert out.success.float().mean() >= 0.95
    assert out.cost.gradients == 0 and out.cost.queries == out.cost.forwards - 20
    assert out.cost.queries < 20 * 100  # broken points stop querying
    assert Square(0.01, queries=30)(model, x, y).success.float().mean() < 0.5


def test_budget_is_exact_on_an_unbreakable_model() -> None:
    model = unbreakable()
    x = torch.rand(4, 1, 8, 8)
    y = torch.zeros(4, dtype=torch.long)
    out = Square(0.3, queries=25, restarts=2)(model, x, y)
    assert not out.success.any()
    assert out.cost.queries == 4 * 25 * 2
    assert (out.x_adv - x).abs().max() <= 0.3 + 1e-6
    assert torch.isfinite(out.loss).all()


def test_all_misclassified_batch_does_not_crash() -> None:
    model = unbreakable()
    x = torch.rand(5, 1, 8, 8)
    y = torch.full((5,), 3)  # the model says 0 everywhere: every point is misclassified
    out = Square(0.1, queries=50, restarts=3)(model, x, y)
    assert out.success.all() and torch.equal(out.x_adv, x)
    assert out.cost.queries == 0 and out.cost.forwards == 5  # the clean check settles all
    empty = Square(0.1, queries=50)(model, x[:0], y[:0])
    assert empty.x_adv.shape == (0, 1, 8, 8) and empty.cost.queries == 0


def test_draws_depend_on_point_restart_and_iteration() -> None:
    model = unbreakable()
    x = torch.full((2, 1, 8, 8), 0.5)  # two identical images, different data-set indices
    y = torch.zeros(2, dtype=torch.long)
    out = Square(0.1, queries=10)(model, x, y, index=torch.tensor([3, 4]))
    assert not torch.equal(out.x_adv[0], out.x_adv[1])
    again = Square(0.1, queries=10)(model, x[1:], y[1:], index=torch.tensor([4]))
    assert torch.equal(again.x_adv[0], out.x_adv[1])


def test_non_image_inputs_are_a_clear_error() -> None:
    model = unbreakable()
    with pytest.raises(ValueError, match="images"):
        Square(0.1, queries=5)(model, torch.rand(2, 64), torch.zeros(2, dtype=torch.long))


def test_keyed_rows_draw_per_row_whatever_the_selection() -> None:
    """Square draws every iteration through KeyedRows: a selected row's numbers must be
    those it has in the whole batch and those of the one-shot keyed functions."""
    from lpbench.attacks import KeyedRows, keyed_randint, keyed_signs

    index = torch.tensor([3, 2**33 + 5, 11, 0])
    rows = KeyedRows(123, index, 2)
    picked = torch.tensor([2, 0])
    assert torch.equal(rows[picked].signs((4, 3), stream=9), rows.signs((4, 3), stream=9)[picked])
    assert torch.equal(rows.signs((4, 3), stream=9), keyed_signs(123, index, 2, (4, 3), stream=9))
    assert torch.equal(rows.randint(17, 2, stream=5), keyed_randint(123, index, 2, 17, 2, stream=5))
    assert not torch.equal(rows.signs((8,), stream=1), rows.signs((8,), stream=2))
    assert not torch.equal(
        rows.signs((8,), stream=1), KeyedRows(123, index, 3).signs((8,), stream=1)
    )


def test_many_streams_at_once_give_each_streams_numbers() -> None:
    """Square draws a block of iterations in one call: stream by stream, the numbers must
    be those each stream gives alone, with a bound per stream or per row."""
    from lpbench.attacks import KeyedRows

    rows = KeyedRows(7, torch.tensor([4, 9, 2**40 + 1]), 1)
    streams = torch.tensor([5, 9, 13])
    signs = rows.signs((6, 2), stream=streams)
    bits = rows.bits(streams, 3)
    bounds = torch.tensor([3, 20, 100])
    ints = rows.randint(bounds[None, :, None], stream=streams)
    per_row = rows.randint(torch.tensor([2, 50, 7]), 2, stream=streams)
    assert signs.shape == (3, 3, 6, 2) and ints.shape == (3, 3, 1)
    for j, s in enumerate(streams.tolist()):
        assert torch.equal(signs[:, j], rows.signs((6, 2), stream=s))
        assert torch.equal(bits[:, j], rows.bits(s, 3))
        assert torch.equal(ints[:, j], rows.randint(int(bounds[j]), stream=s))
        assert torch.equal(per_row[:, j], rows.randint(torch.tensor([2, 50, 7]), 2, stream=s))


def test_results_do_not_depend_on_how_draws_are_blocked(monkeypatch) -> None:
    import lpbench.attacks.square as square

    model, x, y = trained_mlp(n=40)
    attack = Square(0.05, queries=300, give_up=((40, 0.9),))
    reference = attack(model, x, y)
    assert 0 < reference.success.sum() < 40
    monkeypatch.setattr(square, "_BLOCK_ITERATIONS", 7)
    blocked = attack(model, x, y)
    assert torch.equal(blocked.x_adv, reference.x_adv)
    assert torch.equal(blocked.success, reference.success)
    assert blocked.cost.queries == reference.cost.queries


def test_a_run_started_from_given_points_refines_them() -> None:
    model, x, y = trained_mlp(n=40)
    cold = Square(0.05, queries=400)(model, x, y)
    assert 0 < cold.success.sum() < 40
    # starting from examples already adversarial breaks them at the first query
    start = torch.where(cold.success[:, None, None, None], cold.x_adv, x)
    warm = Square(0.05, queries=400)(model, x, y, x_init=start)
    assert warm.success[cold.success].all()
    assert torch.equal(warm.x_adv[cold.success], cold.x_adv[cold.success])
    hits = Square(0.05, queries=400)(
        model, x[cold.success], y[cold.success], x_init=start[cold.success]
    )
    assert hits.cost.queries == int(cold.success.sum())
    # from the clean points it is another search than from stripes, the same in any batch
    clean = Square(0.05, queries=400)(model, x, y, x_init=x)
    assert not torch.equal(clean.x_adv, cold.x_adv)
    assert ((clean.x_adv - x).abs() <= 0.05 + 1e-6).all()
    rows = torch.arange(40)
    odd = Square(0.05, queries=400)(model, x[1::2], y[1::2], index=rows[1::2], x_init=x[1::2])
    assert torch.equal(odd.x_adv, clean.x_adv[1::2]) and torch.equal(
        odd.success, clean.success[1::2]
    )


def test_starting_points_are_checked() -> None:
    model, x, y = trained_mlp(n=4)
    with pytest.raises(ValueError, match="eps-ball"):
        Square(0.05, queries=10)(model, x, y, x_init=(x + 0.1).clamp(0, 1))
    with pytest.raises(ValueError, match="shape"):
        Square(0.05, queries=10)(model, x, y, x_init=x[:2])
    with pytest.raises(ValueError, match="starting points"):
        APGD(0.05, iters=2)(model, x, y, x_init=x)
