"""Diagnostics: loss surfaces, step x iteration grids, per-restart histograms."""

from __future__ import annotations

import json
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lpbench.attacks import PGD
from lpbench.diagnostics import (
    LOSS_THRESHOLD,
    GridData,
    SurfaceData,
    loss_surface,
    plot_grid,
    plot_point_histograms,
    plot_restart_summary,
    plot_surfaces,
    point_histograms,
    resolve_label,
    restart_losses,
    restarts_curve,
    step_iteration_grid,
    success_fractions,
)
from lpbench.evaluation import NamedAttack, evaluate
from tests.support import TinyNet

EPS = 0.1


def _points(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs with TinyNet's own labels (attacks start from correct points), except that
    the first quarter are flipped into clean errors."""
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = TinyNet()(x).argmax(1)
    y[: n // 4] = (y[: n // 4] + 1) % 4
    return x, y


def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return F.cross_entropy(model(x.reshape(1, 1, 8, 8)), y.reshape(1)).item()


def _assert_png(path, min_side: int = 100) -> None:
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert min(image.shape[:2]) >= min_side


def _assert_pdf(path) -> None:
    assert path.read_bytes()[:5] == b"%PDF-"


# ---------------------------------------------------------------- loss surface


def test_surface_centre_is_the_clean_loss(tiny_net: nn.Module) -> None:
    x, y = _points(1)
    surface = loss_surface(tiny_net, x[0], y[0], EPS, resolution=7, seed=3, batch_size=10)
    assert surface.loss.shape == (7, 7)
    assert surface.alphas[3] == 0.0 and surface.betas[3] == 0.0
    assert surface.alphas[0] == -EPS and surface.alphas[-1] == EPS
    clean = _ce(tiny_net, x[0], y[0])
    assert surface.clean_loss == pytest.approx(clean, rel=1e-6)
    assert surface.loss[3, 3] == pytest.approx(clean, rel=1e-5)
    assert surface.label == int(y[0])


def test_surface_lies_on_the_clipped_plane(tiny_net: nn.Module) -> None:
    x, y = _points(1, seed=4)
    x[0, 0, :2] = 0.0  # pixels on the box edges, where clipping matters
    x[0, 0, 2:4] = 1.0
    surface = loss_surface(tiny_net, x, y[0], 0.2, resolution=5, seed=1, batch_size=4)
    d1 = torch.tensor(surface.d1).view_as(x)
    d2 = torch.tensor(surface.d2).view_as(x)

    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(tiny_net(xg), y[:1]), xg)
    assert torch.equal(d1, grad.sign())
    assert set(d2.unique().tolist()) == {-1.0, 1.0}
    for i, j in [(0, 0), (4, 4), (0, 4), (1, 3), (2, 2)]:
        a, b = float(surface.alphas[i]), float(surface.betas[j])
        on_plane = (x + a * d1 + b * d2).clamp(0, 1)
        assert surface.loss[i, j] == pytest.approx(_ce(tiny_net, on_plane, y[0]), rel=1e-5)
    unclipped = _ce(tiny_net, x + 0.2 * d1 + 0.2 * d2, y[0])
    assert surface.loss[4, 4] != pytest.approx(unclipped, rel=1e-3)

    rebatched = loss_surface(tiny_net, x, y[0], 0.2, resolution=5, seed=1, batch_size=1000)
    np.testing.assert_allclose(rebatched.loss, surface.loss, rtol=1e-5)
    other = loss_surface(tiny_net, x, y[0], 0.2, resolution=5, seed=2)
    assert not np.array_equal(other.d2, surface.d2)


def test_surface_round_trip_and_figures(tiny_net: nn.Module, tmp_path) -> None:
    x, y = _points(2)
    first = loss_surface(tiny_net, x[0], y[0], EPS, resolution=9, index=17)
    second = loss_surface(TinyNet(seed=1).eval(), x[1], y[1], EPS, resolution=9)
    loaded = SurfaceData.load_npz(first.save_npz(tmp_path / "surface.npz"))
    np.testing.assert_array_equal(loaded.loss, first.loss)
    assert (loaded.index, loaded.label, loaded.eps) == (17, first.label, EPS)

    written = plot_surfaces(
        [("model a", first), ("model b", second)], tmp_path / "surfaces", pdf=True
    )
    assert [p.name for p in written] == ["surfaces.png", "surfaces.pdf"]
    _assert_png(written[0])
    _assert_pdf(written[1])
    image = mpimg.imread(written[0])
    assert image.shape[1] > image.shape[0]  # side by side


def test_surface_rejects_a_batch(tiny_net: nn.Module) -> None:
    x, y = _points(2)
    with pytest.raises(ValueError, match="one point"):
        loss_surface(tiny_net, x, y[0], EPS)


# ---------------------------------------------------------------- step x iteration grid

STEPS, ITERS, RESTARTS, SEED = [0.005, 0.05], [1, 3, 8], 2, 5


@pytest.fixture(scope="module")
def grid_setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor, GridData]:
    model = TinyNet().eval()
    x, y = _points(20)
    grid = step_iteration_grid(
        model, x, y, EPS, STEPS, ITERS, restarts=RESTARTS, seed=SEED, show_progress=False
    )
    return model, x, y, grid


def test_grid_cell_equals_a_separate_run(grid_setup) -> None:
    model, x, y, grid = grid_setup
    assert grid.accuracy.shape == (len(STEPS), len(ITERS))
    assert len(set(grid.accuracy.flat)) > 1  # the grid is not trivially constant
    assert np.all(np.diff(grid.accuracy, axis=1) <= 0)  # more iterations never help the model
    for i, step in enumerate(STEPS):
        for j, iters in enumerate(ITERS):
            attack = PGD(EPS, step, iters, restarts=RESTARTS, seed=SEED)
            alone = evaluate(model, x, y, [NamedAttack("pgd", attack)], show_progress=False)
            assert grid.accuracy[i, j] == pytest.approx(alone.robust_accuracy), (step, iters)
            assert grid.clean_accuracy == pytest.approx(alone.clean_accuracy)


def test_grid_cost_is_one_run_per_step(grid_setup) -> None:
    model, x, y, grid = grid_setup
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).nonzero().squeeze(1)
    spent = sum(
        PGD(EPS, step, max(ITERS), restarts=RESTARTS, seed=SEED)(
            model, x[correct], y[correct], index=correct
        ).cost.gradients
        for step in STEPS
    )
    assert grid.grad_evals == spent
    assert grid.grad_evals <= len(STEPS) * max(ITERS) * len(correct) * RESTARTS
    assert grid.grad_evals < grid.naive_grad_evals


def test_grid_naive_cost_is_one_early_stopped_run_per_cell() -> None:
    """With one restart the figure equals the cost of separate runs, misclassified excluded."""
    model = TinyNet().eval()
    x, y = _points(20)
    grid = step_iteration_grid(model, x, y, EPS, STEPS, ITERS, seed=SEED, show_progress=False)
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).nonzero().squeeze(1)
    assert 0 < len(correct) < len(x)
    separate = sum(
        PGD(EPS, step, k, seed=SEED)(model, x[correct], y[correct], index=correct).cost.gradients
        for step in STEPS
        for k in ITERS
    )
    assert grid.naive_grad_evals == separate


def test_grid_with_restart_rounds_matches_one_batch() -> None:
    """Splitting restarts into rounds must not skip points broken late by an earlier round."""
    model = TinyNet().eval()
    x, y = _points(20)
    kwargs = {"restarts": 4, "seed": SEED, "show_progress": False}
    one = step_iteration_grid(model, x, y, EPS, STEPS, ITERS, batch_size=10_000, **kwargs)
    rounds = step_iteration_grid(model, x, y, EPS, STEPS, ITERS, batch_size=3, **kwargs)
    np.testing.assert_array_equal(one.accuracy, rounds.accuracy)


def test_grid_round_trip_and_heatmap(grid_setup, tmp_path) -> None:
    grid = grid_setup[3]
    loaded = GridData.load_npz(grid.save_npz(tmp_path / "grid.npz"))
    assert loaded.to_dict() == grid.to_dict()
    assert json.loads(json.dumps(grid.to_dict()))["accuracy"] == grid.accuracy.tolist()
    written = plot_grid(
        grid,
        tmp_path / "heatmap",
        step_unit="1/255",
        step_labels=[f"{s * 255:g}/255" for s in STEPS],
        pdf=True,
    )
    _assert_png(written[0])
    _assert_pdf(written[1])
    with pytest.raises(ValueError, match="tick label"):
        plot_grid(grid, tmp_path / "bad", step_labels=["just one"])


# ---------------------------------------------------------------- restarts and histograms

R = 5


def _results(attacks: list[NamedAttack], n: int = 20) -> dict[str, Any]:
    """Results on points the model gets right, but for the first 3 (clean errors)."""
    model = TinyNet().eval()
    x, _ = _points(n)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 4
    result = evaluate(model, x, y, attacks, show_progress=False)
    return json.loads(json.dumps(result.to_dict()))  # exactly what a results file holds


@pytest.fixture(scope="module")
def many_restarts() -> dict[str, Any]:
    attack = PGD(EPS, 0.02, 5, restarts=R, early_stop=False, seed=2)
    return _results([NamedAttack("pgd", attack)])


def test_restarts_curve_ends_at_the_robust_accuracy(many_restarts) -> None:
    curve = restarts_curve(many_restarts, "pgd")
    assert curve.shape == (R,)
    assert np.all(np.diff(curve) <= 0)
    assert curve[-1] == pytest.approx(many_restarts["robust_accuracy"])
    assert curve[0] > curve[-1]  # restarts matter on this model
    first_only = [
        p["clean_pred"] == p["label"] and not p["attacks"]["pgd"]["restart_success"][0]
        for p in many_restarts["points"]
    ]
    assert curve[0] == pytest.approx(np.mean(first_only))


def test_restarts_curve_counts_earlier_attacks_and_clean_errors() -> None:
    results = _results(
        [
            NamedAttack("weak", PGD(EPS, 0.02, 5, restarts=1, seed=7)),
            NamedAttack("many", PGD(EPS, 0.02, 5, restarts=4, early_stop=False, seed=2)),
        ]
    )
    assert resolve_label(results) == "many"
    weak_after = results["attacks"][0]["robust_accuracy_after"]
    assert weak_after < results["clean_accuracy"]  # the first attack breaks some points
    curve = restarts_curve(results)
    survives_first = [
        p["broken_by"] is None
        or (p["broken_by"] == "many" and not p["attacks"]["many"]["restart_success"][0])
        for p in results["points"]
    ]
    assert curve[0] == pytest.approx(np.mean(survives_first))
    assert curve[-1] == pytest.approx(results["robust_accuracy"])
    # the first attack's curve ignores what later attacks did
    assert restarts_curve(results, "weak")[-1] == pytest.approx(weak_after)
    with pytest.raises(ValueError, match="no attack"):
        restarts_curve(results, "missing")


def test_restart_losses_and_histograms(many_restarts, tmp_path) -> None:
    indices, losses = restart_losses(many_restarts)
    attacked = [p["index"] for p in many_restarts["points"] if "pgd" in p["attacks"]]
    assert indices.tolist() == attacked
    assert losses.shape == (len(attacked), R)
    _, fractions = success_fractions(many_restarts)
    by_index = {p["index"]: p for p in many_restarts["points"]}
    for index, row, fraction in zip(indices, losses, fractions, strict=True):
        record = by_index[int(index)]["attacks"]["pgd"]
        assert row.tolist() == pytest.approx(record["restart_loss"])
        assert fraction == pytest.approx(np.mean(record["restart_success"]))
        # a final loss above -ln(0.1) means the true class has probability < 0.1
        assert all(
            s for v, s in zip(row, record["restart_success"], strict=True) if v > LOSS_THRESHOLD
        )

    chosen = indices[:4].tolist()
    hists, written = plot_point_histograms(
        many_restarts, "pgd", chosen, tmp_path / "hist", bins=6, pdf=True
    )
    assert [h.index for h in hists] == chosen
    for hist in hists:
        assert hist.counts.sum() == R
        assert len(hist.edges) == 7
        assert hist.successes == sum(by_index[hist.index]["attacks"]["pgd"]["restart_success"])
    _assert_png(written[0])
    _assert_pdf(written[1])
    picked = point_histograms(many_restarts, None, None)
    assert 0 < len(picked) <= 6 and all(h.counts.sum() == R for h in picked)
    with pytest.raises(ValueError, match="no complete restart records"):
        point_histograms(many_restarts, "pgd", [10_000])


def test_restart_summary_figure(many_restarts, tmp_path) -> None:
    summary, written = plot_restart_summary(many_restarts, None, tmp_path / "restarts")
    assert summary.counts.sum() == len(summary.indices) == len(restart_losses(many_restarts)[0])
    assert len(summary.counts) == R + 1  # one bin per possible fraction 0, 1/R, ..., 1
    np.testing.assert_allclose(summary.curve, restarts_curve(many_restarts))
    assert [p.suffix for p in written] == [".png"]
    _assert_png(written[0])


def test_early_stopped_records_are_refused_but_the_curve_is_exact() -> None:
    """Early stop skips the restarts after a success: histograms refuse, the curve holds."""
    early = _results([NamedAttack("pgd", PGD(EPS, 0.02, 5, restarts=R, seed=2))])
    full = _results([NamedAttack("pgd", PGD(EPS, 0.02, 5, restarts=R, seed=2, early_stop=False))])
    attacked = [p for p in early["points"] if "pgd" in p["attacks"]]
    skipped = [p for p in attacked if None in p["attacks"]["pgd"]["restart_loss"]]
    assert skipped  # some points were broken before their last restart
    for point in skipped:  # a skipped restart never claims success or a loss
        record = point["attacks"]["pgd"]
        first = record["restart_success"].index(True)
        assert all(v is None for v in record["restart_loss"][first + 1 :])
        assert all(v is None for v in record["restart_success"][first + 1 :])
    with pytest.raises(ValueError, match="--no-early-stop"):
        restart_losses(early)
    with pytest.raises(ValueError, match="--no-early-stop"):
        success_fractions(early)
    np.testing.assert_allclose(restarts_curve(early), restarts_curve(full))
    assert early["robust_accuracy"] == full["robust_accuracy"]
