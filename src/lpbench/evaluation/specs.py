"""Attacks as data: :class:`NamedAttack`, the specs presets are written in
(:class:`AttackSpec`, :class:`KindSpec`), the attack kinds, step sizes in units of eps
(:func:`parse_step`) and AutoAttack's standard and randomised versions
(:data:`AA_STANDARD`, :data:`AA_RAND`).

Imports only :mod:`lpbench.attacks`: the presets (:mod:`lpbench.evaluation.protocol`) and
``auto``'s ladder (:mod:`lpbench.evaluation.schedule`) both build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lpbench.attacks import APGD, APGDT, FAB, FGSM, PGD, SPSA, Attack, Square


@dataclass(frozen=True)
class NamedAttack:
    """An attack with the label it carries in results and tables.

    ``warm_start``: in an evaluation, start the attack on each point from the example of
    the earlier attacks with the largest margin (the nearest miss; the clean input when
    none ran); the attack must take starting points (``Attack.takes_start``).

    ``pooled``: the attack belongs to the evaluation's budget pool, whose attacks share a
    per-point budget, the sum of their caps (``max_spend_per_point``). An attack of the
    pool that takes a per-point limit (``Attack.takes_limit``, e.g. Square) may spend on
    each point its own cap plus what the earlier attacks of the pool left of theirs on
    that point (a point a gradient attack stopped on early keeps the rest for Square), so
    no point spends more than the pool's budget.
    """

    label: str
    attack: Attack
    warm_start: bool = False
    pooled: bool = False

    def __post_init__(self) -> None:
        if self.warm_start and not self.attack.takes_start:
            raise ValueError(
                f"{self.label}: {type(self.attack).__name__} cannot be warm-started "
                "(it takes no starting points)"
            )
        if self.pooled:
            self.attack.max_spend_per_point()  # raises for an attack without a per-point cap

    def config(self) -> dict[str, Any]:
        """The attack's settings, with ``warm_start`` and ``pooled`` when set."""
        return (
            self.attack.config()
            | ({"warm_start": True} if self.warm_start else {})
            | ({"pooled": True} if self.pooled else {})
        )


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

    def build(
        self, eps: float, *, seed: int, max_batch: int, eot_iter: int | None = None
    ) -> NamedAttack:
        """The PGD at radius ``eps``, ``eot_iter`` (None: 1) draws per gradient."""
        attack = PGD(
            eps,
            parse_step(self.step, eps),
            self.iters,
            self.restarts,
            loss=self.loss,
            score=self.score,
            target_mode=self.targeted,
            eot_iter=eot_iter or 1,
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

    def build(
        self, eps: float, *, seed: int, max_batch: int, eot_iter: int | None = None
    ) -> NamedAttack:
        """The attack at radius ``eps``; ``eot_iter`` (when given) replaces its EOT draws."""
        params = dict(self.params)
        if eot_iter is not None:
            params["eot_iter"] = eot_iter
        for name in STEP_PARAMS:
            if name in params and params[name] is not None:
                params[name] = parse_step(params[name], eps)
        attack = ATTACK_KINDS[self.kind](
            eps, **params, seed=seed, stream=self.label, max_batch=max_batch
        )
        return NamedAttack(self.label, attack)


Spec = AttackSpec | KindSpec


#: AutoAttack's "standard" version (Croce & Hein 2020, ``fra31/auto-attack``), L-infinity:
#: APGD-CE (100 iterations, 1 restart), APGD-T (100 iterations, 9 target classes),
#: FAB-T (100 iterations, 9 target classes), Square (5000 queries, p_init 0.8, the fixed
#: window schedule: AutoAttack builds its Square with ``resc_schedule=False``).
AA_STANDARD: tuple[KindSpec, ...] = (
    KindSpec.of("apgd-ce", "apgd", iters=100, restarts=1, loss="ce"),
    KindSpec.of("apgd-t", "apgd-t", iters=100, restarts=1, targets=9),
    KindSpec.of("fab-t", "fab-t", iters=100, restarts=1, targets=9),
    KindSpec.of("square", "square", queries=5000, restarts=1, p_init=0.8, window_schedule="fixed"),
)


#: AutoAttack's version for randomised defenses ("rand"), L-infinity: APGD-CE and
#: APGD-DLR, 100 iterations, 1 restart, each gradient averaged over 20 draws (EOT).
AA_RAND: tuple[KindSpec, ...] = (
    KindSpec.of("apgd-ce", "apgd", iters=100, restarts=1, loss="ce", eot_iter=20),
    KindSpec.of("apgd-dlr", "apgd", iters=100, restarts=1, loss="dlr", eot_iter=20),
)


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
