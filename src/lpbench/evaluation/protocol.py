"""Named attack presets per data set: the seed's baseline and lpbench's strong PGD."""

from __future__ import annotations

from dataclasses import dataclass

from lpbench.attacks import PGD, Attack

#: Default L-infinity radius per data set. MNIST is the seed's 0.3; Fashion-MNIST uses
#: 0.1, the radius at which undefended models fall to ~0% while a model can still keep
#: real robustness (at 0.3 every Fashion-MNIST model is at 0%, see PROTOCOL.md).
DEFAULT_EPS: dict[str, float] = {"mnist": 0.3, "fashion-mnist": 0.1}

PRESETS = ("baseline", "strong")


@dataclass(frozen=True)
class NamedAttack:
    """An attack with the label it carries in results and tables."""

    label: str
    attack: Attack


def default_eps(dataset: str) -> float:
    """The data set's default radius."""
    if dataset not in DEFAULT_EPS:
        raise ValueError(
            f"no attack protocol for data set {dataset!r}; known: {', '.join(DEFAULT_EPS)}"
        )
    return DEFAULT_EPS[dataset]


def preset_attacks(
    preset: str, dataset: str, eps: float | None = None, *, seed: int = 0, max_batch: int = 10_000
) -> list[NamedAttack]:
    """The attacks of ``preset`` on ``dataset``, run in order on still-robust points.

    ``baseline``: PGD-40, step 0.01, one restart (the seed's MNIST baseline).
    ``strong``: the baseline, then PGD with a large step (eps/4) and a small step (eps/10)
    on cross-entropy, then PGD on the scale-invariant DLR loss, which logit squeezing and
    pairing cannot shrink away; several restarts each. A point counts as robust only if it
    survives every attack and every restart.
    """
    eps = default_eps(dataset) if eps is None else eps
    if preset not in PRESETS:
        raise ValueError(f"unknown attack preset {preset!r}; choose one of {', '.join(PRESETS)}")
    common = {"seed": seed, "max_batch": max_batch}
    baseline = NamedAttack("baseline", PGD(eps, step=0.01, iters=40, restarts=1, **common))
    if preset == "baseline":
        return [baseline]
    return [
        baseline,
        NamedAttack("pgd-ce-large-step", PGD(eps, eps / 4, iters=100, restarts=3, **common)),
        NamedAttack("pgd-ce-small-step", PGD(eps, eps / 10, iters=100, restarts=1, **common)),
        NamedAttack("pgd-dlr", PGD(eps, eps / 4, iters=100, restarts=3, loss="dlr", **common)),
    ]
