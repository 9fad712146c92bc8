"""Attack presets per data set, as data, and :func:`resolve_attacks`: the one place that
decides what an evaluation runs (preset, radius, budget, ``auto``'s schedule).

Step sizes are written in units of eps (``"eps/30"``) or as numbers, so a preset keeps
its meaning when the user picks another radius. Every attack of a preset draws its
random numbers from its own stream (its label), keyed per point. The default radius of a
data set is decided in the data-set registry (:attr:`lpbench.data.DatasetInfo.eps`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from lpbench.attacks import PGD
from lpbench.data import DATASETS, DatasetNotFoundError, get_dataset_info
from lpbench.evaluation.preflight import ModelFacts
from lpbench.evaluation.schedule import (
    Schedule,
    auto_schedule,
    raise_budgets,
    strong_or_auto_budget,
)
from lpbench.evaluation.specs import (
    AA_RAND,
    AA_STANDARD,
    AttackSpec,
    KindSpec,
    NamedAttack,
    parse_step,
)

Spec = AttackSpec | KindSpec

#: Source images and labels of ``auto``'s universal perturbations, or a function that
#: loads them (called only when a schedule is built).
Sources = tuple[torch.Tensor, torch.Tensor] | Callable[[], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class DatasetProtocol:
    """A data set's attack presets (run in order, worst case kept)."""

    presets: dict[str, tuple[Spec, ...]] = field(default_factory=dict)


def _strong_pgd(baseline: AttackSpec, *extra: AttackSpec) -> tuple[AttackSpec, ...]:
    """The baseline, then lpbench's PGD set: large and small steps, DLR loss."""
    return (
        baseline,
        AttackSpec("pgd-ce-large-step", "eps/4", 100, restarts=3),
        AttackSpec("pgd-ce-small-step", "eps/10", 100),
        AttackSpec("pgd-dlr", "eps/4", 100, restarts=3, loss="dlr"),
        *extra,
    )


def _protocol(baseline: AttackSpec, *extra: AttackSpec) -> DatasetProtocol:
    return DatasetProtocol(
        presets={
            "baseline": (baseline,),
            "strong-pgd": _strong_pgd(baseline, *extra),
            "aa-standard": AA_STANDARD,
            "aa-rand": AA_RAND,
        },
    )


#: The original paper's baselines: PGD judged on its last iterate, one restart (the radii
#: and where they come from: :attr:`lpbench.data.DatasetInfo.eps` and ``eps_note``).
PROTOCOLS: dict[str, DatasetProtocol] = {
    "mnist": _protocol(AttackSpec("baseline", "eps/30", 40, score="last")),
    "mnist-digits": _protocol(AttackSpec("baseline", "eps/30", 40, score="last")),
    "fashion-mnist": _protocol(AttackSpec("baseline", "eps/10", 40, score="last")),
    "cifar10": _protocol(AttackSpec("baseline", "eps/8", 10, score="last")),
    "tiny-imagenet": _protocol(
        AttackSpec("baseline", "eps/8", 10, score="last", targeted="ll"),
        AttackSpec("pgd-ll", "eps/4", 100, restarts=3, targeted="ll"),
    ),
}

#: For a user's own tensors, where no data set fixes the radius (eps must be given).
GENERIC = _protocol(AttackSpec("baseline", "eps/10", 40, score="last"))

#: ``auto`` is built by :func:`lpbench.evaluation.schedule.auto_schedule` (it has a budget);
#: ``strong`` is the data set's baseline, then exhaustive ``auto`` at
#: :data:`lpbench.evaluation.schedule.AUTO_CONTAINS_AA_BUDGET`, which runs every attack of
#: ``aa-standard`` to its end on the points still robust.
PRESETS = ("baseline", "strong", "strong-pgd", "aa-standard", "auto", "aa-rand")
#: The preset an evaluation runs when none is named.
DEFAULT_PRESET = "strong"
#: The presets that run on a randomised model (with EOT), and the one run when EOT is
#: asked for and no preset is named. The others read single forward passes to decide
#: (FAB-T's and Square's steps, ``auto``'s give-ups), which noise would decide instead.
RANDOMISED_PRESETS = ("baseline", "aa-rand")
RANDOMISED_DEFAULT_PRESET = "aa-rand"
#: The registry's default radii by data set (read from :data:`lpbench.data.DATASETS`).
DEFAULT_EPS: dict[str, float] = {name: info.eps for name, info in DATASETS.items()}


def get_protocol(dataset: str | None) -> DatasetProtocol:
    """The protocol of ``dataset`` (None: the generic one); a clear error for an unknown one."""
    if dataset is None:
        return GENERIC
    if dataset not in PROTOCOLS:
        raise ValueError(
            f"no attack protocol for data set {dataset!r}; known: {', '.join(PROTOCOLS)}"
        )
    return PROTOCOLS[dataset]


def default_eps(dataset: str) -> float:
    """The data set's default radius (:attr:`lpbench.data.DatasetInfo.eps`)."""
    return get_dataset_info(dataset).eps


def resolve_eps(eps: float | None, dataset: str | None) -> float:
    """``eps``, or with None the data set's default (:func:`default_eps`; an error without a
    data set); it must lie in (0, 1]."""
    if eps is None and dataset is None:
        raise ValueError("give eps: there is no default radius without a data set")
    eps = default_eps(str(dataset)) if eps is None else float(eps)
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    return eps


@dataclass(frozen=True)
class CustomPGD:
    """Settings of one free PGD, without its radius (:func:`resolve_attacks` builds it at
    the resolved eps with :func:`custom_pgd`); None takes :func:`custom_pgd`'s default."""

    step: str | float | None = None
    iters: int | None = None
    restarts: int | None = None
    loss: str | None = None
    score: str | None = None
    targeted: str | None = None
    early_stop: bool = True

    def build(self, eps: float, *, seed: int = 0, eot_iter: int = 1) -> NamedAttack:
        """The PGD at radius ``eps`` (``eot_iter`` draws per gradient)."""
        return custom_pgd(eps, **asdict(self), seed=seed, eot_iter=eot_iter)


@dataclass(frozen=True)
class Resolution:
    """What :func:`resolve_attacks` decided: the preset run (``"custom"`` for given attacks
    or a custom PGD), the radius, ``auto``'s budget (None when no schedule runs), the
    schedule (``auto`` and ``strong``) and the attacks in the order they run."""

    preset: str
    eps: float
    attacks: list[NamedAttack]
    budget: int | None = None
    schedule: Schedule | None = None


@dataclass(frozen=True)
class AttackRequest:
    """What an evaluation is asked to run, before any model or data is seen.

    Exactly one of ``preset`` (None: :data:`DEFAULT_PRESET`), ``custom`` (a PGD built at
    the resolved eps) and ``attacks`` (ready-built, which must use eps; the preset is then
    not used) names the attacks; a preset with a custom PGD is an error. ``eps=None`` is
    the data set's default (:func:`default_eps`; required without a data set). ``budget``,
    ``exhaustive`` and ``adapt`` apply to the ``auto`` preset only. ``eot_iter``: the model
    is randomised; every gradient is averaged over this many draws (EOT); it applies to
    :data:`RANDOMISED_PRESETS`, a custom PGD and given attacks (which carry their own
    EOT), and with no preset named runs :data:`RANDOMISED_DEFAULT_PRESET`.
    """

    preset: str | None = None
    dataset: str | None = None
    eps: float | None = None
    custom: CustomPGD | None = None
    attacks: Sequence[NamedAttack] | None = None
    budget: int | None = None
    exhaustive: bool = False
    adapt: bool = False
    eot_iter: int | None = None

    @property
    def randomised_ok(self) -> bool:
        """Whether the model may be randomised: EOT asked for, or the ``aa-rand`` preset."""
        return self.eot_iter is not None or self.preset == "aa-rand"

    def check(self) -> tuple[str, float]:
        """The preset that runs (``"custom"`` for a custom PGD or given attacks) and the
        radius; cheap (no model, no data), so callers run it before loading anything.
        Raises ValueError."""
        if self.custom is not None and self.preset is not None:
            raise ValueError(
                f"give either a preset ({self.preset!r}) or custom PGD settings, not both"
            )
        if self.custom is not None and self.attacks is not None:
            raise ValueError("give either custom PGD settings or ready-built attacks, not both")
        given = self.attacks is not None or self.custom is not None
        default = DEFAULT_PRESET if self.eot_iter is None else RANDOMISED_DEFAULT_PRESET
        preset = "custom" if given else self.preset or default
        if not given and preset not in PRESETS:
            raise ValueError(
                f"unknown attack preset {preset!r}; choose one of {', '.join(PRESETS)}"
            )
        if self.eot_iter is not None:
            if int(self.eot_iter) != self.eot_iter or self.eot_iter < 1:
                raise ValueError(f"eot_iter must be an integer >= 1, got {self.eot_iter}")
            if not given and preset not in RANDOMISED_PRESETS:
                raise ValueError(
                    f"eot_iter (a randomised model) applies to {', '.join(RANDOMISED_PRESETS)} "
                    f"and a custom PGD, not {preset!r}: its attacks decide on single forward "
                    "passes, which the model's noise would decide instead"
                )
        get_protocol(self.dataset)
        for flag, value in (("budget", self.budget is not None), ("exhaustive", self.exhaustive)):
            if value and preset != "auto":
                raise ValueError(f"{flag} applies to the auto preset only, not {preset!r}")
        if self.adapt and preset != "auto":
            raise ValueError(f"adapt applies to the auto preset only, not {preset!r}")
        eps = resolve_eps(self.eps, self.dataset)
        if self.attacks is not None:
            wrong = [a.label for a in self.attacks if abs(a.attack.eps - eps) > 1e-12]
            if wrong:
                raise ValueError(f"attacks {wrong} do not use eps {eps}: build them with eps={eps}")
        if self.custom is not None:
            self.custom.build(eps)  # its settings are checked where the PGD is built
        return preset, eps


def resolve_attacks(
    request: AttackRequest,
    *,
    adapt: Callable[[float], dict[str, Any]] | None = None,
    facts: ModelFacts | None = None,
    sources: Sources | None = None,
    no_sources: str | None = None,
    seed: int = 0,
    max_batch: int = 10_000,
) -> Resolution:
    """Decide what ``request`` runs (checked by :meth:`AttackRequest.check`: the one place
    that decides preset, radius and budget).

    ``strong`` is the baseline, then ``auto`` exhaustive (nothing given up) at
    :data:`~lpbench.evaluation.schedule.AUTO_CONTAINS_AA_BUDGET`, so that it contains
    ``aa-standard``. ``auto`` and ``strong`` are built for the model's ``facts`` (class
    count and ReLUs; without them, as for 10 classes and a ReLU model) and start with
    universal perturbations on ``sources`` (tensors, or a loader whose missing data set
    skips them; ``no_sources`` says why there are none). ``adapt(eps)`` (required when the request
    asks to adapt) runs the check and returns its summary, whose ``warnings`` raise the
    schedule's budgets (:func:`lpbench.evaluation.schedule.raise_budgets`).
    """
    preset, eps = request.check()
    if request.adapt and adapt is None:
        raise ValueError("the request asks to adapt: give adapt (the check to run first)")
    protocol = get_protocol(request.dataset)
    eot = request.eot_iter
    deterministic = facts is not None and facts.num_classes is not None and not facts.randomised
    if eot is not None and deterministic:
        raise ValueError(
            "eot_iter was given, but two identical calls of the model give the same "
            "logits: it is deterministic, and EOT would only repeat each gradient; drop "
            "eot_iter"
        )
    if request.attacks is not None:
        return Resolution(preset, eps, list(request.attacks))
    if request.custom is not None:
        built = request.custom.build(eps, seed=seed, eot_iter=eot or 1)
        return Resolution(preset, eps, [built])
    if preset not in ("auto", "strong"):
        specs = protocol.presets[preset]
        return Resolution(
            preset,
            eps,
            [spec.build(eps, seed=seed, max_batch=max_batch, eot_iter=eot) for spec in specs],
        )
    skipped = no_sources if sources is None else None
    if callable(sources):
        try:
            sources = sources()
        except (DatasetNotFoundError, OSError) as error:
            sources, skipped = None, f"no training split for its sources ({error})"
    smooth = True if facts is None else facts.computes_relu
    schedule = auto_schedule(
        eps,
        budget=strong_or_auto_budget(preset, request.budget),
        seed=seed,
        max_batch=max_batch,
        num_classes=None if facts is None else facts.num_classes,
        exhaustive=request.exhaustive or preset == "strong",
        sources=sources,
        smooth=smooth,
    )
    schedule.universal_skipped = skipped
    if facts is not None and not smooth:
        schedule.smooth_skipped = facts.smooth_skipped()
    if request.adapt and adapt is not None:
        summary = adapt(eps)
        schedule = raise_budgets(schedule, summary["warnings"], summary)
    run = schedule.attacks
    if preset == "strong":  # the original paper's baseline first, then auto on what it leaves
        baseline = protocol.presets["baseline"]
        run = [*(s.build(eps, seed=seed, max_batch=max_batch) for s in baseline), *run]
    return Resolution(preset, eps, run, schedule.budget, schedule)


def preset_attacks(
    preset: str,
    dataset: str | None,
    eps: float | None = None,
    *,
    seed: int = 0,
    max_batch: int = 10_000,
    budget: int | None = None,
    exhaustive: bool = False,
    facts: ModelFacts | None = None,
    sources: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[NamedAttack]:
    """The attacks of ``preset`` on ``dataset``, run in order on still-robust points
    (:func:`resolve_attacks`, so ``auto`` and ``strong`` are what :func:`benchmark` runs
    for a model with these ``facts`` and ``sources``).

    ``baseline``: the original paper's baseline (PGD judged on its last iterate, one
    restart). ``strong``: the baseline, then exhaustive ``auto`` at
    :data:`lpbench.evaluation.schedule.AUTO_CONTAINS_AA_BUDGET` on the points it leaves:
    every attack of ``aa-standard`` runs to its end on the points still robust, so no
    point ``aa-standard`` breaks is left robust.
    ``strong-pgd`` (what ``strong`` meant before ``auto``): the baseline, then PGD with a
    large step (eps/4, 3 restarts) and a small step (eps/10) on cross-entropy, then PGD on
    the scale-invariant DLR loss (eps/4, 3 restarts), which logit squeezing and pairing
    cannot shrink away; these count a point as broken when any iterate is adversarial. A
    point is robust only if it survives every attack and every restart. ``dataset=None``
    (a user's own data) needs ``eps``; its baseline is PGD-40 with step eps/10.
    ``aa-standard``: AutoAttack's standard version (APGD-CE, APGD-T, FAB-T, Square).
    ``aa-rand``: AutoAttack's version for randomised models (APGD-CE and APGD-DLR, each
    gradient averaged over 20 draws).
    ``auto``: the budgeted schedule of :func:`lpbench.evaluation.schedule.auto_schedule`
    (``budget`` gradients + queries per point; default
    :data:`lpbench.evaluation.schedule.DEFAULT_BUDGET`; ``exhaustive``: Square never gives
    a point up).
    """
    return resolve_attacks(
        AttackRequest(preset, dataset, eps, budget=budget, exhaustive=exhaustive),
        facts=facts,
        sources=sources,
        seed=seed,
        max_batch=max_batch,
    ).attacks


def custom_pgd(
    eps: float,
    *,
    step: str | float | None = None,
    iters: int | None = None,
    restarts: int | None = None,
    loss: str | None = None,
    score: str | None = None,
    early_stop: bool = True,
    targeted: str | None = None,
    seed: int = 0,
    label: str = "pgd",
    eot_iter: int = 1,
) -> NamedAttack:
    """One PGD from free settings; unset ones default to step eps/4, 100 iterations
    (``eot_iter`` draws per gradient, for a randomised model)."""
    attack = PGD(
        eps,
        parse_step(step if step is not None else "eps/4", eps),
        iters if iters is not None else 100,
        restarts or 1,
        loss=loss or "ce",
        score=score or "any",
        early_stop=early_stop,
        target_mode=targeted,
        eot_iter=eot_iter,
        seed=seed,
        stream=label,
    )
    return NamedAttack(label, attack)
