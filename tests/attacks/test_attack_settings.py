"""Attack settings as dataclass fields: the derived config(), replace(), the per-point cost
bound each attack owns, and the deprecated keywords of the old vocabulary."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from lpbench.attacks import APGD, APGDT, FAB, FGSM, PGD, SPSA, Attack, Square, Universal
from lpbench.evaluation import max_spend_per_point
from tests.attack_models import trained_mlp

SOURCES = (torch.full((2, 1, 4, 4), 0.5), torch.tensor([0, 1]))


def _cases() -> dict[str, Attack]:
    """One attack per class and setting path, built with the current keywords."""
    return {
        "pgd": PGD(0.3, 0.01, 40),
        "pgd-ll": PGD(
            0.1,
            0.02,
            7,
            2,
            loss="dlr",
            score="last",
            target_mode="ll",
            keep_last=True,
            eot_iter=3,
            record_at=(2,),
            seed=4,
            stream="s",
            max_batch=9,
            model_mode="caller",
        ),
        "apgd": APGD(0.3),
        "apgd-smooth": APGD(
            0.2,
            50,
            2,
            loss="dlr",
            targeted=True,
            targets=3,
            eot_iter=2,
            rho=0.5,
            give_up=[(40, 0.9), (20, 0.5)],
            smooth_relu=3,
            seed=1,
            stream="x",
        ),
        "apgd-t": APGDT(0.3, 100, targets=9),
        "fab": FAB(
            0.3, 100, 2, targets=6, skip_targets=3, alpha_max=0.2, eta=1.1, beta=0.8, seed=2
        ),
        "square": Square(0.3),
        "square-laid": Square(
            0.05, 400, 2, p_init=0.5, window_schedule_queries=5000, give_up=[(500, 0.5)]
        ),
        "spsa": SPSA(0.3, 10, 2, samples=16, lr=0.02, delta=0.05),
        "fgsm": FGSM(0.3),
        "fgsm-list": FGSM(0.3, step=[0.3, 0.15, 0.15], random_start=True, eot_iter=2),
        "fgsm-iters": FGSM(0.2, step=0.05, iters=4),
        "universal": Universal(0.3, SOURCES, iters=3),
    }


def _shared(attack: str, eps: float, stream: str, seed: int = 0) -> dict[str, Any]:
    return {"attack": attack, "norm": "linf", "eps": eps, "seed": seed, "stream": stream}


#: What the hand-written config() of each attack returned before the settings became
#: fields, with only the keys renamed (n_iter -> iters, n_target_classes -> targets,
#: n_queries -> queries, schedule_queries -> window_schedule_queries, PGD's targeted ->
#: target_mode, FGSM's steps -> iters), and the old max_spend_per_point ladder's value.
EXPECTED: dict[str, tuple[dict[str, Any], int]] = {
    "pgd": (
        _shared("pgd", 0.3, "pgd")
        | {
            "step": 0.01,
            "iters": 40,
            "restarts": 1,
            "loss": "ce",
            "score": "any",
            "random_start": True,
            "early_stop": True,
            "keep_last": False,
            "target_mode": None,
            "eot_iter": 1,
        },
        40,
    ),
    "pgd-ll": (
        _shared("pgd", 0.1, "s", seed=4)
        | {
            "step": 0.02,
            "iters": 7,
            "restarts": 2,
            "loss": "dlr",
            "score": "last",
            "random_start": True,
            "early_stop": False,
            "keep_last": True,
            "target_mode": "ll",
            "eot_iter": 3,
        },
        42,
    ),
    "apgd": (
        _shared("apgd", 0.3, "apgd")
        | {
            "iters": 100,
            "restarts": 1,
            "loss": "ce",
            "targeted": False,
            "targets": 9,
            "eot_iter": 1,
            "rho": 0.75,
            "give_up": [],
        },
        101,
    ),
    "apgd-smooth": (
        _shared("apgd", 0.2, "x", seed=1)
        | {
            "iters": 50,
            "restarts": 2,
            "loss": "dlr",
            "targeted": True,
            "targets": 3,
            "eot_iter": 2,
            "rho": 0.5,
            "give_up": [[20, 0.5], [40, 0.9]],
            "smooth_relu": 3.0,
        },
        612,
    ),
    "apgd-t": (
        _shared("apgd-t", 0.3, "apgd-t")
        | {
            "iters": 100,
            "restarts": 1,
            "loss": "dlr",
            "targeted": True,
            "targets": 9,
            "eot_iter": 1,
            "rho": 0.75,
            "give_up": [],
        },
        909,
    ),
    "fab": (
        _shared("fab-t", 0.3, "fab-t", seed=2)
        | {
            "iters": 100,
            "restarts": 2,
            "targeted": True,
            "targets": 6,
            "skip_targets": 3,
            "alpha_max": 0.2,
            "eta": 1.1,
            "beta": 0.8,
        },
        1200,
    ),
    "square": (
        _shared("square", 0.3, "square")
        | {
            "queries": 5000,
            "restarts": 1,
            "p_init": 0.8,
            "window_schedule": "rescaled",
            "window_schedule_queries": 5000,
            "give_up": [],
        },
        5000,
    ),
    "square-laid": (
        _shared("square", 0.05, "square")
        | {
            "queries": 400,
            "restarts": 2,
            "p_init": 0.5,
            "window_schedule": "rescaled",
            "window_schedule_queries": 5000,
            "give_up": [[500, 0.5]],
        },
        800,
    ),
    "spsa": (
        _shared("spsa", 0.3, "spsa")
        | {
            "iters": 10,
            "restarts": 2,
            "samples": 16,
            "lr": 0.02,
            "delta": 0.05,
        },
        342,
    ),
    "fgsm": (
        _shared("fgsm", 0.3, "fgsm")
        | {
            "step": 0.3,
            "iters": 1,
            "random_start": False,
            "loss": "ce",
            "eot_iter": 1,
        },
        1,
    ),
    "fgsm-list": (
        _shared("fgsm", 0.3, "fgsm")
        | {
            "step": [0.3, 0.15, 0.15],
            "iters": 3,
            "random_start": True,
            "loss": "ce",
            "eot_iter": 2,
        },
        6,
    ),
    "fgsm-iters": (
        _shared("fgsm", 0.2, "fgsm")
        | {
            "step": 0.05,
            "iters": 4,
            "random_start": False,
            "loss": "ce",
            "eot_iter": 1,
        },
        4,
    ),
    "universal": (
        _shared("universal", 0.3, "universal")
        | {
            "iters": 3,
            "step": 0.15,
            "sources": {
                "images": 2,
                "sha256": "9f2227e4b5d2f07fa7e264f455304f5568ec70cf63461351957c0c504a20c034",
            },
        },
        0,
    ),
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_the_derived_config_is_the_hand_written_one(case: str) -> None:
    assert _cases()[case].config() == EXPECTED[case][0]


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_attack_owns_the_old_ladder_s_cost_bound(case: str) -> None:
    assert _cases()[case].max_spend_per_point() == EXPECTED[case][1]


def test_the_module_level_cost_bound_is_deprecated_but_agrees() -> None:
    attack = APGDT(0.3, 100, targets=9)
    with pytest.warns(DeprecationWarning, match="max_spend_per_point"):
        assert max_spend_per_point(attack) == attack.max_spend_per_point() == 909


def test_an_attack_without_a_bound_says_so() -> None:
    class Bare(Attack):
        def perturb(self, model, x, y, index, target):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    with pytest.raises(ValueError, match="no per-point cost bound known for Bare"):
        Bare(0.1).max_spend_per_point()


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_replace_without_changes_rebuilds_the_same_settings(case: str) -> None:
    attack = _cases()[case]
    again = attack.replace()
    assert again is not attack and type(again) is type(attack)
    assert again.config() == attack.config()
    assert (again.max_batch, again.model_mode) == (attack.max_batch, attack.model_mode)


@pytest.mark.parametrize(
    "attack,changes,message",
    [
        (APGD(0.1), {"iters": 0}, "iters must be >= 1"),
        (APGD(0.1), {"rho": 1.5}, "rho must be in"),
        (PGD(0.1, 0.01, 3), {"step": 2.0}, "step must be in"),
        (PGD(0.1, 0.01, 3), {"target_mode": "most"}, "target_mode must be one of"),
        (Square(0.1), {"give_up": [(0, 0.5)]}, "give_up checkpoints"),
        (FAB(0.1), {"eps": 2.0}, "eps must be in"),
    ],
)
def test_replace_checks_the_new_values(attack: Attack, changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        attack.replace(**changes)


def test_replace_names_what_is_not_a_setting() -> None:
    with pytest.raises(TypeError, match="no setting nonsense"):
        APGD(0.1).replace(nonsense=1)
    with pytest.raises(TypeError, match="no setting loss"):  # fixed in APGD-T
        APGDT(0.1).replace(loss="ce")
    with pytest.raises(TypeError, match="no setting n_iter"):  # old names only construct
        APGD(0.1).replace(n_iter=3)


def test_replace_gives_what_the_constructor_gives() -> None:
    model, x, y = trained_mlp(classes=5, n=12)
    pairs = [
        (APGD(0.05, 4, seed=1).replace(iters=9, loss="dlr"), APGD(0.05, 9, seed=1, loss="dlr")),
        (
            APGDT(0.05, 6).replace(targets=2, smooth_relu=3.0),
            APGDT(0.05, 6, targets=2, smooth_relu=3.0),
        ),
        (PGD(0.05, 0.01, 5).replace(restarts=3, stream="b"), PGD(0.05, 0.01, 5, 3, stream="b")),
        (FAB(0.05, 5).replace(targets=2, skip_targets=1), FAB(0.05, 5, targets=2, skip_targets=1)),
    ]
    for replaced, built in pairs:
        assert replaced.config() == built.config()
        a, b = replaced(model, x, y), built(model, x, y)
        assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)
        assert a.cost == b.cost
    square = Square(0.05, 30).replace(queries=60, window_schedule_queries=100)
    a, b = square(model, x, y), Square(0.05, 60, window_schedule_queries=100)(model, x, y)
    assert torch.equal(a.x_adv, b.x_adv) and a.cost == b.cost


def test_replace_leaves_the_original_alone() -> None:
    attack = Square(0.1, 100, stream="a")
    attack.replace(queries=7, stream="b")
    assert (attack.queries, attack.stream) == (100, "a")


@pytest.mark.parametrize(
    "build,old,new,value",
    [
        (lambda **kw: APGD(0.1, **kw), "n_iter", "iters", 7),
        (lambda **kw: APGD(0.1, **kw), "n_target_classes", "targets", 4),
        (lambda **kw: APGDT(0.1, **kw), "n_iter", "iters", 7),
        (lambda **kw: APGDT(0.1, **kw), "n_target_classes", "targets", 4),
        (lambda **kw: FAB(0.1, **kw), "n_iter", "iters", 7),
        (lambda **kw: FAB(0.1, **kw), "n_target_classes", "targets", 4),
        (lambda **kw: Square(0.1, **kw), "n_queries", "queries", 70),
        (lambda **kw: Square(0.1, **kw), "schedule_queries", "window_schedule_queries", 700),
        (lambda **kw: SPSA(0.1, **kw), "n_iter", "iters", 7),
        (lambda **kw: FGSM(0.1, **kw), "steps", "iters", 3),
        (lambda **kw: Universal(0.1, SOURCES, **kw), "n_iter", "iters", 7),
        (lambda **kw: PGD(0.1, 0.01, 3, **kw), "targeted", "target_mode", "random"),
    ],
)
def test_old_keywords_warn_and_still_work(build, old: str, new: str, value: Any) -> None:
    with pytest.warns(DeprecationWarning, match=f"{old}= is deprecated, use {new}="):
        attack = build(**{old: value})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert attack.config() == build(**{new: value}).config()
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated, use .{new}"):
        assert getattr(attack, old) == getattr(attack, new)
    with pytest.raises(TypeError, match=f"got both {old}= .deprecated. and {new}="):
        build(**{old: value, new: value})


def test_apgd_t_is_apgd_with_the_targeted_dlr_loss() -> None:
    attack = APGDT(0.1, 20, 2, targets=3, give_up=[(5, 0.5)], seed=3)
    assert isinstance(attack, APGD) and (attack.loss, attack.targeted) == ("dlr", True)
    same = APGD(0.1, 20, 2, loss="dlr", targeted=True, targets=3, give_up=[(5, 0.5)], seed=3)
    assert attack.config() == same.config() | {"attack": "apgd-t", "stream": "apgd-t"}
    with pytest.raises(TypeError):
        APGDT(0.1, loss="ce")  # type: ignore[call-arg]
