"""``lpbench.check`` / ``lpbench check``: masking probes flag masked models, pass honest ones."""

from __future__ import annotations

import json
from itertools import pairwise

import torch
from torch import nn

import lpbench
from lpbench.evaluation.check import CLEAN, SUSPECT
from tests.attack_models import Scaled, trained_mlp
from tests.test_cli import run


class QuantisedScaled(nn.Module):
    """Inputs rounded to a few grey levels (zero gradient), logits times 1e4 (saturated)."""

    def __init__(self, model: nn.Module, levels: int = 4, factor: float = 1e4) -> None:
        super().__init__()
        self.model, self.levels, self.factor = model, levels, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * self.levels) / self.levels) * self.factor


def _labelled(model: nn.Module, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    _, x, _ = trained_mlp(5, n)
    with torch.no_grad():
        return x, model(x).argmax(1)  # labels from the model: every point starts correct


def test_check_passes_an_honest_model_and_draws_the_sweep(tmp_path):
    model, _, _ = trained_mlp(5, 40)
    x, y = _labelled(model)
    report = lpbench.check(model, x, y, 0.05, plot=tmp_path / "sweep.png")
    assert report.warnings == [], report.lines()
    assert report.exit_code == CLEAN and report.verdict.startswith("verdict: clean")
    assert report.correct == 40 and report.accuracy["eps=1"] == 0.0
    accs = [a for _, a in report.sweep]
    assert accs[0] == 1.0 and accs[-1] == 0.0
    assert all(b <= a for a, b in pairwise(accs))
    assert (tmp_path / "sweep.png").stat().st_size > 1000
    assert len(report.findings) >= 10


def test_check_flags_a_quantised_logit_scaled_model():
    model, _, _ = trained_mlp(5, 40)
    masked = QuantisedScaled(model)
    x, y = _labelled(masked)
    report = lpbench.check(masked, x, y, 0.1)
    warned = {f.probe for f in report.warnings}
    assert {"gradients", "logits", "black-box", "unbounded", "gap", "no-progress"} <= warned
    assert report.exit_code == SUSPECT and "MASKING SUSPECTED" in report.verdict
    grads = next(f for f in report.findings if f.probe == "gradients")
    assert grads.evidence["zero"]["clean"] == 1.0
    assert report.accuracy["square"] < report.accuracy["white-box"]


def test_check_flags_a_logit_scaled_model_through_the_baseline_gap():
    model, _, _ = trained_mlp(5, 40)
    masked = Scaled(model, 1e4)
    x, y = _labelled(masked)
    report = lpbench.check(masked, x, y, 0.1)
    warned = {f.probe for f in report.warnings}
    assert {"gap", "logits", "gradients"} <= warned
    gap = next(f for f in report.findings if f.probe == "gap")
    assert gap.evidence["baseline"] - gap.evidence["white_box"] > 0.5
    assert report.exit_code == SUSPECT


def test_check_and_auto_on_the_command_line(mnist_dir, tmp_path, capsys):
    from tests.conftest import train_tiny

    train_tiny(mnist_dir, tmp_path / "clp")
    code, out, err = run(
        capsys,
        "check",
        str(tmp_path / "clp"),
        "--data-dir",
        str(mnist_dir),
        "--points",
        "16",
        "--iters",
        "10",
        "--queries",
        "50",
        "--no-progress",
    )
    assert code in (CLEAN, SUSPECT), err
    report = json.loads((tmp_path / "clp" / "check.json").read_text())
    assert report["exit_code"] == code and "verdict:" in out
    assert (tmp_path / "clp" / "check.png").exists()

    res = tmp_path / "auto.json"
    base = [str(tmp_path / "clp"), "--data-dir", str(mnist_dir), "--points", "8"]
    code, out, err = run(
        capsys, "evaluate", *base, "--preset", "auto", "--budget", "300", "--out", str(res)
    )
    assert code == 0, err
    schedule = json.loads(res.read_text())["schedule"]
    assert schedule["budget_per_point"] == 300 and schedule["within_budget"]
    assert "auto budget 300" in out
    code, _, err = run(capsys, "evaluate", *base, "--preset", "strong", "--budget", "300")
    assert code == 2 and "--budget" in err


def test_check_runs_on_a_three_class_model():
    model, x, _ = trained_mlp(3, 20)
    with torch.no_grad():
        y = model(x).argmax(1)
    report = lpbench.check(model, x, y, 0.05, iters=10, queries=50)
    assert report.correct == 20 and report.exit_code in (CLEAN, SUSPECT)
