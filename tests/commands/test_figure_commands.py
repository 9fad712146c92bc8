"""The figure commands on real checkpoints: the raw data they save, not only the files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lpbench.cli import main
from lpbench.data import load_dataset
from lpbench.evaluation import parse_step
from lpbench.training import load_checkpoint
from tests.support import train_tiny, write_mnist_folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two LeNets (plain, lsq) trained one epoch on tiny MNIST-format files."""
    root = tmp_path_factory.mktemp("figures")
    data = write_mnist_folder(root / "mnist")
    for preset in ("plain", "lsq"):
        train_tiny(data, root / preset, preset)
    return root, data


def test_surface_centre_is_the_clean_loss_of_each_model(setup, capsys) -> None:
    root, data = setup
    out = root / "fig" / "surface.png"
    code, _, err = run(
        capsys,
        "surface",
        root / "plain",
        "--compare",
        root / "lsq",
        "--point",
        5,
        "--resolution",
        7,
        "--eps",
        0.2,
        "--data-dir",
        data,
        "--out",
        out,
        "--no-progress",
    )
    assert code == 0, err
    assert out.exists()
    test = load_dataset("mnist", "test", data_dir=data)
    for name in ("plain", "lsq"):
        raw = np.load(out.with_name(f"surface-{name}.npz"))
        model, _ = load_checkpoint(root / name)
        with torch.no_grad():
            clean = F.cross_entropy(model(test.images[5:6]), test.labels[5:6])
        assert raw["loss"].shape == (7, 7)
        assert raw["loss"][3, 3] == pytest.approx(float(clean), rel=1e-5)
        assert int(raw["index"]) == 5 and int(raw["label"]) == int(test.labels[5])
        assert raw["alphas"][0] == pytest.approx(-0.2) and raw["alphas"][-1] == pytest.approx(0.2)


def test_grid_cell_equals_a_separate_evaluation(setup, capsys) -> None:
    root, data = setup
    out = root / "fig" / "grid-plain.png"
    code, out_text, err = run(
        capsys,
        "grid",
        root / "plain",
        "--steps",
        "0.02",
        "eps/4",
        "--iters",
        2,
        6,
        "--eps",
        0.1,
        "--points",
        24,
        "--seed",
        3,
        "--data-dir",
        data,
        "--out",
        out,
        "--no-progress",
    )
    assert code == 0, err
    grid = json.loads(out.with_suffix(".json").read_text())
    assert grid["step_labels"] == ["0.02", "eps/4"]
    assert grid["steps"] == pytest.approx([0.02, 0.025])
    assert grid["grad_evals"] <= 2 * 6 * 24  # one run of the longest count per step size
    assert f"{grid['naive_grad_evals']:,}" in out_text
    results = root / "fig" / "eval.json"
    code, _, err = run(
        capsys,
        "evaluate",
        root / "plain",
        "--eps",
        0.1,
        "--step",
        0.025,
        "--iters",
        6,
        "--restarts",
        1,
        "--points",
        24,
        "--seed",
        3,
        "--data-dir",
        data,
        "--out",
        results,
        "--no-progress",
    )
    assert code == 0, err
    evaluated = json.loads(results.read_text())
    assert grid["accuracy"][1][1] == pytest.approx(evaluated["robust_accuracy"])
    assert grid["clean_accuracy"] == pytest.approx(evaluated["clean_accuracy"])
    raw = np.load(out.with_suffix(".npz"))
    np.testing.assert_allclose(raw["accuracy"], np.array(grid["accuracy"]))


def test_histogram_counts_and_restarts_curve(setup, capsys) -> None:
    root, data = setup
    results = root / "lsq" / "restarts.json"
    code, _, err = run(
        capsys,
        "evaluate",
        root / "lsq",
        "--eps",
        0.1,
        "--step",
        0.02,
        "--iters",
        5,
        "--restarts",
        8,
        "--no-early-stop",
        "--points",
        20,
        "--data-dir",
        data,
        "--out",
        results,
        "--no-progress",
    )
    assert code == 0, err
    out = root / "fig" / "histograms-lsq.png"
    code, _, err = run(capsys, "histogram", results, "--out", out, "--bins", 5)
    assert code == 0, err
    assert out.exists() and out.with_name("histograms-lsq-restarts.png").exists()
    raw = np.load(out.with_suffix(".npz"))
    evaluated = json.loads(results.read_text())
    curve = raw["restarts_curve"]
    assert len(curve) == 8
    assert np.all(np.diff(curve) <= 0)
    assert curve[-1] == pytest.approx(evaluated["robust_accuracy"])
    assert np.all(raw["counts"].sum(axis=1) == 8)
    by_index = {p["index"]: p for p in evaluated["points"]}
    for index, successes in zip(raw["points"], raw["successes"], strict=True):
        record = by_index[int(index)]["attacks"]["pgd"]
        assert successes == sum(record["restart_success"])


def test_report_collects_runs_and_figures(setup, capsys) -> None:
    root, data = setup
    for name in ("plain", "lsq"):
        code, _, err = run(
            capsys,
            "evaluate",
            root / name,
            "--preset",
            "baseline",
            "--points",
            16,
            "--data-dir",
            data,
            "--no-progress",
        )
        assert code == 0, err
    figures = root / "figures"
    figures.mkdir(exist_ok=True)
    (figures / "grid-plain.png").write_bytes(b"\x89PNG")
    code, out, err = run(capsys, "report", root, "--title", "two models")
    assert code == 0, err
    assert "plain" in out and "lsq" in out
    report = (root / "report.md").read_text()
    assert report.index("| plain") < report.index("| lsq")
    assert "(figures/grid-plain.png)" in report
    rows = json.loads((root / "report.json").read_text())["rows"]
    for row, name in zip(rows, ("plain", "lsq"), strict=True):
        stored = json.loads((root / name / "results-baseline.json").read_text())
        assert row["name"] == f"{name} (baseline)"
        assert row["baseline_accuracy"] == pytest.approx(stored["robust_accuracy"])


@pytest.mark.parametrize(
    "argv,message",
    [
        (["grid", "{plain}", "--steps", "2"], "must be in (0, 1]"),
        (["grid", "{plain}", "--steps", "fast"], "cannot read step size"),
        (["surface", "{plain}", "--point", "100000"], "--point must be a test-set index"),
        (["report", "{root}/plain/model.json"], "not an lpbench evaluation result"),
        (["histogram", "{root}/missing.json"], "missing.json"),
    ],
)
def test_figure_command_errors(setup, capsys, argv, message) -> None:
    root, data = setup
    argv = [a.format(plain=root / "plain", root=root) for a in argv]
    if argv[0] in ("grid", "surface"):
        argv += ["--data-dir", str(data), "--no-progress"]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    "text,value",
    [("0.01", 0.01), ("2.5/255", 2.5 / 255), ("eps/4", 0.075), ("eps", 0.3), ("2*eps", 0.6)],
)
def test_step_sizes_in_the_users_units(text: str, value: float) -> None:
    assert parse_step(text, 0.3) == pytest.approx(value)
