"""The evaluation core: invariance, journal and resume, model contract and mode, any model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lpbench.attacks import APGD, PGD, Attack, AttackResult, Cost, Square
from lpbench.attacks.smooth import ReLUFacts
from lpbench.data import DATASETS
from lpbench.evaluation import (
    AUTO_CONTAINS_AA_BUDGET,
    AttackRequest,
    CustomPGD,
    LogitsOf,
    ModelContractError,
    ModelFacts,
    NamedAttack,
    auto_schedule,
    benchmark,
    check_model_contract,
    custom_pgd,
    evaluate,
    evaluate_model,
    prepared,
    preset_attacks,
    resolve_attacks,
)
from tests.attack_models import trained_mlp
from tests.support import BatchNormNet, TinyNet

EPS = 0.1


def _labelled(model: nn.Module, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points and the model's own labels, a few flipped to be clean errors."""
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 4
    return x, y


def _small_strong() -> list[NamedAttack]:
    return [
        NamedAttack("baseline", PGD(EPS, EPS / 10, 6, score="last", stream="baseline")),
        NamedAttack("many", PGD(EPS, EPS / 4, 8, restarts=3, stream="many")),
        NamedAttack("dlr", PGD(EPS, EPS / 4, 8, restarts=2, loss="dlr", stream="dlr")),
    ]


def _same(a, b) -> None:
    assert a.robust == b.robust
    assert a.broken_by == b.broken_by
    assert a.clean_pred == b.clean_pred
    assert torch.equal(a.x_adv, b.x_adv)
    for ra, rb in zip(a.restart_records, b.restart_records, strict=True):
        assert ra.keys() == rb.keys()
        for label in ra:
            for key in ("restart_loss", "loss"):
                va, vb = ra[label][key], rb[label][key]
                if isinstance(va, list):
                    assert [v is None for v in va] == [v is None for v in vb]
                    assert [v for v in va if v is not None] == pytest.approx(
                        [v for v in vb if v is not None], abs=1e-6
                    )
                else:
                    assert va == pytest.approx(vb, abs=1e-6)
            assert ra[label]["restart_success"] == rb[label]["restart_success"]


def test_verdicts_do_not_depend_on_batch_size() -> None:
    model = TinyNet(seed=3).eval()
    x, y = _labelled(model, 30)
    results = [
        evaluate(
            model,
            x,
            y,
            _small_strong(),
            indices=list(range(1000, 1030)),
            batch_size=batch,
            show_progress=False,
        )
        for batch in (7, 256, 10_000)
    ]
    assert 0 < results[0].robust_accuracy < results[0].clean_accuracy
    assert {b for b in results[0].broken_by if b} >= {"clean", "baseline"}
    for other in results[1:]:
        _same(results[0], other)


@pytest.mark.parametrize("preset", ["strong", "strong-pgd", "aa-standard", "auto"])
def test_attacks_of_a_preset_draw_from_their_own_streams(preset: str) -> None:
    attacks = preset_attacks(preset, "mnist", seed=0)
    # one key per stream (auto's two FAB-T parts share aa-standard's FAB-T stream)
    assert len({a.attack.key for a in attacks}) == len({a.attack.stream for a in attacks})
    again = preset_attacks(preset, "mnist", seed=1)
    assert attacks[1].attack.key != again[1].attack.key


def test_presets_are_data_in_units_of_eps() -> None:
    baseline = preset_attacks("baseline", "mnist")[0].attack
    assert baseline.config()["score"] == "last" and baseline.iters == 40
    assert baseline.step == pytest.approx(0.01)
    assert preset_attacks("baseline", "mnist", eps=0.15)[0].attack.step == pytest.approx(0.005)
    strong = preset_attacks("strong-pgd", "fashion-mnist")
    assert [a.attack.config()["score"] for a in strong] == ["last", "any", "any", "any"]


def test_strong_is_the_baseline_then_auto_and_strong_pgd_the_pgd_set() -> None:
    strong = preset_attacks("strong", "mnist")
    auto = auto_schedule(0.3, budget=AUTO_CONTAINS_AA_BUDGET).attacks
    assert [a.label for a in strong] == ["baseline", *(a.label for a in auto)]
    pgd = [a.label for a in preset_attacks("strong-pgd", "mnist")]
    assert pgd == ["baseline", "pgd-ce-large-step", "pgd-ce-small-step", "pgd-dlr"]
    tiny = preset_attacks("baseline", "tiny-imagenet")[0].attack
    assert tiny.target_mode == "ll" and tiny.eps == pytest.approx(16 / 255)


def test_resume_finishes_with_the_same_results(tmp_path) -> None:
    model = TinyNet(seed=3).eval()
    x, y = _labelled(model, 30)
    journal = tmp_path / "res.journal"
    kwargs = {"batch_size": 3, "show_progress": False, "manifest": {"seed": 0}}
    whole = evaluate(model, x, y, _small_strong(), **kwargs)
    first = evaluate(model, x, y, _small_strong(), journal=journal, **kwargs)
    _same(whole, first)
    parts = sorted(journal.glob("s*.safetensors"))
    assert len(parts) > 6
    for part in parts[len(parts) // 2 :]:  # as if killed half-way through
        part.unlink()
    with pytest.raises(FileExistsError, match="resume"):
        evaluate(model, x, y, _small_strong(), journal=journal, **kwargs)
    resumed = evaluate(
        model, x, y, _small_strong(), journal=journal, resume=True, **{**kwargs, "batch_size": 16}
    )
    _same(whole, resumed)
    assert resumed.attacks[1].points_attacked == whole.attacks[1].points_attacked
    with pytest.raises(ValueError, match="seed"):
        evaluate(
            model,
            x,
            y,
            _small_strong(),
            journal=journal,
            resume=True,
            batch_size=3,
            show_progress=False,
            manifest={"seed": 1},
        )


def test_a_journal_resumes_on_another_machine(tmp_path) -> None:
    """The machine (CPU model and capability, GPU) may change on resume, as the device may;
    a journal written before the manifest recorded it resumes too."""
    model = TinyNet(seed=3).eval()
    x, y = _labelled(model, 12)
    journal = tmp_path / "res.journal"
    kwargs = {"batch_size": 3, "show_progress": False, "journal": journal}
    here = {"seed": 0, "machine": {"cpu": "here", "cpu_capability": "AVX512"}}
    whole = evaluate(model, x, y, _small_strong(), manifest=here, **kwargs)
    parts = sorted(journal.glob("s*.safetensors"))
    for part in parts[len(parts) // 2 :]:
        part.unlink()
    there = {"seed": 0, "machine": {"cpu": "there", "cpu_capability": "AVX2"}}
    resumed = evaluate(model, x, y, _small_strong(), manifest=there, resume=True, **kwargs)
    _same(whole, resumed)
    older = {"seed": 0}  # written before the manifest had a machine
    again = evaluate(model, x, y, _small_strong(), manifest=older, resume=True, **kwargs)
    _same(whole, again)


def test_evaluate_restores_mode_and_leaves_batchnorm_alone() -> None:
    model = BatchNormNet()
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    model.train()
    for _ in range(3):  # give BatchNorm non-trivial running statistics
        model(x)
    model.eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    reference = evaluate(model, x, y, _small_strong(), show_progress=False)
    model.train()
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    again = evaluate(model, x, y, _small_strong(), show_progress=False)
    assert model.training
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items())
    _same(reference, again)


def test_evaluate_model_on_a_users_module() -> None:
    """The README's example: any nn.Module with BatchNorm, straight from tensors."""
    model = BatchNormNet().eval()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)
    result = evaluate_model(model, x, y, eps=EPS, preset="baseline", show_progress=False)
    assert result.clean_accuracy == 1.0
    assert result.meta["manifest"]["weights_sha256"]
    assert result.meta["manifest"]["batch_size"] == 256
    assert result.meta["manifest"]["tf32"] is None  # recorded on CUDA only
    assert result.meta["score"] == {"baseline": "last"}
    with pytest.raises(ValueError, match="eps"):
        evaluate_model(model, x, y, eps=0.0)


def test_benchmark_refuses_attacks_with_another_eps() -> None:
    model = TinyNet().eval()
    x, y = _labelled(model, 6)
    attacks = [NamedAttack("pgd", PGD(0.1, 0.01, 2))]
    with pytest.raises(ValueError, match=r"eps 0\.2"):
        benchmark(model, (x, y), attacks=attacks, eps=0.2, show_progress=False)


class Softmaxed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = TinyNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).softmax(1)


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = TinyNet()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x), x.mean()


class Noisy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = TinyNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x + 0.1 * torch.randn_like(x))


class BatchCoupled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = TinyNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - x.mean(0, keepdim=True))


@pytest.mark.parametrize(
    "model,match",
    [
        (Softmaxed(), "probabilities"),
        (TupleOut(), "LogitsOf"),
        (Noisy(), "randomised"),
        (BatchCoupled(), "batch"),
    ],
)
def test_model_contract_is_checked_before_any_attack(model: nn.Module, match: str) -> None:
    x = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(10, dtype=torch.long)
    with pytest.raises(ModelContractError, match=match):
        check_model_contract(model.eval(), x, y)
    with pytest.raises(ModelContractError, match=match):
        evaluate(model.eval(), x, y, _small_strong(), show_progress=False)


def test_contract_inputs_labels_and_adapter() -> None:
    x = torch.rand(6, 1, 8, 8)
    with pytest.raises(ValueError, match="normalisation"):
        check_model_contract(TinyNet().eval(), x * 2 - 1, torch.zeros(6, dtype=torch.long))
    with pytest.raises(ModelContractError, match="4 classes"):
        check_model_contract(TinyNet().eval(), x, torch.full((6,), 7))
    assert check_model_contract(LogitsOf(TupleOut(), 0).eval(), x, torch.zeros(6).long()) == 4


def test_empty_one_point_and_all_misclassified_inputs() -> None:
    model = TinyNet().eval()
    with pytest.raises(ValueError, match="no points: the inputs hold 0 images"):
        evaluate(
            model,
            torch.zeros(0, 1, 8, 8),
            torch.zeros(0, dtype=torch.long),
            _small_strong(),
            show_progress=False,
        )
    x, y = _labelled(model, 5)
    one = evaluate(model, x[2:3], y[2:3], _small_strong(), show_progress=False)
    assert one.num_points == 1 and one.clean_accuracy == 1.0
    wrong = evaluate(model, x[:2], y[:2], _small_strong(), show_progress=False)
    assert wrong.clean_accuracy == 0.0 and wrong.robust_accuracy == 0.0
    assert wrong.broken_by == ["clean", "clean"]
    assert all(a.points_attacked == 0 and a.gradients == 0 for a in wrong.attacks)


class _Leaves(Attack):
    """Breaks nothing: leaves each point at ``x + shift`` with margin ``margins[index]``;
    records the starting points it was given."""

    takes_start = True

    def __init__(self, shift: float, margins: torch.Tensor) -> None:
        super().__init__(EPS, stream=f"leaves{shift}")
        self.shift, self.margins, self.starts = shift, margins, {}

    def perturb(self, model, x, y, index, target, x_init=None) -> AttackResult:
        if x_init is not None:
            self.starts |= dict(zip(index.tolist(), x_init, strict=True))
        m = self.margins[index]
        x_adv = (x + self.shift).clamp(0, 1)
        return AttackResult(x_adv, torch.zeros_like(y, dtype=torch.bool), m, m, Cost())

    def config(self) -> dict:
        return self.base_config()


def test_a_warm_started_attack_starts_from_the_nearest_miss_so_far(tmp_path) -> None:
    model = TinyNet(seed=3).eval()
    x, y = _labelled(model, 12)
    odd = torch.arange(12) % 2 == 1

    def attacks() -> list[NamedAttack]:
        return [
            NamedAttack("up", _Leaves(0.05, torch.full((12,), -1.0))),
            NamedAttack("down", _Leaves(-0.05, torch.where(odd, -2.0, -0.5))),
            NamedAttack("warm", _Leaves(0.0, torch.full((12,), -3.0)), warm_start=True),
        ]

    kwargs = {"batch_size": 2, "show_progress": False, "manifest": {"seed": 0}}
    first = attacks()
    result = evaluate(model, x, y, first, journal=tmp_path / "j", **kwargs)
    expected = torch.where(odd[:, None, None, None], x + 0.05, x - 0.05).clamp(0, 1)
    starts = first[2].attack.starts
    assert sorted(starts) == list(range(2, 12))  # the two clean errors are not attacked
    for i, start in starts.items():
        assert torch.equal(start, expected[i])
    assert result.attacks[2].config["warm_start"] and "warm_start" not in result.attacks[1].config
    # resumed after the warm attack was lost: the starts come back from the journal
    for part in (tmp_path / "j").glob("s003-*.safetensors"):
        part.unlink()
    again = attacks()
    evaluate(model, x, y, again, journal=tmp_path / "j", resume=True, **kwargs)
    assert again[0].attack.starts == {} and sorted(again[2].attack.starts) == sorted(starts)
    for i, start in again[2].attack.starts.items():
        assert torch.equal(start, expected[i])
    with pytest.raises(ValueError, match="warm-started"):
        NamedAttack("apgd", APGD(EPS), warm_start=True)


def test_warm_started_results_do_not_depend_on_batch_size() -> None:
    model, x, y = trained_mlp(n=40)

    def attacks() -> list[NamedAttack]:
        return [
            NamedAttack("apgd", APGD(0.04, iters=1)),
            NamedAttack("warm", Square(0.04, queries=100, stream="warm"), warm_start=True),
        ]

    small = evaluate(model, x, y, attacks(), batch_size=3, show_progress=False)
    large = evaluate(model, x, y, attacks(), batch_size=64, show_progress=False)
    # verdicts and examples exactly (losses near 7 may differ in float32's last bit)
    assert small.robust == large.robust and small.broken_by == large.broken_by
    assert torch.equal(small.x_adv, large.x_adv)
    warm = small.attacks[1]
    assert warm.points_attacked > 0 and warm.points_broken > 0


def test_the_final_recheck_counts_examples_that_no_longer_hold_as_robust(tmp_path) -> None:
    """A journal resumed against other weights: every stored example is re-run at the end,
    and those the model now classifies correctly count as robust and are reported."""
    model = TinyNet(seed=1).eval()
    x, y = _labelled(model, 16)
    kwargs = {"batch_size": 8, "show_progress": False, "manifest": {"seed": 0}}
    first = evaluate(model, x, y, _small_strong(), journal=tmp_path / "j", **kwargs)
    broken = [i for i, b in enumerate(first.broken_by) if b not in (None, "clean")]
    assert broken and first.verification_mismatches == []

    class Nearest(nn.Module):
        """The model's clean logits of the nearest of ``x``: no example in a ball fools it."""

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            nearest = torch.cdist(inputs.flatten(1), x.flatten(1)).argmin(1)
            return model(x[nearest])

    journal = {"journal": tmp_path / "j", "resume": True}
    again = evaluate(Nearest(), x, y, _small_strong(), **journal, **kwargs)
    assert again.clean_pred == first.clean_pred  # the journal's clean stage, consistent
    assert all(again.robust[i] and again.broken_by[i] is None for i in broken)
    assert again.verification_mismatches == broken
    assert again.robust_accuracy == again.clean_accuracy
    assert again.to_dict()["verification"]["mismatches"] == len(broken)
    labels = {first.broken_by[i] for i in broken}
    assert sum(a.verification_mismatches for a in again.attacks) == 0  # not seen in the blocks
    assert labels <= {a.label for a in again.attacks}


def _linear3() -> nn.Module:
    """Three classes and no ReLU: ``auto`` drops APGD-T and its smoothed runs."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()


def test_preflight_establishes_the_facts_once(monkeypatch) -> None:
    import lpbench.evaluation.preflight as module

    calls = {"model_facts": 0, "relu_facts": 0}

    def counted(name, real):
        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return call

    for name in calls:
        monkeypatch.setattr(module, name, counted(name, getattr(module, name)))
    model = TinyNet(seed=2).train()
    x, y = _labelled(model, 12)
    result = evaluate_model(
        model, x, y, eps=EPS, preset="auto", adapt=True, budget=1000, show_progress=False
    )
    assert calls == {"model_facts": 1, "relu_facts": 1}  # not again in check or evaluate
    assert "check" in result.meta["schedule"] and model.training  # mode restored
    with prepared(_linear3(), x, y % 3, torch.device("cpu")) as facts:
        assert facts == ModelFacts(torch.device("cpu"), 3, False, ReLUFacts())
    refused = pytest.raises(ModelContractError, match="probabilities")
    with refused, prepared(Softmaxed(), x, y, torch.device("cpu")):
        pass


def test_resolver_decides_preset_eps_and_budget_in_one_place() -> None:
    for flag in ({"budget": 100}, {"exhaustive": True}, {"adapt": True}):
        for preset in ("strong", "baseline", "aa-standard"):
            with pytest.raises(ValueError, match="applies to the auto preset only"):
                resolve_attacks(AttackRequest(preset, "mnist", **flag))
        with pytest.raises(ValueError, match="applies to the auto preset only"):
            resolve_attacks(AttackRequest(None, "mnist", custom=CustomPGD(), **flag))
    with pytest.raises(ValueError, match=r"either a preset .* or custom PGD settings, not both"):
        resolve_attacks(AttackRequest("baseline", "mnist", custom=CustomPGD(iters=3)))
    with pytest.raises(ValueError, match="give eps"):
        resolve_attacks(AttackRequest("baseline", None))
    with pytest.raises(ValueError, match="unknown attack preset"):
        resolve_attacks(AttackRequest("nope", "mnist"))
    assert (
        resolve_attacks(AttackRequest("baseline", "fashion-mnist")).eps
        == DATASETS["fashion-mnist"].eps
    )
    default = resolve_attacks(AttackRequest(None, "mnist"))
    assert default.preset == "strong" and default.eps == 0.3
    assert default.budget == AUTO_CONTAINS_AA_BUDGET and default.schedule is not None
    request = AttackRequest(None, "cifar10", custom=CustomPGD(step="eps/8", iters=7))
    custom = resolve_attacks(request, seed=3)
    assert custom.preset == "custom" and custom.schedule is None and custom.budget is None
    (pgd,) = custom.attacks
    expected = custom_pgd(16 / 255, step="eps/8", iters=7, seed=3)
    assert pgd.label == "pgd" and pgd.config() == expected.config()


def test_preset_attacks_are_what_benchmark_runs_for_the_same_facts() -> None:
    model = _linear3()
    x = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y = model(x).argmax(1)
    facts = ModelFacts(torch.device("cpu"), 3, False)
    for preset, budget in (("auto", 1500), ("strong", None)):
        result = evaluate_model(
            model, x, y, eps=EPS, preset=preset, budget=budget, show_progress=False
        )
        ran = result.meta["manifest"]["attacks"]
        listed = preset_attacks(preset, None, EPS, budget=budget, facts=facts)
        assert ran == [{"label": a.label, **a.config()} for a in listed]
        blind = preset_attacks(preset, None, EPS, budget=budget)  # 10 classes and ReLUs assumed
        assert [a.label for a in blind] != [a.label for a in listed]


def test_gradients_are_counted_and_grad_evals_is_deprecated(tmp_path) -> None:
    model = TinyNet().eval()
    x, y = _labelled(model, 6)
    result = evaluate(model, x, y, _small_strong(), show_progress=False)
    assert result.gradients == sum(a.gradients for a in result.attacks) > 0
    with pytest.warns(DeprecationWarning, match="gradients"):
        assert result.grad_evals == result.gradients
    with pytest.warns(DeprecationWarning, match="gradients"):
        assert result.attacks[0].grad_evals == result.attacks[0].gradients
    data = result.to_dict()  # results files keep the key every earlier file has
    assert data["grad_evals"] == result.gradients and "gradients" not in data
    assert [a["grad_evals"] for a in data["attacks"]] == [a.gradients for a in result.attacks]
    assert all("gradients" not in a for a in data["attacks"])
