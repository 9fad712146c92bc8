"""Presets beyond PGD (aa-standard, KindSpec) and the budgeted ``auto`` schedule."""

from __future__ import annotations

import sys

import pytest
import torch

from lpbench.attacks import APGD, APGDT, FAB, PGD, Square
from lpbench.evaluation import (
    PRESETS,
    PROTOCOLS,
    EvaluationResult,
    KindSpec,
    auto_schedule,
    evaluate_model,
    preset_attacks,
    raise_budgets,
)
from lpbench.evaluation.check import CheckReport, Finding
from lpbench.evaluation.schedule import (
    AA_STANDARD_BUDGET,
    AUTO_APGD_T_GIVE_UP,
    AUTO_CONTAINS_AA_BUDGET,
    AUTO_FGSM_STEPS,
    AUTO_GIVE_UP,
    AUTO_SMOOTH_BETAS,
    AUTO_SMOOTH_TARGETS,
    WARM_SQUARE_QUERIES,
)
from tests.attack_models import Quantised, Scaled, trained_mlp, unbreakable


@pytest.mark.parametrize("dataset", [*PROTOCOLS, None])
def test_aa_standard_has_autoattack_budgets_and_own_streams(dataset):
    attacks = preset_attacks("aa-standard", dataset, 0.1, seed=3)
    assert [a.label for a in attacks] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    ce, t, fab, square = (a.attack for a in attacks)
    assert type(ce) is APGD and ce.loss == "ce" and not ce.targeted
    assert (ce.iters, ce.restarts) == (100, 1)
    assert isinstance(t, APGDT) and t.loss == "dlr" and t.targeted
    assert (t.iters, t.restarts, t.targets) == (100, 1, 9)
    assert isinstance(fab, FAB) and (fab.iters, fab.restarts, fab.targets) == (100, 1, 9)
    assert isinstance(square, Square) and (square.queries, square.restarts) == (5000, 1)
    assert square.p_init == 0.8 and square.window_schedule == "fixed"
    assert square.config()["window_schedule"] == "fixed"
    assert [a.attack.stream for a in attacks] == [a.label for a in attacks]
    assert all(a.attack.seed == 3 and a.attack.eps == 0.1 for a in attacks)
    assert len({a.attack.key for a in attacks}) == 4


def test_kind_spec_reads_steps_in_units_of_eps():
    named = KindSpec.of("p", "pgd", step="eps/4", iters=7).build(0.2, seed=0, max_batch=8)
    assert isinstance(named.attack, PGD) and named.attack.step == pytest.approx(0.05)
    assert named.attack.stream == "p"
    with pytest.raises(ValueError, match="unknown attack kind"):
        KindSpec.of("x", "cw")


def test_presets_and_budget_errors():
    assert {"baseline", "strong", "strong-pgd", "aa-standard", "auto"} <= set(PRESETS)
    with pytest.raises(ValueError, match="auto preset only"):
        preset_attacks("strong", "mnist", budget=100)
    with pytest.raises(ValueError, match="too small"):
        auto_schedule(0.3, budget=sum(FIRST_CAPS))


LADDER = ["fgsm", "apgd-dlr-smooth3", "apgd-dlr", "apgd-ce", "apgd-t-smooth3"]
LADDER += ["apgd-dlr-smooth1", "fab-t", "apgd-t", "fab-t-more", "square"]
#: Per-point caps of the runs auto always runs whole: FGSM's six steps, APGD-DLR 50 steps
#: (smoothed and plain), APGD-CE 100, smoothed APGD-T 3 x 100, smoothed APGD-DLR 50.
FIRST_CAPS = [6, 51, 51, 101, 303, 51]


@pytest.mark.parametrize(
    ("budget", "labels"),
    [
        (8372, [*LADDER[:9], "square-warm", "square"]),
        (7372, LADDER),
        (2000, [*LADDER[:8], "square"]),  # APGD-T on 6 targets
        (1000, [*LADDER[:7], "square"]),  # FAB-T on 2 targets
        (700, [*LADDER[:6], "square"]),
        (564, [*LADDER[:6], "square"]),
    ],
)
def test_auto_caps_add_up_to_the_budget(budget, labels):
    schedule = auto_schedule(0.3, budget=budget)
    assert [a.label for a in schedule.attacks] == labels
    assert schedule.caps == [a.attack.max_spend_per_point() for a in schedule.attacks]
    assert sum(schedule.caps) == budget and schedule.shared == 0  # no sources: no universal
    assert schedule.caps[:6] == FIRST_CAPS
    assert schedule.caps[-1] >= min(500, (budget - sum(FIRST_CAPS)) // 2)  # Square's floor


def test_autos_smoothed_runs_are_apgd_through_the_smoothed_relu_on_their_own_streams():
    named = {a.label: a.attack for a in auto_schedule(0.3, budget=7372, seed=2).attacks}
    sharp, soft = AUTO_SMOOTH_BETAS
    assert named["apgd-dlr-smooth3"].smooth_relu == named["apgd-t-smooth3"].smooth_relu == sharp
    assert named["apgd-dlr-smooth1"].smooth_relu == soft
    assert named["apgd-t-smooth3"].targets == AUTO_SMOOTH_TARGETS
    for label, attack in named.items():
        smoothed = getattr(attack, "smooth_relu", None) is not None
        assert smoothed == ("smooth" in label) and (not smoothed or attack.stream == label)
    plain = auto_schedule(0.3, budget=2000, smooth=False)
    assert [a.label for a in plain.attacks] == [
        "fgsm",
        "apgd-dlr",
        "apgd-ce",
        "fab-t",
        "apgd-t",
        "fab-t-more",
        "square",
    ]


def test_auto_starts_with_universal_perturbations_when_it_has_sources():
    gen = torch.Generator().manual_seed(0)
    sources = (torch.rand(20, 1, 6, 6, generator=gen), torch.arange(20) % 4)
    schedule = auto_schedule(0.3, budget=2000, sources=sources)
    assert [a.label for a in schedule.attacks][:4] == ["universal", *LADDER[:3]]
    universal, fgsm = schedule.attacks[0], schedule.attacks[1]
    assert schedule.caps[:2] == [0, len(AUTO_FGSM_STEPS)] and sum(schedule.caps) == 2000
    assert schedule.shared == universal.attack.spend == 20 * 5
    assert fgsm.warm_start and not auto_schedule(0.3, budget=2000).attacks[0].warm_start
    assert fgsm.attack.sizes == pytest.approx([0.3 * s for s in AUTO_FGSM_STEPS])
    assert schedule.plan()["shared"] == 100


def test_exhaustive_auto_at_aa_standard_budget_runs_every_aa_standard_attack_in_full():
    """At AUTO_CONTAINS_AA_BUDGET, exhaustive auto holds each aa-standard attack with its
    settings, stream and target ranks (FAB-T's split 3 + 6), so it breaks every point
    aa-standard breaks; giving up differs from it in APGD-T's and Square's give_up only."""
    schedule = auto_schedule(0.3, budget=AUTO_CONTAINS_AA_BUDGET, seed=4, exhaustive=True)
    auto = {a.label: a.attack for a in schedule.attacks}
    giving_up = {
        a.label: a.attack
        for a in auto_schedule(0.3, budget=AUTO_CONTAINS_AA_BUDGET, seed=4).attacks
    }
    for label, rule in (("square", AUTO_GIVE_UP), ("apgd-t", AUTO_APGD_T_GIVE_UP)):
        assert giving_up[label].config() == auto[label].config() | {
            "give_up": [list(pair) for pair in rule]
        }
    assert giving_up["apgd-ce"].config() == auto["apgd-ce"].config()
    aa = {a.label: a.attack for a in preset_attacks("aa-standard", "mnist", 0.3, seed=4)}
    assert AA_STANDARD_BUDGET == sum(a.max_spend_per_point() for a in aa.values()) == 6910
    assert 6910 + len(AUTO_FGSM_STEPS) + 3 * 51 + 3 * 101 == AUTO_CONTAINS_AA_BUDGET == 7372
    for label in ("apgd-ce", "apgd-t", "square"):
        assert auto[label].config() == aa[label].config()
    fab, more = auto["fab-t"], auto["fab-t-more"]
    assert (fab.skip_targets, fab.targets) == (0, 3)
    assert (more.skip_targets, more.targets) == (3, 6)
    for part in (fab, more):
        assert part.key == aa["fab-t"].key
        assert {k: v for k, v in part.config().items() if k not in ("skip_targets", "targets")} == {
            k: v for k, v in aa["fab-t"].config().items() if k not in ("skip_targets", "targets")
        }


@pytest.fixture(scope="module")
def aa_standard_run() -> EvaluationResult:
    """aa-standard on a trained MLP's 40 points at eps 0.06 (run once for every budget)."""
    model, x, y = trained_mlp(10, 40)
    return evaluate_model(model, x, y, preset="aa-standard", eps=0.06, show_progress=False)


@pytest.mark.parametrize("budget", [AUTO_CONTAINS_AA_BUDGET, AUTO_CONTAINS_AA_BUDGET + 1000])
def test_exhaustive_auto_at_aa_standard_budget_or_more_leaves_no_point_aa_standard_breaks(
    budget, aa_standard_run
):
    model, x, y = trained_mlp(10, 40)
    kwargs = {"eps": 0.06, "show_progress": False}
    aa = aa_standard_run
    auto = evaluate_model(model, x, y, preset="auto", budget=budget, exhaustive=True, **kwargs)
    aa_robust = {i for i, robust in zip(aa.indices, aa.robust, strict=True) if robust}
    auto_robust = {i for i, robust in zip(auto.indices, auto.robust, strict=True) if robust}
    assert 0 < len(aa_robust) < len(x)
    assert auto_robust <= aa_robust


@pytest.mark.parametrize(
    ("budget", "warm", "cold"), [(7372, 0, 5000), (7872, 500, 5000), (9372, 1000, 6000)]
)
def test_auto_spends_queries_beyond_aa_standards_square_on_a_warm_start(budget, warm, cold):
    """Square's queries past aa-standard's 5,000 go first, up to WARM_SQUARE_QUERIES, to a
    Square started from each point's nearest miss, run before the one from stripes."""
    schedule = auto_schedule(0.3, budget=budget)
    named = {a.label: a for a in schedule.attacks}
    assert named["square"].attack.queries == cold and not named["square"].warm_start
    assert warm <= WARM_SQUARE_QUERIES
    if not warm:
        assert "square-warm" not in named
        return
    labels = [a.label for a in schedule.attacks]
    assert labels.index("square-warm") == labels.index("square") - 1
    first = named["square-warm"]
    assert first.warm_start and first.config()["warm_start"]
    assert first.attack.queries == warm and first.attack.window_schedule == "fixed"
    assert first.attack.give_up == AUTO_GIVE_UP
    assert first.attack.stream == "square-warm" and first.attack.key != named["square"].attack.key
    exhaustive = auto_schedule(0.3, budget=budget, exhaustive=True).attacks[-2]
    assert exhaustive.label == "square-warm" and exhaustive.attack.give_up == ()


@pytest.mark.parametrize(
    "budget", [700, 2000, AUTO_CONTAINS_AA_BUDGET, AUTO_CONTAINS_AA_BUDGET + 1000]
)
def test_autos_square_runs_the_beginning_of_aa_standards_square(budget):
    """Square's window schedule is aa-standard's at every budget, so on each point auto's
    Square is the start of aa-standard's run (or all of it and more)."""
    square = auto_schedule(0.3, budget=budget).attacks[-1].attack
    aa = {a.label: a.attack for a in preset_attacks("aa-standard", "mnist", 0.3)}["square"]
    assert square.window_schedule == aa.window_schedule == "fixed" and aa.queries == 5000
    assert all(square.window_side(i, 28, 28) == aa.window_side(i, 28, 28) for i in range(5000))
    assert square.config()["window_schedule_queries"] is None
    assert square.queries == budget - sum(auto_schedule(0.3, budget=budget).caps[:-1])
    assert square.key == aa.key and square.p_init == aa.p_init
    assert square.give_up == AUTO_GIVE_UP and not aa.give_up
    exhaustive = auto_schedule(0.3, budget=budget, exhaustive=True).attacks[-1].attack
    assert exhaustive.give_up == () and exhaustive.queries == square.queries


def test_exhaustive_is_for_auto_only():
    model, x, y = trained_mlp(5, 4)
    with pytest.raises(ValueError, match="exhaustive"):
        evaluate_model(model, x, y, eps=0.1, preset="strong", exhaustive=True)
    with pytest.raises(ValueError, match="exhaustive"):
        preset_attacks("aa-standard", "mnist", 0.3, exhaustive=True)


def _unbreakable_points(classes: int, n: int):
    """A model that keeps every input in class 0 within any eps, and n inputs it is right on."""
    model = unbreakable(classes)
    _, x, _ = trained_mlp(classes, n)
    with torch.no_grad():
        return model, x, model(x).argmax(1)


def test_auto_spends_exactly_its_budget_on_points_it_cannot_break():
    model, x, y = _unbreakable_points(5, 6)
    result = evaluate_model(model, x, y, eps=0.1, preset="auto", budget=600, show_progress=False)
    assert result.robust_accuracy == 1.0
    report = result.meta["schedule"]
    assert report["budget_per_point"] == 600 and report["max_per_point"] == 600
    assert report["spent"] == 6 * 600  # every point spent its whole budget, not one more
    assert report["spent_per_point_mean"] == 600
    assert report["within_budget"]
    assert sum(a.gradients + a.queries for a in result.attacks) == report["spent"]
    assert [r["spent"] for r in report["attacks"]] == [r["cap_total"] for r in report["attacks"]]


def test_autos_square_gives_up_points_that_do_not_move():
    """On a model whose margin no attack can move, APGD-T stops each target and Square each
    point at their first checkpoints: the other attacks' caps, 41 gradients per APGD-T
    target and 500 queries, within the budget."""
    model, x, y = _unbreakable_points(5, 6)
    result = evaluate_model(model, x, y, eps=0.1, preset="auto", budget=2000, show_progress=False)
    report = result.meta["schedule"]
    first_checkpoint = AUTO_GIVE_UP[0][0]
    assert report["attacks"][-1]["cap_per_point"] > first_checkpoint
    caps = {r["label"]: r["cap_per_point"] for r in report["attacks"][:-1]}
    targets = caps.pop("apgd-t") // 101
    apgd_t = targets * (1 + AUTO_APGD_T_GIVE_UP[0][0])
    assert report["spent"] == 6 * (sum(caps.values()) + apgd_t + first_checkpoint) < 6 * 2000
    assert report["within_budget"] and result.robust_accuracy == 1.0
    assert [r["points_given_up"] for r in report["attacks"]] == [0, 0, 0, 0, 6, 0, 6]
    square = result.to_dict()["points"][0]["attacks"]["square"]
    assert square["gave_up"] and square["restart_loss"][0] is not None


def test_auto_breaks_undefended_and_logit_scaled_models_within_budget():
    model, x, y = trained_mlp(5, 30)
    plain = evaluate_model(model, x, y, eps=0.1, preset="auto", budget=600, show_progress=False)
    assert plain.robust_accuracy == 0.0
    masked = Scaled(model, 1e4)
    base = evaluate_model(masked, x, y, eps=0.1, preset="baseline", show_progress=False)
    auto = evaluate_model(masked, x, y, eps=0.1, preset="auto", budget=600, show_progress=False)
    assert auto.robust_accuracy <= 0.1 < base.robust_accuracy
    report = auto.meta["schedule"]
    assert report["within_budget"] and report["spent"] <= 30 * 600
    assert {b for b in auto.broken_by if b} <= set(LADDER)


def test_auto_fits_its_targets_to_the_class_count():
    ten = auto_schedule(0.1, budget=3000, num_classes=10)
    five = auto_schedule(0.1, budget=3000, num_classes=5)
    three = auto_schedule(0.1, budget=3000, num_classes=3)
    targeted = ("apgd-t-smooth3", "fab-t", "apgd-t", "fab-t-more")
    targets = {
        n: [a.attack.targets for a in s.attacks if a.label in targeted]
        for n, s in ((10, ten), (5, five), (3, three))
    }
    assert targets == {10: [3, 3, 9, 6], 5: [3, 3, 4, 1], 3: [2]}
    no_apgd_t = [*LADDER[:4], "apgd-dlr-smooth1", "fab-t", "square"]
    assert [a.label for a in three.attacks] == no_apgd_t
    assert sum(ten.caps) == sum(five.caps) == sum(three.caps) == 3000
    assert three.caps[-1] == 3000 - sum(FIRST_CAPS) + 303 - 200
    two = auto_schedule(0.1, budget=3000, num_classes=2)  # no DLR loss below 3 classes
    assert [a.label for a in two.attacks] == ["fgsm", "apgd-ce", "fab-t", "square"]


def test_auto_on_a_three_class_model_spends_its_budget():
    """The model is linear: no ReLU to smooth, so the smoothed runs are left out, and said."""
    model, x, y = _unbreakable_points(3, 4)
    result = evaluate_model(model, x, y, eps=0.1, preset="auto", budget=357, show_progress=False)
    report = result.meta["schedule"]
    assert [r["label"] for r in report["attacks"]] == [
        "fgsm",
        "apgd-dlr",
        "apgd-ce",
        "fab-t",
        "square",
    ]
    assert report["spent"] == 4 * 357 and report["within_budget"]
    assert report["smooth_skipped"] == "the model computes no ReLU: nothing to smooth"


def test_auto_on_a_relu_model_runs_the_smoothed_runs():
    model, x, y = trained_mlp(5, 8)
    report = evaluate_model(
        model, x, y, eps=0.1, preset="auto", budget=2000, show_progress=False
    ).meta["schedule"]
    assert "smooth_skipped" not in report
    assert [r["label"] for r in report["attacks"]][:5] == LADDER[:5]


def test_raise_budgets_doubles_the_setting_of_each_warned_probe_once():
    base = auto_schedule(0.1, budget=2000, num_classes=10)
    warned = ["black-box", "gap", "restarts", "convergence", "loss-surface", "eps-sweep"]
    raised = raise_budgets(base, warned, {"verdict": "v"})
    fgsm, sharp, dlr, ce, smooth_t, soft, fab, t, square = (a.attack for a in raised.attacks)
    assert (ce.restarts, ce.iters) == (2, 200) and fgsm.iters == 6
    for run in (sharp, dlr, soft):
        assert (run.restarts, run.iters) == (1, 50)  # not raised
    assert t.iters == 200 and t.targets == 6
    assert smooth_t.iters == 100 and smooth_t.targets == 3  # not raised
    assert square.queries == 2 * 531
    assert fab.targets == 3  # not raised
    assert raised.caps == [6, 51, 51, 2 * 201, 303, 51, 300, 6 * 201, 1062]
    assert raised.budget == raised.max_per_point == sum(raised.caps)
    assert [(r["probe"], r["attack"], r["setting"], r["from"], r["to"]) for r in raised.raised] == [
        ("black-box", "square", "queries", 531, 1062),
        ("gap", "apgd-t", "iters", 606, 1206),
        ("restarts", "apgd-ce", "restarts", 101, 202),
        ("convergence", "apgd-ce", "iters", 202, 402),
        ("loss-surface", "apgd-ce", "restarts", 402, 402),  # already doubled
    ]
    assert [a.attack.iters for a in base.attacks[1:6]] == [50, 50, 100, 100, 50]  # untouched
    assert base.attacks[-1].attack.queries == 531
    plan = raised.plan()
    assert plan["check"] == {"verdict": "v"} and plan["raised"] == raised.raised
    assert "raised" not in base.plan()


#: The module (``lpbench.evaluation.benchmark`` names the function once the package loads).
benchmark_module = sys.modules["lpbench.evaluation.benchmark"]


def _fake_check(warned: list[str]):
    def fake(model, x, y, eps, **kwargs) -> CheckReport:
        findings = [Finding(p, False, "forced") for p in warned] + [Finding("gap", True, "ok")]
        return CheckReport(eps, len(x), len(x), findings, {}, [])

    return fake


def test_adapt_raises_the_cap_of_the_attack_that_exposed_a_flag(monkeypatch):
    model, x, y = _unbreakable_points(5, 6)
    kwargs = {"eps": 0.1, "preset": "auto", "budget": 600, "show_progress": False}
    kwargs["exhaustive"] = True  # every point spends its whole cap: the spend is exact
    plain = evaluate_model(model, x, y, **kwargs).meta["schedule"]
    assert "raised" not in plain and "check" not in plain

    monkeypatch.setattr(benchmark_module, "check", _fake_check(["black-box"]))
    result = evaluate_model(model, x, y, adapt=True, **kwargs)
    report = result.meta["schedule"]
    queries = plain["attacks"][-1]["cap_per_point"]
    assert report["raised"] == [
        {
            "probe": "black-box",
            "attack": "square",
            "setting": "queries",
            "from": queries,
            "to": 2 * queries,
        }
    ]
    assert report["budget_per_point"] == 600 + queries
    assert report["spent"] == 6 * (600 + queries) and report["within_budget"]
    assert report["check"]["warnings"] == ["black-box"] and report["check"]["exit_code"] == 1
    assert "MASKING SUSPECTED" in report["check"]["verdict"]
    config = {a["label"]: a for a in result.meta["manifest"]["attacks"]}
    assert config["square"]["queries"] == 2 * queries

    monkeypatch.setattr(benchmark_module, "check", _fake_check([]))
    calm = evaluate_model(model, x, y, adapt=True, **kwargs).meta
    assert calm["schedule"]["raised"] == [] and calm["schedule"]["check"]["exit_code"] == 0
    assert calm["schedule"]["attacks"] == plain["attacks"]
    assert calm["schedule"]["budget_per_point"] == 600


def test_adapt_runs_check_and_raises_for_a_masked_model():
    model, x, y = trained_mlp(5, 20)
    masked = Scaled(model, 1e4)
    result = evaluate_model(
        masked, x, y, eps=0.1, preset="auto", budget=2000, adapt=True, show_progress=False
    )
    report = result.meta["schedule"]
    warned = set(report["check"]["warnings"])
    assert {"gap", "gradients"} <= warned
    raised = {(r["probe"], r["attack"]) for r in report["raised"]}
    assert {("gap", "apgd-t"), ("gradients", "square")} <= raised
    assert report["budget_per_point"] > 2000 and report["within_budget"]
    with pytest.raises(ValueError, match="adapt"):
        evaluate_model(masked, x, y, eps=0.1, preset="strong", adapt=True, show_progress=False)


def test_adapt_skips_the_check_when_no_point_is_classified_correctly():
    model = unbreakable(5)  # always class 0
    _, x, _ = trained_mlp(5, 4)
    y = torch.ones(4, dtype=torch.long)
    result = evaluate_model(
        model, x, y, eps=0.1, preset="auto", budget=300, adapt=True, show_progress=False
    )
    report = result.meta["schedule"]
    assert report["check"]["verdict"].startswith("skipped") and report["raised"] == []
    assert report["budget_per_point"] == 300 and result.robust_accuracy == 0.0


def test_auto_with_sources_reports_the_universal_cost_and_without_says_why_it_skipped():
    model, x, y = trained_mlp(5, 30)
    _, pool, labels = trained_mlp(5, 512)
    sources = (pool[300:340], labels[300:340])  # not the points evaluated
    kwargs = {"eps": 0.1, "preset": "auto", "budget": 600, "show_progress": False}
    result = evaluate_model(model, x, y, sources=sources, **kwargs)
    report = result.meta["schedule"]
    universal = report["attacks"][0]
    assert universal["label"] == "universal" and universal["cap_total"] == 0
    assert universal["spent"] == 0 and universal["points_broken"] > 0
    assert universal["gradients"] == universal["shared_spent"] == report["shared_spent"]
    # 24, 7, 0, 8 and 1 sources of the classes 0-4: 5, 5, 0, 5 and 1 used, 5 steps each
    assert report["shared_spent"] == report["shared"] == (5 + 5 + 5 + 1) * 5
    assert report["spent"] == sum(r["spent"] for r in report["attacks"]) and report["within_budget"]
    assert result.robust_accuracy == 0.0 and "universal_skipped" not in report
    bare = evaluate_model(model, x, y, **kwargs).meta["schedule"]
    assert bare["attacks"][0]["label"] == "fgsm" and "no sources given" in bare["universal_skipped"]


def test_strong_runs_the_baseline_then_exhaustive_auto_at_the_containment_budget():
    model, x, y = trained_mlp(5, 16)
    kwargs = {"eps": 0.1, "show_progress": False}
    strong = evaluate_model(model, x, y, preset="strong", **kwargs)
    auto = evaluate_model(
        model, x, y, preset="auto", budget=AUTO_CONTAINS_AA_BUDGET, exhaustive=True, **kwargs
    )
    assert [a.label for a in strong.attacks] == ["baseline", *(a.label for a in auto.attacks)]
    assert [a.config for a in strong.attacks[1:]] == [a.config for a in auto.attacks]
    # nothing is given up: every aa-standard attack runs to its end on the points left
    assert all(a.config.get("give_up", []) == [] for a in strong.attacks)
    report = strong.meta["schedule"]
    assert report["budget_per_point"] == AUTO_CONTAINS_AA_BUDGET and report["within_budget"]
    assert report["spent"] == sum(a.gradients + a.queries for a in strong.attacks[1:])
    auto_robust = {i for i, r in zip(auto.indices, auto.robust, strict=True) if r}
    assert {i for i, r in zip(strong.indices, strong.robust, strict=True) if r} <= auto_robust
    strong_attacks = preset_attacks("strong", "mnist")
    assert all(a.attack.config().get("give_up", []) == [] for a in strong_attacks)
    given_up = preset_attacks("auto", "mnist", budget=AUTO_CONTAINS_AA_BUDGET)
    assert any(a.attack.config().get("give_up") for a in given_up)
    with pytest.raises(ValueError, match="budget"):
        evaluate_model(model, x, y, preset="strong", budget=3000, **kwargs)


@pytest.mark.parametrize("budget", [1200, 7000])
def test_what_gradient_attacks_leave_of_their_caps_goes_to_square(budget):
    """Every gradient is zero (inputs rounded to 4 levels) and no point can be broken: each
    gradient run ends after one gradient, and exhaustive ``auto`` hands the rest of each
    point's budget to Square (at 7,000 to the warm-started Square first, then the cold
    one), which spends it to the last query, never more."""
    model = Quantised()
    with torch.no_grad():
        model.linear.bias[0] = 100.0  # class 0 whatever the input
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(5, dtype=torch.long)
    result = evaluate_model(
        model, x, y, eps=0.1, preset="auto", budget=budget, exhaustive=True, show_progress=False
    )
    assert result.robust_accuracy == 1.0
    report = result.meta["schedule"]
    rows = {r["label"]: r for r in report["attacks"]}
    squares = [rows.pop(label) for label in ("square-warm", "square") if label in rows]
    assert len(squares) == (2 if budget > 6000 else 1)
    assert all(r["spent"] < r["cap_total"] for r in rows.values())  # runs that ended at once
    left = sum(r["cap_total"] - r["spent"] for r in rows.values())
    assert squares[0]["pooled_in"] == left > 0
    assert sum(r["spent"] for r in squares) == sum(r["cap_total"] for r in squares) + left
    assert report["spent"] == 5 * budget and report["within_budget"]
    for point in result.to_dict()["points"]:
        assert sum(a["spent"] for a in point["attacks"].values()) == budget
