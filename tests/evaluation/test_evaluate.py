"""Evaluation: worst case over attacks and restarts, verification, records."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lpbench.attacks import PGD
from lpbench.evaluation import (
    NamedAttack,
    VerificationError,
    evaluate,
    evaluate_model,
    load_adversarial,
    preset_attacks,
    verify_adversarial,
)
from tests.support import TinyNet


def _points(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs with TinyNet's own labels (attacks start from correct points), except that
    the first quarter are flipped into clean errors."""
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = TinyNet()(x).argmax(1)
    y[: n // 4] = (y[: n // 4] + 1) % 4
    return x, y


def test_robust_means_survives_every_attack_and_restart(tiny_net: nn.Module) -> None:
    x, y = _points()
    weak = NamedAttack("weak", PGD(0.05, 0.01, 2, restarts=1, seed=1))
    strong = NamedAttack("strong", PGD(0.05, 0.02, 20, restarts=4, seed=2))
    result = evaluate(tiny_net, x, y, [weak, strong], show_progress=False)
    with torch.no_grad():
        clean_ok = tiny_net(x).argmax(1) == y
    alone = {
        label: PGD(0.05, s, it, restarts=r, seed=sd)(tiny_net, x, y).success
        for label, s, it, r, sd in (("weak", 0.01, 2, 1, 1), ("strong", 0.02, 20, 4, 2))
    }
    # attacks run on still-robust points only, so "strong" verdicts on points "weak"
    # already broke are not needed: robust = clean-correct and survived both
    expected = clean_ok & ~alone["weak"] & ~alone["strong"]
    assert result.robust == expected.tolist()
    assert result.robust_accuracy == pytest.approx(expected.float().mean().item())
    assert result.clean_accuracy == pytest.approx(clean_ok.float().mean().item())
    summaries = {s.label: s for s in result.attacks}
    assert summaries["weak"].points_attacked == int(clean_ok.sum())
    assert summaries["strong"].points_attacked == int((clean_ok & ~alone["weak"]).sum())
    assert summaries["strong"].robust_accuracy_after == result.robust_accuracy
    assert result.gradients == summaries["weak"].gradients + summaries["strong"].gradients
    for point, broken_by in enumerate(result.broken_by):
        if not clean_ok[point]:
            assert broken_by == "clean"
        elif alone["weak"][point]:
            assert broken_by == "weak"


def test_mean_over_restarts_needs_all_restarts(tiny_net: nn.Module) -> None:
    x, y = _points()
    full = evaluate(
        tiny_net,
        x,
        y,
        [NamedAttack("pgd", PGD(0.05, 0.01, 5, restarts=4, early_stop=False))],
        show_progress=False,
    )
    per_point = []
    for robust_clean, rec in zip(
        torch.tensor(full.clean_pred) == y, full.restart_records, strict=True
    ):
        if not robust_clean:
            per_point.append(0.0)
        else:
            hits = rec["pgd"]["restart_success"]
            per_point.append(1 - sum(hits) / len(hits))
    mean = full.attacks[0].mean_over_restarts_accuracy
    assert mean == pytest.approx(sum(per_point) / len(per_point))
    assert mean >= full.robust_accuracy
    early = evaluate(
        tiny_net, x, y, [NamedAttack("pgd", PGD(0.05, 0.01, 5, restarts=4))], show_progress=False
    )
    assert early.attacks[0].mean_over_restarts_accuracy is None
    assert early.robust == full.robust


def test_results_round_trip_and_stored_examples_recheck(tiny_net: nn.Module, tmp_path) -> None:
    x, y = _points()
    result = evaluate(
        tiny_net,
        x,
        y,
        preset_attacks("strong-pgd", "fashion-mnist", 0.1),
        indices=list(range(100, 140)),
        show_progress=False,
    )
    path = result.save(tmp_path / "results.json")
    data = json.loads(path.read_text())
    assert data["robust_accuracy"] == result.robust_accuracy
    assert [p["index"] for p in data["points"]] == list(range(100, 140))
    assert data["attacks"][0]["label"] == "baseline"
    indices, x_adv = load_adversarial(tmp_path / data["adversarial_examples"])
    assert len(indices) == sum(not p["robust"] for p in data["points"])
    local = indices - 100
    assert verify_adversarial(tiny_net, x[local], x_adv, y[local], 0.1) == len(indices)


def test_verification_catches_a_lying_attack(tiny_net: nn.Module) -> None:
    x, y = _points(10)
    with pytest.raises(VerificationError, match="eps-ball"):
        verify_adversarial(tiny_net, x, (x + 0.5).clamp(0, 1), y, 0.1)
    with torch.no_grad():
        pred = tiny_net(x).argmax(1)
    with pytest.raises(VerificationError, match="classified correctly"):
        verify_adversarial(tiny_net, x, x, pred, 0.1)


class GradModeDependent(nn.Module):
    """Says class 0 whenever gradients are off: attack claims will not survive a re-check."""

    def __init__(self) -> None:
        super().__init__()
        self.net = TinyNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        if torch.is_grad_enabled():
            return logits
        return 5 * nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 4).float()


def test_failed_rechecks_count_as_robust_and_are_reported() -> None:
    """A claim that does not survive the re-check never aborts the run: the point is robust."""
    x, _ = _points(20)
    y = torch.zeros(20, dtype=torch.long)  # clean predictions (no grad) are all correct
    result = evaluate(
        GradModeDependent().eval(),
        x,
        y,
        [NamedAttack("pgd", PGD(0.3, 0.1, 20))],
        indices=list(range(300, 320)),
        show_progress=False,
    )
    assert result.robust_accuracy == 1.0
    assert len(result.verification_mismatches) > 0
    assert set(result.verification_mismatches) <= set(range(300, 320))
    assert result.attacks[0].verification_mismatches == len(result.verification_mismatches)
    data = result.to_dict()
    assert data["verification"]["mismatches"] == len(result.verification_mismatches)
    assert "all_misclassified_in_ball" not in data["verification"]


def test_bad_inputs_are_rejected(tiny_net: nn.Module) -> None:
    x, y = _points(4)
    attack = [NamedAttack("pgd", PGD(0.1, 0.01, 1))]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate(tiny_net, x * 3, y, attack, show_progress=False)
    with pytest.raises(ValueError, match="labels"):
        evaluate(tiny_net, x, y[:2], attack, show_progress=False)
    with pytest.raises(ValueError, match="distinct"):
        evaluate(tiny_net, x, y, attack * 2, show_progress=False)
    with pytest.raises(ValueError, match="preset"):
        preset_attacks("nope", "mnist")
    with pytest.raises(ValueError, match="data set"):
        preset_attacks("baseline", "imagenet-9000")


def test_tensors_named_with_their_data_set_get_its_baseline(tiny_net: nn.Module) -> None:
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        y = tiny_net(x).argmax(1)
    named = evaluate_model(
        tiny_net, x, y, eps=0.3, preset="baseline", dataset="mnist-digits", show_progress=False
    )
    generic = evaluate_model(tiny_net, x, y, eps=0.3, preset="baseline", show_progress=False)
    assert named.attacks[0].config["step"] == pytest.approx(0.3 / 30)  # the digits' baseline
    assert generic.attacks[0].config["step"] == pytest.approx(0.3 / 10)
    assert named.meta["dataset"] == "mnist-digits" and generic.meta["dataset"] is None
