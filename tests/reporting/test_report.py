"""Reporting: rows from results, the seed's table, report folders."""

from __future__ import annotations

import csv
import json
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from lpbench.attacks import PGD
from lpbench.evaluation import NamedAttack, evaluate
from lpbench.reporting import (
    ResultRow,
    machine_warnings,
    render_html,
    render_markdown,
    render_text,
    write_report,
)

HEADER = "| Model | Accuracy | Adversarial accuracy, baseline | Adversarial accuracy, strongest |"


def _pgd(step: float, iters: int, restarts: int, score: str = "any") -> dict[str, Any]:
    return {
        "attack": "pgd",
        "score": score,
        "eps": 0.3,
        "step": step,
        "iters": iters,
        "restarts": restarts,
        "loss": "ce",
        "random_start": True,
        "early_stop": True,
        "keep_last": False,
        "seed": 0,
    }


def _results(
    name: str | None, clean: float, baseline: float, strongest: float | None, **extra: Any
) -> dict[str, Any]:
    """A hand-made results dict in the shape of ``EvaluationResult.to_dict()``."""
    attacks = [
        {
            "label": "baseline",
            "config": _pgd(0.01, 40, 1, score="last"),
            "points_attacked": 988,
            "points_broken": 364,
            "robust_accuracy_after": baseline,
            "mean_over_restarts_accuracy": baseline,
            "grad_evals": 39_520,
            "forward_evals": 40_508,
            "wall_time_s": 3.31,
        }
    ]
    if strongest is not None:
        attacks.append(
            {
                "label": "pgd-many",
                "config": _pgd(0.075, 100, 100),
                "points_attacked": 624,
                "points_broken": 583,
                "robust_accuracy_after": strongest,
                "mean_over_restarts_accuracy": None,
                "grad_evals": 6_240_000,
                "forward_evals": 6_302_400,
                "wall_time_s": 412.0,
            }
        )
    results = {
        "eps": 0.3,
        "num_points": 1000,
        "clean_accuracy": clean,
        "robust_accuracy": strongest if strongest is not None else baseline,
        "grad_evals": sum(a["grad_evals"] for a in attacks),
        "wall_time_s": 0.5 + sum(a["wall_time_s"] for a in attacks),
        "attacks": attacks,
        "dataset": "mnist",
        **extra,
    }
    if name is not None:
        results["name"] = name
    return results


def test_row_from_results() -> None:
    row = ResultRow.from_results(_results("CLP", 0.988, 0.624, 0.041))
    assert (row.name, row.clean_accuracy, row.baseline_accuracy, row.strongest_accuracy) == (
        "CLP",
        0.988,
        0.624,
        0.041,
    )
    assert (row.baseline_grad_evals, row.baseline_wall_time_s) == (39_520, 3.31)
    assert row.strong_grad_evals == 39_520 + 6_240_000
    assert row.strong_wall_time_s == pytest.approx(0.5 + 3.31 + 412.0)
    assert row.baseline_attack == (
        "baseline: PGD on ce loss, 40 iterations, step 0.01, 1 restart, last-iterate scoring"
    )
    assert row.strong_attacks[1] == (
        "pgd-many: PGD on ce loss, 100 iterations, step 0.075, 100 restarts, any-iterate scoring"
    )
    only_baseline = ResultRow.from_results(_results("Plain", 0.99, 0.0, None))
    assert only_baseline.strongest_accuracy is None
    assert only_baseline.strong_grad_evals is None and only_baseline.strong_attacks == []


def test_without_the_papers_baseline_the_baseline_column_says_not_run() -> None:
    results = _results("LSQ", 0.99, 0.145, 0.03)
    results["attacks"][0]["label"] = "universal"  # e.g. an auto or aa-standard evaluation
    row = ResultRow.from_results(results)
    assert row.baseline_label is None and row.baseline_accuracy is None
    assert row.strongest_accuracy == 0.03 and row.strong_grad_evals == results["grad_evals"]
    assert row.baseline_grad_evals is None
    text, markdown = render_text([row]), render_markdown([row])
    assert "14.5%" not in text + markdown and "universal)" not in text + markdown
    assert "| LSQ | 99.0% | not run | 3.0% |" in markdown
    assert text.splitlines()[2].split()[:4] == ["LSQ", "99.0%", "not", "run"]
    assert "- LSQ: baseline column: not run" in markdown
    # One attack that is not the baseline (a custom PGD): the strongest column, not n/a.
    single = _results("CE", 0.99, 0.2, None)
    single["attacks"][0]["label"] = "custom"
    row = ResultRow.from_results(single)
    assert (row.baseline_accuracy, row.strongest_accuracy) == (None, 0.2)
    assert "| CE | 99.0% | not run | 20.0% |" in render_markdown([row])
    seed = ResultRow.from_results(_results("CLP", 0.988, 0.624, 0.041))
    assert "| CLP | 98.8% | 62.4% | 4.1% |" in render_markdown([seed])
    assert "(baseline)" not in render_text([seed]) + render_markdown([seed])


def test_row_name_fallbacks() -> None:
    assert ResultRow.from_results(_results(None, 0.9, 0.5, None, train_preset="lsq")).name == "lsq"
    ckpt = _results(None, 0.9, 0.5, None, checkpoint="runs/clp-long/model.safetensors")
    assert ResultRow.from_results(ckpt).name == "clp-long"
    folder = _results(None, 0.9, 0.5, None, checkpoint="runs/at")
    assert ResultRow.from_results(folder).name == "at"
    assert ResultRow.from_results(folder, name="given").name == "given"


def test_markdown_table_matches_the_seed() -> None:
    rows = [
        ResultRow.from_results(_results("Plain", 0.992, 0.0, 0.0)),
        ResultRow.from_results(_results("CLP", 0.988, 0.624, 0.041)),
        ResultRow.from_results(_results("LSQ", 0.988, 0.706, None)),
    ]
    text = render_markdown(rows, title="MNIST")
    lines = text.splitlines()
    assert lines[0] == "# MNIST"
    assert HEADER in lines
    start = lines.index(HEADER)
    assert lines[start + 1] == "| ----- | -----: | -----: | -----: |"
    assert lines[start + 2] == "| Plain | **99.2%** | 0.0% | 0.0% |"
    assert lines[start + 3] == "| CLP | 98.8% | 62.4% | **4.1%** |"
    assert lines[start + 4] == "| LSQ | 98.8% | **70.6%** | n/a |"
    assert "| CLP | 1000 | 0.3 | 39,520 | 3.3 s | 6,279,520 | 415.8 s |" in lines
    assert "LSQ" in text and "pgd-many: PGD on ce loss, 100 iterations" in text

    single = render_markdown(rows[1:2]).splitlines()
    assert "| CLP | 98.8% | 62.4% | 4.1% |" in single  # no bold with one row

    terminal = render_text(rows)
    assert terminal.splitlines()[0].split()[:2] == ["Model", "Accuracy"]
    clp = next(line for line in terminal.splitlines() if line.startswith("CLP"))
    assert clp.split()[1:4] == ["98.8%", "62.4%", "4.1%"]
    assert "6,279,520" in clp


def test_write_report(tmp_path) -> None:
    figure = tmp_path / "figures" / "surface.png"
    figure.parent.mkdir()
    figure.write_bytes(b"")
    results = [_results("Plain", 0.992, 0.0, 0.0), _results("CLP", 0.988, 0.624, 0.041)]
    written = write_report(
        results, tmp_path / "report", figures={"Loss surfaces": [figure]}, title="demo"
    )
    assert set(written) == {"markdown", "csv", "json"}
    markdown = written["markdown"].read_text()
    assert markdown.startswith("# demo\n") and HEADER in markdown
    assert "## Loss surfaces" in markdown
    assert "![surface](../figures/surface.png)" in markdown
    with open(written["csv"]) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == ["Plain", "CLP"]
    assert float(rows[1]["baseline_accuracy"]) == 0.624
    assert int(rows[1]["strong_grad_evals"]) == 6_279_520
    data = json.loads(written["json"].read_text())
    assert data["title"] == "demo"
    assert data["rows"][1]["strongest_accuracy"] == 0.041
    assert data["figures"] == {"Loss surfaces": ["../figures/surface.png"]}


def test_tables_warn_when_results_come_from_different_machines(tmp_path) -> None:
    avx2 = {"cpu": "Xeon", "cpu_capability": "AVX2", "gpu": None}
    avx512 = {**avx2, "cpu_capability": "AVX512"}
    plain = _results("Plain", 0.992, 0.0, 0.0, manifest={"machine": avx2})
    clp = _results("CLP", 0.988, 0.624, 0.041, manifest={"machine": avx512})
    rows = [ResultRow.from_results(plain), ResultRow.from_results(clp)]
    assert [row.machine for row in rows] == ["Xeon (AVX2)", "Xeon (AVX512)"]
    (warning,) = machine_warnings(rows)
    assert "Plain on Xeon (AVX2); CLP on Xeon (AVX512)" in warning
    assert f"> **Warning:** {warning}" in render_markdown(rows)
    assert render_text(rows).splitlines()[-1] == f"warning: {warning}"
    written = write_report([plain, clp], tmp_path)
    assert json.loads(written["json"].read_text())["warnings"] == [warning]
    with open(written["csv"]) as handle:
        assert [r["machine"] for r in csv.DictReader(handle)] == ["Xeon (AVX2)", "Xeon (AVX512)"]

    same = [plain, _results("CLP", 0.988, 0.624, 0.041, manifest={"machine": dict(avx2)})]
    assert machine_warnings(same) == []
    assert "Warning" not in render_markdown([ResultRow.from_results(r) for r in same])
    unknown = ResultRow.from_results(_results("LSQ", 0.988, 0.706, None))
    assert unknown.machine == "unknown"
    assert "LSQ on unknown" in machine_warnings([rows[0], unknown])[0]


def test_rows_from_a_real_evaluation(tiny_net: nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(12, 1, 8, 8, generator=gen), torch.randint(0, 4, (12,), generator=gen)
    attacks = [
        NamedAttack("baseline", PGD(0.1, 0.01, 3, seed=1)),
        NamedAttack("strong", PGD(0.1, 0.03, 5, restarts=2, seed=2)),
    ]
    result = evaluate(tiny_net, x, y, attacks, show_progress=False)
    row = ResultRow.from_results(result.to_dict(), name="tiny")
    assert row.clean_accuracy == pytest.approx(result.clean_accuracy)
    assert row.baseline_accuracy == pytest.approx(result.attacks[0].robust_accuracy_after)
    assert row.strongest_accuracy == pytest.approx(result.robust_accuracy)
    assert row.strong_grad_evals == result.gradients
    assert np.isclose(row.strong_wall_time_s, result.wall_time_s)
    assert f"{100 * result.clean_accuracy:.1f}%" in render_text([row])


def test_a_randomised_evaluation_is_said_in_the_tables_and_the_page() -> None:
    noisy = _results("noisy", 0.9, 0.5, 0.4, randomised={"eot_iter": [20], "rechecks": 10})
    plain = _results("plain", 0.99, 0.0, 0.0)
    note = "noisy is randomised: each gradient averaged over 20 draws (EOT)"
    assert note in render_markdown([ResultRow.from_results(noisy), ResultRow.from_results(plain)])
    assert "plain is randomised" not in render_markdown([ResultRow.from_results(plain)])
    assert note in render_html([noisy, plain])
