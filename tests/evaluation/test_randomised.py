"""Randomised models: refused without EOT, evaluated with it (aa-rand, baseline, custom PGD),
re-checked over several draws, reproducible through keyed noise."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import lpbench
from lpbench.attacks import APGD
from lpbench.evaluation import CustomPGD, ModelContractError, NamedAttack, evaluate
from lpbench.evaluation.preflight import prepared
from lpbench.evaluation.verify import RANDOMISED_RECHECKS
from lpbench.models.maskers import add_masker
from tests.attack_models import Noisy, coin_flip, trained_mlp


def _noisy_mlp(sigma: float = 0.03) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The undefended MLP behind input noise, on points every one of 20 draws classifies
    correctly (so each attacked point starts correctly classified)."""
    model, x, y = trained_mlp(5, 60)
    noisy = Noisy(model, sigma)
    torch.manual_seed(0)
    with torch.no_grad():
        keep = torch.stack([noisy(x).argmax(1) == y for _ in range(20)]).all(0)
    assert keep.sum() >= 30
    return noisy, x[keep][:30], y[keep][:30]


def test_a_randomised_model_is_refused_without_eot_and_the_error_names_the_fix() -> None:
    noisy, x, y = _noisy_mlp()
    with pytest.raises(ModelContractError, match="randomised") as error:
        lpbench.evaluate_model(noisy, x, y, eps=0.1, show_progress=False)
    assert "eot_iter" in str(error.value) and "aa-rand" in str(error.value)


@pytest.mark.parametrize("preset", ["strong", "auto", "aa-standard", "strong-pgd"])
def test_eot_is_refused_by_presets_that_decide_on_single_passes(preset: str) -> None:
    noisy, x, y = _noisy_mlp()
    with pytest.raises(ValueError, match=f"not '{preset}'"):
        lpbench.evaluate_model(noisy, x, y, eps=0.1, preset=preset, eot_iter=4)


def test_eot_on_a_deterministic_model_is_refused() -> None:
    model, x, y = trained_mlp(5, 20)
    with pytest.raises(ValueError, match="deterministic"):
        lpbench.evaluate_model(model, x, y, eps=0.1, eot_iter=4, show_progress=False)
    with pytest.raises(ValueError, match="integer >= 1"):
        lpbench.evaluate_model(model, x, y, eps=0.1, eot_iter=0, show_progress=False)


def test_aa_rand_breaks_a_noisy_undefended_model_and_repeats_exactly() -> None:
    noisy, x, y = _noisy_mlp()
    first = lpbench.evaluate_model(noisy, x, y, eps=0.1, eot_iter=5, show_progress=False)
    assert first.meta["preset"] == "aa-rand"  # what eot_iter runs when no preset is named
    assert [a.label for a in first.attacks] == ["apgd-ce", "apgd-dlr"]
    assert all(a.config["eot_iter"] == 5 for a in first.attacks)
    assert first.meta["randomised"]["rechecks"] == RANDOMISED_RECHECKS
    assert first.clean_accuracy == 1.0 and first.robust_accuracy <= 0.2
    broken = sum(1 for b in first.broken_by if b not in (None, "clean"))
    assert first.forwards_outside_attacks["final_check"] == broken * RANDOMISED_RECHECKS
    torch.manual_seed(123)  # the caller's generator state does not enter the result
    again = lpbench.evaluate_model(noisy, x, y, eps=0.1, eot_iter=5, show_progress=False)
    assert again.robust == first.robust and torch.equal(again.x_adv, first.x_adv)
    # every stored example is misclassified by fresh draws too (not one lucky draw)
    hit = torch.tensor([b not in (None, "clean") for b in first.broken_by])
    with torch.no_grad():
        wrong = torch.stack([noisy(first.x_adv[hit]).argmax(1) != y[hit] for _ in range(20)])
    assert wrong.float().mean() >= 0.95


def test_noise_alone_never_counts_as_a_break() -> None:
    """A coin-flip model (class 0 or 1 at random): an attack 'succeeds' on many points in
    some draw, but a stored example counts only if all re-check draws misclassify it."""
    model = coin_flip()  # class 0 or 1, a coin flip per call
    _, x, _ = trained_mlp(5, 40)
    y = torch.zeros(40, dtype=torch.long)
    out = lpbench.evaluate_model(model, x, y, eps=0.1, preset="aa-rand", show_progress=False)
    assert 0.1 <= out.clean_accuracy <= 0.9
    assert out.robust_accuracy == out.clean_accuracy  # no point broken by the attacks
    assert out.verification_mismatches  # claimed successes that the re-checks refused


def test_baseline_and_custom_pgd_take_eot() -> None:
    noisy, x, y = _noisy_mlp()
    base = lpbench.evaluate_model(
        noisy, x, y, eps=0.1, preset="baseline", eot_iter=3, show_progress=False
    )
    assert base.attacks[0].config["eot_iter"] == 3
    assert base.attacks[0].gradients % 3 == 0
    custom = lpbench.evaluate_model(
        noisy,
        x,
        y,
        eps=0.1,
        custom=CustomPGD(iters=10),
        eot_iter=2,
        show_progress=False,
    )
    assert custom.attacks[0].config["eot_iter"] == 2 and custom.attacks[0].gradients % 2 == 0
    assert custom.robust_accuracy < 0.9


def test_input_noise_masker_makes_a_registered_model_randomised() -> None:
    shared, x, _ = trained_mlp(5, 8)
    model = copy.deepcopy(shared)  # the hook must not reach the shared test model
    with torch.no_grad():
        before = model(x)
        add_masker(model, input_noise=0.05)
        assert not torch.allclose(model(x), model(x))
        assert (model(x).argmax(1) == before.argmax(1)).float().mean() >= 0.75
    with pytest.raises(ValueError, match="positive"):
        add_masker(nn.Identity(), input_noise=0.0)


def test_a_killed_randomised_run_resumes_to_the_same_results(tmp_path) -> None:
    noisy, x, y = _noisy_mlp()
    attacks = [
        NamedAttack("apgd-ce", APGD(0.1, 9, eot_iter=3, stream="apgd-ce")),
        NamedAttack("apgd-dlr", APGD(0.1, 9, loss="dlr", eot_iter=3, stream="apgd-dlr")),
    ]
    manifest = {"seed": 0, "randomised": True, "batch_size": 2}
    options = {"batch_size": 2, "show_progress": False, "manifest": manifest}
    with prepared(noisy, x, y, torch.device("cpu"), randomised_ok=True) as facts:
        assert facts.randomised
        whole = evaluate(noisy, x, y, attacks, facts=facts, **options)
        journal = tmp_path / "run.journal"
        evaluate(noisy, x, y, attacks, facts=facts, journal=journal, **options)
        parts = sorted(journal.glob("s*.safetensors"))
        assert len(parts) > 3
        killed = parts[len(parts) // 2 :]  # as if killed half-way through an attack
        assert any(part.name.startswith("s001") for part in killed)
        for part in killed:
            part.unlink()
        resumed = evaluate(
            noisy, x, y, attacks, facts=facts, journal=journal, resume=True, **options
        )
        with pytest.raises(ValueError, match="batch_size"):  # other blocks, other noise
            evaluate(
                noisy,
                x,
                y,
                attacks,
                facts=facts,
                journal=journal,
                resume=True,
                **{**options, "batch_size": 3, "manifest": {**manifest, "batch_size": 3}},
            )
    assert resumed.robust == whole.robust and torch.equal(resumed.x_adv, whole.x_adv)
