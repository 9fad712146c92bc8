"""Attack protocols per data set, as data: the radius and the attacks of each preset.

Step sizes are written in units of eps (``"eps/30"``) or as numbers, so a preset keeps
its meaning when the user picks another radius. Every attack of a preset draws its
random numbers from its own stream (its label), keyed per point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lpbench.attacks import APGD, APGDT, FAB, FGSM, PGD, SPSA, Attack, Square


@dataclass(frozen=True)
class NamedAttack:
    """An attack with the label it carries in results and tables.

    ``warm_start``: in an evaluation, start the attack on each point from the example of
    the earlier attacks with the largest margin (the nearest miss; the clean input when
    none ran); the attack must take starting points (``Attack.takes_start``).
    """

    label: str
    attack: Attack
    warm_start: bool = False

    def __post_init__(self) -> None:
        if self.warm_start and not self.attack.takes_start:
            raise ValueError(
                f"{self.label}: {type(self.attack).__name__} cannot be warm-started "
                "(it takes no starting points)"
            )

    def config(self) -> dict[str, Any]:
        """The attack's settings, with ``warm_start`` when set."""
        return self.attack.config() | ({"warm_start": True} if self.warm_start else {})


@dataclass(frozen=True)
class AttackSpec:
    """One attack of a preset: PGD settings with the step in units of eps or absolute."""

    label: str
    step: str
    iters: int
    restarts: int = 1
    loss: str = "ce"
    score: str = "any"
    targeted: str | None = None

    def build(self, eps: float, *, seed: int, max_batch: int, eot_iter: int = 1) -> NamedAttack:
        attack = PGD(
            eps,
            parse_step(self.step, eps),
            self.iters,
            self.restarts,
            loss=self.loss,
            score=self.score,
            target_mode=self.targeted,
            eot_iter=eot_iter,
            seed=seed,
            stream=self.label,
            max_batch=max_batch,
        )
        return NamedAttack(self.label, attack)


#: Attack kinds a :class:`KindSpec` can name, and the attack classes they build.
ATTACK_KINDS: dict[str, type[Attack]] = {
    "pgd": PGD,
    "apgd": APGD,
    "apgd-t": APGDT,
    "fab-t": FAB,
    "square": Square,
    "spsa": SPSA,
    "fgsm": FGSM,
}

#: Parameters that are step-like: written in units of eps (``"eps/4"``) or as numbers.
STEP_PARAMS = ("step", "lr", "delta")


@dataclass(frozen=True)
class KindSpec:
    """One attack of a preset, of any kind in :data:`ATTACK_KINDS`, with its parameters.

    ``params`` are the keyword arguments of the attack class (besides eps, seed, stream
    and max_batch); step-like ones (:data:`STEP_PARAMS`) may be written in units of eps.
    The attack draws its random numbers from its own stream: its label.
    """

    label: str
    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ATTACK_KINDS:
            raise ValueError(f"unknown attack kind {self.kind!r}; known: {', '.join(ATTACK_KINDS)}")

    @classmethod
    def of(cls, label: str, kind: str, **params: Any) -> KindSpec:
        """``KindSpec.of("apgd-ce", "apgd", iters=100, loss="ce")``."""
        return cls(label, kind, tuple(sorted(params.items())))

    def build(self, eps: float, *, seed: int, max_batch: int) -> NamedAttack:
        params = dict(self.params)
        for name in STEP_PARAMS:
            if name in params and params[name] is not None:
                params[name] = parse_step(params[name], eps)
        attack = ATTACK_KINDS[self.kind](
            eps, **params, seed=seed, stream=self.label, max_batch=max_batch
        )
        return NamedAttack(self.label, attack)


Spec = AttackSpec | KindSpec


@dataclass(frozen=True)
class DatasetProtocol:
    """A data set's default radius and attack presets (run in order, worst case kept)."""

    eps: float
    presets: dict[str, tuple[Spec, ...]] = field(default_factory=dict)
    eps_note: str = ""


def _strong_pgd(baseline: AttackSpec, *extra: AttackSpec) -> tuple[AttackSpec, ...]:
    """The baseline, then lpbench's PGD set: large and small steps, DLR loss."""
    return (
        baseline,
        AttackSpec("pgd-ce-large-step", "eps/4", 100, restarts=3),
        AttackSpec("pgd-ce-small-step", "eps/10", 100),
        AttackSpec("pgd-dlr", "eps/4", 100, restarts=3, loss="dlr"),
        *extra,
    )


#: AutoAttack's "standard" version (Croce & Hein 2020, ``fra31/auto-attack``), L-infinity:
#: APGD-CE (100 iterations, 1 restart), APGD-T (100 iterations, 9 target classes),
#: FAB-T (100 iterations, 9 target classes), Square (5000 queries, p_init 0.8).
AA_STANDARD: tuple[KindSpec, ...] = (
    KindSpec.of("apgd-ce", "apgd", iters=100, restarts=1, loss="ce"),
    KindSpec.of("apgd-t", "apgd-t", iters=100, restarts=1, targets=9),
    KindSpec.of("fab-t", "fab-t", iters=100, restarts=1, targets=9),
    KindSpec.of("square", "square", queries=5000, restarts=1, p_init=0.8),
)


def _protocol(eps: float, baseline: AttackSpec, note: str, *extra: AttackSpec) -> DatasetProtocol:
    return DatasetProtocol(
        eps=eps,
        presets={
            "baseline": (baseline,),
            "strong-pgd": _strong_pgd(baseline, *extra),
            "aa-standard": AA_STANDARD,
        },
        eps_note=note,
    )


#: The seed's baselines: PGD judged on its last iterate, one restart.
PROTOCOLS: dict[str, DatasetProtocol] = {
    "mnist": _protocol(
        0.3,
        AttackSpec("baseline", "eps/30", 40, score="last"),
        "the seed's MNIST radius; baseline PGD-40 with step 0.01",
    ),
    "mnist-digits": _protocol(
        0.3,
        AttackSpec("baseline", "eps/30", 40, score="last"),
        "MNIST's protocol on the 1,000 held-out shipped digits; baseline PGD-40, step 0.01",
    ),
    "fashion-mnist": _protocol(
        0.1,
        AttackSpec("baseline", "eps/10", 40, score="last"),
        "at 0.3 no Fashion-MNIST model keeps any accuracy; at 0.1 an undefended LeNet "
        "falls to ~4%; baseline PGD-40 with the seed's MNIST step 0.01",
    ),
    "cifar10": _protocol(
        16 / 255,
        AttackSpec("baseline", "eps/8", 10, score="last"),
        "the seed's CIFAR-10 radius; baseline PGD-10 with step 2/255",
    ),
    "tiny-imagenet": _protocol(
        16 / 255,
        AttackSpec("baseline", "eps/8", 10, score="last", targeted="ll"),
        "the seed's Tiny ImageNet radius; baseline PGD-10 with step 2/255 towards the "
        "least-likely class",
        AttackSpec("pgd-ll", "eps/4", 100, restarts=3, targeted="ll"),
    ),
}

#: For a user's own tensors, where no data set fixes the radius (eps must be given).
GENERIC = _protocol(
    float("nan"),
    AttackSpec("baseline", "eps/10", 40, score="last"),
    "no default radius: give eps",
)

#: ``auto`` is built by :func:`lpbench.evaluation.schedule.auto_schedule` (it has a budget);
#: ``strong`` is the data set's baseline, then ``auto`` at
#: :data:`lpbench.evaluation.schedule.AUTO_CONTAINS_AA_BUDGET`.
PRESETS = ("baseline", "strong", "strong-pgd", "aa-standard", "auto")
DEFAULT_EPS: dict[str, float] = {name: p.eps for name, p in PROTOCOLS.items()}


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
    """The data set's default radius."""
    return get_protocol(dataset).eps


def preset_attacks(
    preset: str,
    dataset: str | None,
    eps: float | None = None,
    *,
    seed: int = 0,
    max_batch: int = 10_000,
    budget: int | None = None,
    exhaustive: bool = False,
) -> list[NamedAttack]:
    """The attacks of ``preset`` on ``dataset``, run in order on still-robust points.

    ``baseline``: the seed's baseline (PGD judged on its last iterate, one restart).
    ``strong``: the baseline, then ``auto`` at
    :data:`lpbench.evaluation.schedule.AUTO_CONTAINS_AA_BUDGET` on the points it leaves.
    ``strong-pgd`` (what ``strong`` meant before ``auto``): the baseline, then PGD with a
    large step (eps/4, 3 restarts) and a small step (eps/10) on cross-entropy, then PGD on
    the scale-invariant DLR loss (eps/4, 3 restarts), which logit squeezing and pairing
    cannot shrink away; these count a point as broken when any iterate is adversarial. A
    point is robust only if it survives every attack and every restart. ``dataset=None``
    (a user's own data) needs ``eps``; its baseline is PGD-40 with step eps/10.
    ``aa-standard``: AutoAttack's standard version (APGD-CE, APGD-T, FAB-T, Square).
    ``auto``: the budgeted schedule of :func:`lpbench.evaluation.schedule.auto_schedule`
    (``budget`` gradients + queries per point; default
    :data:`lpbench.evaluation.schedule.DEFAULT_BUDGET`; ``exhaustive``: Square never gives
    a point up).
    """
    protocol = get_protocol(dataset)
    if eps is None and dataset is None:
        raise ValueError("give eps: there is no default radius without a data set")
    if budget is not None and preset != "auto":
        raise ValueError(f"a budget applies to the auto preset only, not {preset!r}")
    if exhaustive and preset != "auto":
        raise ValueError(f"exhaustive applies to the auto preset only, not {preset!r}")
    eps = protocol.eps if eps is None else eps
    if preset in ("auto", "strong"):
        from lpbench.evaluation.schedule import auto_schedule, strong_or_auto_budget

        schedule = auto_schedule(
            eps,
            budget=strong_or_auto_budget(preset, budget),
            seed=seed,
            max_batch=max_batch,
            exhaustive=exhaustive,
        )
        if preset == "auto":
            return schedule.attacks
        baseline = preset_attacks("baseline", dataset, eps, seed=seed, max_batch=max_batch)
        return [*baseline, *schedule.attacks]
    if preset not in protocol.presets:
        raise ValueError(f"unknown attack preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return [spec.build(eps, seed=seed, max_batch=max_batch) for spec in protocol.presets[preset]]


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
) -> NamedAttack:
    """One PGD from free settings; unset ones default to step eps/4, 100 iterations."""
    attack = PGD(
        eps,
        parse_step(step if step is not None else "eps/4", eps),
        iters if iters is not None else 100,
        restarts or 1,
        loss=loss or "ce",
        score=score or "any",
        early_stop=early_stop,
        target_mode=targeted,
        seed=seed,
        stream=label,
    )
    return NamedAttack(label, attack)


def parse_step(text: str | float, eps: float) -> float:
    """A step size as a number, a fraction ``a/b`` or a multiple of eps (``eps/4``, ``2*eps``)."""
    value = float(text) if isinstance(text, (int, float)) else _parse_step_text(text, eps)
    if not 0 < value <= 1:
        raise ValueError(f"step size {text!r} = {value:g} must be in (0, 1]")
    return value


def _parse_step_text(text: str, eps: float) -> float:
    expr = text.strip().replace(" ", "")
    factor = 1.0
    if "*" in expr:
        left, _, expr = expr.partition("*")
        factor = _number(left, text)
    if expr.startswith("eps"):
        value, rest = eps, expr[3:]
    else:
        head, _, rest = expr.partition("/")
        value, rest = _number(head, text), f"/{rest}" if rest else ""
    if rest:
        if not rest.startswith("/"):
            raise ValueError(f"cannot read step size {text!r}: use 0.01, 2.5/255 or eps/4")
        value /= _number(rest[1:], text)
    return value * factor


def _number(text: str, whole: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"cannot read step size {whole!r}: use 0.01, 2.5/255 or eps/4") from None
    if value <= 0:
        raise ValueError(f"step size {whole!r} must be positive")
    return value
