"""``lpbench.check`` / ``lpbench check``: masking probes flag masked models, pass honest ones."""

from __future__ import annotations

import json
from itertools import pairwise

import torch
from torch import nn

import lpbench
from lpbench.diagnostics import plot_sweep
from lpbench.evaluation.check import CLEAN, SUSPECT
from tests.attack_models import Noisy, Scaled, coin_flip, trained_mlp, unbreakable
from tests.support import run


class QuantisedScaled(nn.Module):
    """Inputs rounded to a few grey levels (zero gradient), logits times 1e4 (saturated)."""

    def __init__(self, model: nn.Module, levels: int = 4, factor: float = 1e4) -> None:
        super().__init__()
        self.model, self.levels, self.factor = model, levels, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * self.levels) / self.levels) * self.factor


class SinModulated(nn.Module):
    """Logits plus a fast sine of random projections of the input: a rough loss surface."""

    def __init__(self, model: nn.Module, amp: float = 1.0, freq: float = 300.0) -> None:
        super().__init__()
        self.model, self.amp, self.freq = model, amp, freq
        gen = torch.Generator().manual_seed(1)
        self.register_buffer("proj", torch.randn(64, 5, generator=gen) / 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.amp * torch.sin(self.freq * x.flatten(1) @ self.proj)


def _finding(report: lpbench.CheckReport, probe: str) -> lpbench.evaluation.check.Finding:
    return next(f for f in report.findings if f.probe == probe)


def _labelled(model: nn.Module, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    _, x, _ = trained_mlp(5, n)
    with torch.no_grad():
        return x, model(x).argmax(1)  # labels from the model: every point starts correct


def test_check_passes_an_honest_model_and_draws_the_sweep(tmp_path):
    model, _, _ = trained_mlp(5, 40)
    x, y = _labelled(model)
    report = lpbench.check(model, x, y, 0.05)
    plot_sweep(report.sweep, tmp_path / "sweep.png", eps=report.eps)  # pipelines draw it
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
    from tests.support import train_tiny

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
    transfer = next(f for f in report["findings"] if f["probe"] == "transfer")
    assert transfer["evidence"] == {"skipped": True} and report["surrogate"] is None

    code, out, err = run(
        capsys,
        "check",
        str(tmp_path / "clp"),
        "--data-dir",
        str(mnist_dir),
        "--points",
        "16",
        "--iters",
        "5",
        "--queries",
        "20",
        "--surrogate",
        str(tmp_path / "clp"),
        "--out",
        str(tmp_path / "surrogate.png"),
        "--no-progress",
    )
    assert code in (CLEAN, SUSPECT), err
    report = json.loads((tmp_path / "surrogate.json").read_text())
    transfer = next(f for f in report["findings"] if f["probe"] == "transfer")
    assert not transfer["evidence"]["skipped"] and report["surrogate"] == str(tmp_path / "clp")

    res = tmp_path / "auto.json"
    base = [str(tmp_path / "clp"), "--data-dir", str(mnist_dir), "--points", "8"]
    code, out, err = run(
        capsys, "evaluate", *base, "--preset", "auto", "--budget", "600", "--out", str(res)
    )
    assert code == 0, err
    schedule = json.loads(res.read_text())["schedule"]
    assert schedule["budget_per_point"] == 600 and schedule["within_budget"]
    assert "auto budget 600" in out
    code, _, err = run(capsys, "evaluate", *base, "--preset", "strong", "--budget", "300")
    assert code == 2 and "budget applies to the auto preset only" in err
    code, _, err = run(capsys, "evaluate", *base, "--preset", "strong", "--adapt")
    assert code == 2 and "adapt applies to the auto preset only" in err
    code, _, err = run(capsys, "evaluate", *base, "--preset", "strong", "--exhaustive")
    assert code == 2 and "exhaustive applies to the auto preset only" in err
    for flags, give_up in (([], [[500, 0.5]]), (["--exhaustive"], [])):
        code, _, err = run(
            capsys,
            "evaluate",
            *base,
            "--preset",
            "auto",
            "--budget",
            "1000",
            "--out",
            str(res),
            *flags,
        )
        assert code == 0, err
        attacks = json.loads(res.read_text())["manifest"]["attacks"]
        assert next(a for a in attacks if a["label"] == "square")["give_up"][:1] == give_up
    code, _, err = run(
        capsys, "evaluate", *base, "--preset", "auto", "--budget", "8372", "--out", str(res)
    )
    assert code == 0, err
    data = json.loads(res.read_text())
    attacks = data["manifest"]["attacks"]
    assert [a["label"] for a in attacks][:2] == ["universal", "fgsm"]  # training split found
    assert data["schedule"]["shared"] == attacks[0]["sources"]["images"] * attacks[0]["iters"]
    assert [a["label"] for a in attacks][-2:] == ["square-warm", "square"]
    assert attacks[-2]["warm_start"] and attacks[-2]["queries"] == 1000
    code, out, err = run(
        capsys,
        "evaluate",
        *base[:-1],
        "16",  # the tiny model gets none of the first 8 right: check would have nothing to do
        "--preset",
        "auto",
        "--budget",
        "600",
        "--adapt",
        "--out",
        str(res),
    )
    assert code == 0, err
    schedule = json.loads(res.read_text())["schedule"]
    assert "verdict:" in schedule["check"]["verdict"] and "verdict:" in out
    assert schedule["budget_per_point"] == 600 + sum(
        r["to"] - r["from"] for r in schedule["raised"]
    )


def test_check_runs_on_a_three_class_model():
    model, x, _ = trained_mlp(3, 20)
    with torch.no_grad():
        y = model(x).argmax(1)
    report = lpbench.check(model, x, y, 0.05, iters=10, queries=50)
    assert report.correct == 20 and report.exit_code in (CLEAN, SUSPECT)


def test_loss_surface_flags_a_sin_modulated_model_and_passes_an_mlp():
    model, _, _ = trained_mlp(5, 40)
    x, y = _labelled(model)
    smooth = _finding(lpbench.check(model, x, y, 0.05, iters=10, queries=50), "loss-surface")
    assert smooth.ok, smooth.message
    assert max(smooth.evidence["roughness"].values()) <= 2.0
    assert smooth.evidence["points"] == 20
    assert smooth.evidence["forwards"] == 2 * 20 * 33  # two directions, 33 samples each
    assert smooth.evidence["gradients"] == 20

    rough_model = SinModulated(model)
    x, y = _labelled(rough_model)
    rough = _finding(lpbench.check(rough_model, x, y, 0.05, iters=10, queries=50), "loss-surface")
    assert not rough.ok and "loss-surface" in rough.line()
    assert rough.evidence["roughness"]["gradient"] > 3 * rough.evidence["limit"]


def test_transfer_flags_a_masked_model_from_its_unmasked_surrogate_and_skips_without():
    model, _, _ = trained_mlp(5, 40)
    masked = QuantisedScaled(model)
    x, y = _labelled(masked)
    report = lpbench.check(masked, x, y, 0.1, iters=20, queries=50, surrogate=model)
    transfer = _finding(report, "transfer")
    assert not transfer.ok and not transfer.evidence["skipped"]
    assert transfer.evidence["transfer_only"] > 0.3
    assert transfer.evidence["points_tried"] == round(40 * report.accuracy["white-box"])
    assert report.cost["transfer"]["gradients"] > 0

    alone = _finding(lpbench.check(masked, x, y, 0.1, iters=20, queries=50), "transfer")
    assert alone.ok and alone.evidence == {"skipped": True}
    assert alone.message.startswith("skipped") and "surrogate" in alone.message


def test_convergence_compares_doubled_iterations_and_restarts():
    model, _, _ = trained_mlp(5, 40)
    x, y = _labelled(model)
    report = lpbench.check(model, x, y, 0.05, iters=10, restarts=2, queries=50)
    conv = _finding(report, "convergence")
    ev = conv.evidence
    assert (ev["iters"], ev["restarts"]) == (10, 2)
    assert ev["apgd_ce"] == report.accuracy["apgd-ce"]
    # keyed restarts: the first two of the four are the probe's own, so four never do worse
    assert ev["pgd_2x_restarts"] <= ev["pgd"]
    assert ev["largest_drop"] == max(
        ev["apgd_ce"] - ev["apgd_ce_2x_iters"], ev["pgd"] - ev["pgd_2x_restarts"]
    )
    assert (
        report.cost["restarts"]["gradients"] == 40 * 4 * 40
    )  # 4 restarts of PGD-40, no early stop


def test_a_deterministic_model_gets_no_eot():
    model, _, _ = trained_mlp(5, 20)
    x, y = _labelled(model, 20)
    report = lpbench.check(model, x, y, 0.05, iters=10, queries=50)
    rand = _finding(report, "randomness")
    assert rand.ok and rand.evidence == {"randomised": False, "eot_iter": 1, "reevals": 1}
    assert report.cost["baseline"]["gradients"] <= 20 * 40


def test_a_randomised_model_is_attacked_with_eot_and_re_evaluated():
    noisy = Noisy(unbreakable(5), 0.1, on="logits")  # random, but never misclassified
    _, x, _ = trained_mlp(5, 6)
    y = torch.zeros(6, dtype=torch.long)
    report = lpbench.check(noisy, x, y, 0.1, iters=10, queries=50, eot_iter=3, reevals=4)
    rand = _finding(report, "randomness")
    assert rand.ok and rand.evidence["randomised"]
    assert (rand.evidence["eot_iter"], rand.evidence["reevals"]) == (3, 4)
    assert rand.evidence["flips"]["apgd-ce"] == 0.0
    # every point survives every step: each step costs eot_iter gradients per point
    assert report.cost["apgd-ce"]["gradients"] == 6 * (10 + 1) * 3
    assert report.cost["baseline"]["gradients"] == 6 * 40 * 3
    assert report.cost["fgsm"]["gradients"] == 6 * 3
    # the final examples are re-evaluated 4 times: 6 x 4 more forward passes than the attack
    assert report.cost["square"]["forwards"] - report.cost["square"]["queries"] >= 6 * 4

    model, _, _ = trained_mlp(5, 40)
    shaky = Noisy(model, 0.05)
    x, y = _labelled(model)
    report = lpbench.check(shaky, x, y, 0.05, iters=10, queries=50, eot_iter=2, reevals=10)
    rand = _finding(report, "randomness")
    assert rand.evidence["randomised"] and rand.evidence["flips"]["apgd-ce"] > 0.1
    assert not rand.ok and "flip" in rand.message
    assert "try --preset aa-rand" in report.verdict  # the presets that take a noisy model


def test_on_a_randomised_model_a_point_is_broken_only_if_misclassified_every_time():
    model = coin_flip()  # class 0 or 1, a coin flip per call
    _, x, _ = trained_mlp(5, 40)
    y = torch.zeros(40, dtype=torch.long)
    report = lpbench.check(model, x, y, 0.1, iters=5, restarts=1, queries=20, reevals=10)
    assert 5 <= report.correct <= 35
    # misclassified half the time: wrong in all 10 evaluations only by rare luck
    assert report.accuracy["apgd-ce"] >= 0.8 and report.accuracy["baseline"] >= 0.8
    rand = _finding(report, "randomness")
    assert not rand.ok and rand.evidence["flips"]["apgd-ce"] >= 0.8
