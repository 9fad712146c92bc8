"""``auto``: a budgeted ladder of attacks, each on the points still robust.

The budget is per point, in gradients + queries (forward passes without a gradient that
a white-box attack makes, e.g. on the clean input, are not charged). Every attack of the
schedule has a per-point cap, its most gradients + queries on one point, fixed when the
schedule is built; the caps add up to the budget. The attacks form one budget pool
(``NamedAttack.pooled``): what a point did not spend of an attack's cap (a run that
stopped early: a zero gradient, a point given up) is left to the Square runs at the end,
which may spend on that point their own cap plus the rest. So no point can spend more
than the budget whatever the attacks do, and the spend reported is the exact sum of what
the attacks counted. Points broken early spend less: later attacks only see the points
still robust.
The universal perturbations, when the schedule has source images for them, are a shared
cost on top: a fixed number of gradients in all (at most
:data:`UNIVERSAL_SOURCES_PER_CLASS` x classes x :data:`UNIVERSAL_ITERATIONS`: more
sources per class are never used), whatever the number of points.

With ``adapt`` (:func:`raise_budgets`), ``lpbench check`` runs first and every probe that
warns doubles one setting of the attack able to expose what it found (:data:`RAISES`);
the budget grows by exactly the caps' growth.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lpbench.attacks import APGD, FGSM, Attack, Universal
from lpbench.data import per_class_subset
from lpbench.evaluation.specs import AA_STANDARD, NamedAttack

#: Most target classes of ``auto``'s targeted attacks, and FAB-T's first share of them.
MAX_TARGETS, FIRST_FAB_TARGETS = 9, 3
#: Square's least share of the budget while the budget allows (gradient attacks stop there).
SQUARE_FLOOR = 500
#: Default per-point budget of ``auto``, in gradients + queries.
DEFAULT_BUDGET = 2000
#: Most queries of ``auto``'s warm-started Square, paid from Square's queries beyond
#: ``aa-standard``'s 5,000.
WARM_SQUARE_QUERIES = 1000
#: ``auto``'s Square gives a point up at these (queries, share) checkpoints when its margin
#: is still below ``share`` times its margin at the first query (see ``Square.give_up``).
AUTO_GIVE_UP = ((500, 0.5), (1000, 0.35), (2000, 0.2), (3000, 0.12))
#: ``auto``'s APGD-T gives up a target after 40 iterations when the point's margin has not
#: closed a tenth of its distance to the boundary (see ``APGD.give_up``).
AUTO_APGD_T_GIVE_UP = ((40, 0.9),)
#: Source images per class and iterations of ``auto``'s universal perturbations.
UNIVERSAL_SOURCES_PER_CLASS, UNIVERSAL_ITERATIONS = 5, 5
#: Step sizes of ``auto``'s iterated FGSM, as shares of eps (halved after the first step
#: and the third).
AUTO_FGSM_STEPS = (1.0, 0.5, 0.5, 0.25, 0.25, 0.25)
#: Iterations of ``auto``'s untargeted APGD on the DLR loss, run before APGD-CE.
AUTO_DLR_ITERATIONS = 50
#: Sharpness of the smoothed ReLU backward pass (see
#: :class:`~lpbench.attacks.smooth.SmoothReLUBackward`) of ``auto``'s smoothed runs: the
#: first for APGD-DLR before the plain one and for APGD-T, the second for APGD-DLR after
#: APGD-CE.
AUTO_SMOOTH_BETAS = (3.0, 1.0)
#: Target classes of ``auto``'s smoothed APGD-T (each point's top ones).
AUTO_SMOOTH_TARGETS = 3


#: Per ``check`` probe: the attack of ``auto`` a warning raises and the setting doubled.
#: Failing gradients (black-box, gradients, transfer) give Square twice the queries;
#: verdicts that depend on the start (restarts, loss-surface) give APGD-CE twice the
#: restarts; an unconverged loss (convergence, incomplete) gives it twice the iterations;
#: a baseline gap gives APGD-T twice the iterations; masking by ReLUs that are off gives
#: the first smoothed APGD-DLR twice the iterations. Other probes raise nothing.
RAISES: dict[str, tuple[str, str]] = {
    "black-box": ("square", "queries"),
    "gradients": ("square", "queries"),
    "transfer": ("square", "queries"),
    "restarts": ("apgd-ce", "restarts"),
    "loss-surface": ("apgd-ce", "restarts"),
    "convergence": ("apgd-ce", "iters"),
    "incomplete": ("apgd-ce", "iters"),
    "gap": ("apgd-t", "iters"),
    "relu-masking": (f"apgd-dlr-smooth{AUTO_SMOOTH_BETAS[0]:g}", "iters"),
}


def max_spend_per_point(attack: Attack) -> int:
    """Deprecated: use ``attack.max_spend_per_point()``."""
    warnings.warn(
        "lpbench.evaluation.schedule.max_spend_per_point(attack) is deprecated, use "
        "attack.max_spend_per_point()",
        DeprecationWarning,
        stacklevel=2,
    )
    return attack.max_spend_per_point()


#: The most ``aa-standard`` spends on one point of a 10-class model (6,910: APGD-CE 101,
#: APGD-T 9 x 101, FAB-T 9 x 100, Square 5,000).
AA_STANDARD_BUDGET = sum(
    s.build(1.0, seed=0, max_batch=1).attack.max_spend_per_point() for s in AA_STANDARD
)


def _apgd_dlr(
    eps: float, seed: int, max_batch: int, smooth_relu: float | None = None
) -> NamedAttack:
    """``auto``'s untargeted APGD on the DLR loss, on its own random stream; with
    ``smooth_relu``, through the smoothed ReLU backward pass of that sharpness."""
    label = "apgd-dlr" if smooth_relu is None else f"apgd-dlr-smooth{smooth_relu:g}"
    attack = APGD(
        eps,
        iters=AUTO_DLR_ITERATIONS,
        loss="dlr",
        smooth_relu=smooth_relu,
        seed=seed,
        stream=label,
        max_batch=max_batch,
    )
    return NamedAttack(label, attack)


def _smooth_apgd_t(apgd_t: Attack, targets: int) -> NamedAttack:
    """``auto``'s APGD-T on ``targets`` top classes through the sharper smoothing, on its
    own stream (otherwise ``aa-standard``'s APGD-T settings)."""
    label = f"apgd-t-smooth{AUTO_SMOOTH_BETAS[0]:g}"
    attack = apgd_t.replace(targets=targets, stream=label, smooth_relu=AUTO_SMOOTH_BETAS[0])
    return NamedAttack(label, attack)


def _first_rungs(
    eps: float,
    seed: int,
    max_batch: int,
    aa: dict[str, Attack],
    *,
    classes: int | None,
    smooth: bool,
) -> list[NamedAttack]:
    """The APGD runs ``auto`` always runs whole, in order: with ``smooth``, APGD-DLR through
    the sharper smoothing; APGD-DLR; APGD-CE; with ``smooth``, APGD-T on the top
    :data:`AUTO_SMOOTH_TARGETS` classes through the sharper smoothing and APGD-DLR through
    the softer one. The DLR runs need 3 classes, APGD-T 4 (``classes`` None: enough)."""
    sharp, soft = AUTO_SMOOTH_BETAS
    dlr = classes is None or classes >= 3
    targets = AUTO_SMOOTH_TARGETS if classes is None else min(AUTO_SMOOTH_TARGETS, classes - 1)
    rungs = [_apgd_dlr(eps, seed, max_batch, sharp)] if smooth and dlr else []
    rungs += [_apgd_dlr(eps, seed, max_batch)] if dlr else []
    rungs.append(NamedAttack("apgd-ce", aa["apgd-ce"]))
    if smooth and (classes is None or classes >= 4):
        rungs.append(_smooth_apgd_t(aa["apgd-t"], targets))
    rungs += [_apgd_dlr(eps, seed, max_batch, soft)] if smooth and dlr else []
    return rungs


def _contains_aa_budget() -> int:
    """``aa-standard``'s per-point maximum plus what ``auto``'s own runs add to it."""
    aa = {s.label: s.build(1.0, seed=0, max_batch=1).attack for s in AA_STANDARD}
    first = _first_rungs(1.0, 0, 1, aa, classes=None, smooth=True)
    own = [r for r in first if r.label != "apgd-ce"]
    return (
        AA_STANDARD_BUDGET + len(AUTO_FGSM_STEPS) + sum(r.attack.max_spend_per_point() for r in own)
    )


#: From this budget on, ``auto`` with ``exhaustive`` runs all of ``aa-standard`` (7,372:
#: its 6,910 and the gradients of ``auto``'s FGSM steps, APGD-DLR runs and smoothed
#: APGD-T): the budget of ``strong``'s exhaustive ``auto``.
AUTO_CONTAINS_AA_BUDGET = _contains_aa_budget()


def strong_or_auto_budget(preset: str, budget: int | None) -> int:
    """The budget of ``auto`` in ``preset``: ``budget`` or :data:`DEFAULT_BUDGET` for
    ``auto``; :data:`AUTO_CONTAINS_AA_BUDGET` for ``strong``, whose ``auto`` is exhaustive
    and so contains ``aa-standard``."""
    if preset == "strong":
        return AUTO_CONTAINS_AA_BUDGET
    return budget or DEFAULT_BUDGET


@dataclass
class Schedule:
    """The attacks of ``auto`` in the order they run, each with its per-point cap."""

    budget: int
    attacks: list[NamedAttack]
    caps: list[int]
    raised: list[dict[str, Any]] = field(default_factory=list)
    check: dict[str, Any] | None = None
    universal_skipped: str | None = None
    smooth_skipped: str | None = None

    @property
    def max_per_point(self) -> int:
        """The most one point can spend: the sum of the caps (at most the budget)."""
        return sum(self.caps)

    @property
    def shared(self) -> int:
        """Gradients spent once in all (the universal perturbations), not per point."""
        return sum(a.attack.spend for a in self.attacks if isinstance(a.attack, Universal))

    def plan(self) -> dict[str, Any]:
        """The budget and each attack's cap, JSON-serialisable; after :func:`raise_budgets`
        also the check's verdict and what it raised."""
        plan = {
            "budget_per_point": self.budget,
            "unit": "gradients + queries per point",
            "max_per_point": self.max_per_point,
            "shared": self.shared,
            **({"universal_skipped": self.universal_skipped} if self.universal_skipped else {}),
            **({"smooth_skipped": self.smooth_skipped} if self.smooth_skipped else {}),
            "attacks": [
                {"label": a.label, "cap_per_point": cap}
                for a, cap in zip(self.attacks, self.caps, strict=True)
            ],
        }
        if self.check is not None:
            plan |= {"check": self.check, "raised": self.raised}
        return plan

    def report(self, result: Any) -> dict[str, Any]:
        """The plan with what an :class:`EvaluationResult` of this schedule spent.

        Per attack: points attacked, broken and given up on, gradients + queries spent on
        the points (``spent``) and the cap times the points it attacked (the spend can
        exceed it only for Square, by what the earlier attacks left it on each point:
        ``pooled_in``, summed over the points), and
        ``shared_spent``, the gradients spent once for all points
        (the universal perturbations' sources: ``shared`` per process that computes them,
        outside the caps); in all: the points' total, its mean per point and the shared
        total, which does not depend on the number of points.
        """
        by_label = {s.label: s for s in result.attacks}
        rows, total, shared, within = [], 0, 0, True
        for named, cap in zip(self.attacks, self.caps, strict=True):
            summary = by_label[named.label]
            spent = summary.gradients - summary.shared_gradients + summary.queries
            total += spent
            shared += summary.shared_gradients
            takes_rest = named.pooled and named.attack.takes_limit
            within &= takes_rest or spent <= cap * summary.points_attacked
            rows.append(
                {
                    "label": named.label,
                    "cap_per_point": cap,
                    "points_attacked": summary.points_attacked,
                    "points_broken": summary.points_broken,
                    "points_given_up": summary.points_given_up,
                    "gradients": summary.gradients,
                    "queries": summary.queries,
                    "spent": spent,
                    "shared_spent": summary.shared_gradients,
                    "cap_total": cap * summary.points_attacked,
                    **({"pooled_in": _pooled_in(result, named.label, cap)} if takes_rest else {}),
                }
            )
        n = result.num_points
        attacked = max((r["points_attacked"] for r in rows), default=0)
        return {
            **self.plan(),
            "attacks": rows,
            "spent": total,
            "shared_spent": shared,
            "spent_per_point_mean": total / n if n else float("nan"),
            "within_budget": within
            and total <= self.budget * attacked
            and self.max_per_point <= self.budget,
        }


def _pooled_in(result: Any, label: str, cap: int) -> int:
    """What the attack ``label`` spent beyond its cap, point by point: the part of the
    budget the earlier attacks left to it."""
    spent = (r.get(label, {}).get("spent", 0) for r in result.restart_records)
    return sum(max(0, s - cap) for s in spent)


def capped_sources(
    sources: tuple[torch.Tensor, torch.Tensor], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """At most :data:`UNIVERSAL_SOURCES_PER_CLASS` images of each class of ``sources``, in
    their order: every image of a class that has no more, else those drawn with ``seed``
    (:func:`lpbench.data.per_class_subset`, so the same sources and seed always give the
    same images)."""
    images, labels = sources
    chosen = per_class_subset(labels.cpu().numpy(), UNIVERSAL_SOURCES_PER_CLASS, seed=seed)
    if len(chosen) == len(labels):
        return images, labels
    keep = torch.from_numpy(chosen)
    return images[keep.to(images.device)], labels[keep.to(labels.device)]


def auto_schedule(
    eps: float,
    *,
    budget: int = DEFAULT_BUDGET,
    seed: int = 0,
    max_batch: int = 10_000,
    num_classes: int | None = None,
    exhaustive: bool = False,
    sources: tuple[torch.Tensor, torch.Tensor] | None = None,
    smooth: bool = True,
) -> Schedule:
    """``auto`` at ``eps`` with ``budget`` gradients + queries per point.

    A ladder of attacks, each on the points still robust and each stopping on a point at
    its first adversarial iterate. With ``sources`` (labelled images, not the points
    evaluated; :func:`lpbench.evaluation.universal_sources` draws them from a data set's
    training split) it starts with per-class universal perturbations
    (:class:`~lpbench.attacks.Universal`, :data:`UNIVERSAL_ITERATIONS` steps on at most
    :data:`UNIVERSAL_SOURCES_PER_CLASS` sources of each class, drawn with ``seed`` by
    :func:`capped_sources` however many are given; a shared cost of at most
    ``UNIVERSAL_SOURCES_PER_CLASS x classes x UNIVERSAL_ITERATIONS`` gradients, whatever
    the number of points, and no gradient per point) and iterated FGSM from each point's
    universal example (:data:`AUTO_FGSM_STEPS`: up to six steps from eps down to eps / 4,
    a point stopping at its first adversarial step); without, from the clean point. On
    models without masking these break most points for about one gradient per point,
    where APGD-CE spends at least two (its random start and the step that crosses). Then
    untargeted APGD on the DLR loss (:data:`AUTO_DLR_ITERATIONS` iterations, with 3
    classes or more): on masked models it breaks many of the points APGD-CE needs long
    runs for or cannot break, for less. With ``smooth`` (the model computes ReLUs) it runs
    first through a smoothed ReLU backward pass (the forward pass exact; sharpness
    ``AUTO_SMOOTH_BETAS[0]``), which steps towards the units a masking model keeps off
    and whose true gradient is 0, then plainly; then APGD-CE (100 iterations); with
    ``smooth``, APGD-DLR through the softer smoothing (``AUTO_SMOOTH_BETAS[1]``) and
    APGD-T on the top :data:`AUTO_SMOOTH_TARGETS` classes through the sharper one (each
    run on its own random stream); FAB-T on each point's top :data:`FIRST_FAB_TARGETS`
    other classes; APGD-T (targeted DLR, top 9);
    FAB-T on the next-ranked classes up to the 9th; Square on the margin loss with exactly
    the rest, on ``aa-standard``'s fixed window schedule (so that on every point it runs
    the beginning of ``aa-standard``'s Square, or all of it and more). Queries
    beyond those 5,000 go first, up to :data:`WARM_SQUARE_QUERIES`, to a Square run before
    it that starts from each point's nearest miss of the gradient attacks (``square-warm``,
    its own random stream): a point they left just short of the boundary is often finished
    in a few hundred queries, where Square from stripes needs thousands or never gets
    there. Both Square runs give up on a point that makes too little progress
    (:data:`AUTO_GIVE_UP`), and APGD-T gives up a target on such a point
    (:data:`AUTO_APGD_T_GIVE_UP`), unless ``exhaustive``: the points that never break
    dominate the cost of a robust model, and the ones broken late have closed much of their
    margin early.
    The gradient attacks are taken in that order, each whole while it leaves Square at
    least :data:`SQUARE_FLOOR` queries (less when the budget is small); the first that
    does not fit whole gets as many targets as fit and the later ones are dropped. All
    attacks are ``pooled``: the Square runs may spend on a point, beyond their caps, what
    the earlier attacks left of theirs on it (runs that gave the point up, or ended at
    once on a zero gradient), so a point never spends more than ``budget``.

    Every attack but FGSM, the APGD-DLR runs and the smoothed APGD-T is a copy of its
    ``aa-standard`` counterpart (same settings and random stream) with fewer targets or
    queries; FAB-T's target ranks split
    over two attacks run exactly as in one. So with ``exhaustive`` at
    :data:`AUTO_CONTAINS_AA_BUDGET` or more with 10 classes ``auto`` runs each of
    ``aa-standard``'s attacks in full and leaves robust no point that ``aa-standard``
    breaks; at smaller budgets, or giving up, it trades the attacks' lengths for cost. With
    ``num_classes`` known, targets are capped at ``num_classes - 1``, APGD-T (whose
    targeted DLR loss needs four classes) is dropped below 4 classes and APGD-DLR below 3,
    with the smoothed runs.
    """
    if budget < 1:
        raise ValueError(f"budget must be a positive number of gradients + queries, got {budget}")
    aa = {s.label: s.build(eps, seed=seed, max_batch=max_batch).attack for s in AA_STANDARD}
    attacks = []
    if sources is not None:
        universal = Universal(
            eps,
            capped_sources(sources, seed),
            iters=UNIVERSAL_ITERATIONS,
            seed=seed,
            max_batch=max_batch,
        )
        attacks.append(NamedAttack("universal", universal))
    steps = [share * eps for share in AUTO_FGSM_STEPS]
    fgsm = FGSM(eps, step=steps, seed=seed, max_batch=max_batch)
    attacks.append(NamedAttack("fgsm", fgsm, warm_start=sources is not None))
    attacks += _first_rungs(eps, seed, max_batch, aa, classes=num_classes, smooth=smooth)
    first = sum(a.attack.max_spend_per_point() for a in attacks)
    left = budget - first
    if left < 1:
        firsts = ", ".join(a.label for a in attacks if a.label != "universal")
        raise ValueError(
            f"budget {budget} is too small for auto: {firsts} take {first} and "
            f"Square at least 1 more; give at least {first + 1}"
        )
    others = MAX_TARGETS if num_classes is None else min(MAX_TARGETS, num_classes - 1)
    first_fab = min(FIRST_FAB_TARGETS, others)
    apgd_t = others if num_classes is None or num_classes >= 4 else 0
    ladder = [  # label, the aa-standard attack it runs a part of, targets, ranks skipped
        ("fab-t", "fab-t", first_fab, 0),
        ("apgd-t", "apgd-t", apgd_t, 0),
        ("fab-t-more", "fab-t", others - first_fab, first_fab),
    ]
    room = left - min(SQUARE_FLOOR, left // 2 or 1)
    for label, part_of, targets, skip in ladder:
        per_target = aa[part_of].replace(targets=1).max_spend_per_point()
        fits = min(targets, room // per_target)
        if fits < 1:
            if targets:
                break
            continue
        changes: dict[str, Any] = {"targets": fits}
        if skip:
            changes["skip_targets"] = skip
        if label == "apgd-t" and not exhaustive:
            changes["give_up"] = AUTO_APGD_T_GIVE_UP
        attacks.append(NamedAttack(label, aa[part_of].replace(**changes)))
        room -= fits * per_target
        if fits < targets:
            break
    queries = budget - sum(a.attack.max_spend_per_point() for a in attacks)
    warm = min(WARM_SQUARE_QUERIES, max(0, queries - aa["square"].queries))
    for label, square_queries in (("square-warm", warm), ("square", queries - warm)):
        if square_queries:
            square = aa["square"].replace(
                queries=square_queries,
                stream=label,
                give_up=() if exhaustive else AUTO_GIVE_UP,
            )
            attacks.append(NamedAttack(label, square, warm_start=label == "square-warm"))
    attacks = [dataclasses.replace(a, pooled=True) for a in attacks]
    caps = [a.attack.max_spend_per_point() for a in attacks]
    assert sum(caps) == budget, (caps, budget)
    return Schedule(budget, attacks, caps)


def raise_budgets(
    schedule: Schedule, warned: Sequence[str], check: dict[str, Any] | None = None
) -> Schedule:
    """``schedule`` with the setting :data:`RAISES` names doubled for each probe in
    ``warned`` (once per setting), its caps recomputed and the budget their sum.

    ``raised`` gets one entry per mapped probe: the attack, the setting and the attack's
    per-point cap before and after (equal when an earlier probe already doubled it).
    ``check`` (the check's verdict) is recorded as given (an empty dict when None).
    """
    attacks = {a.label: a for a in schedule.attacks}
    done: set[tuple[str, str]] = set()
    raised = []
    for probe in warned:
        label, setting = RAISES.get(probe, ("", ""))
        if label not in attacks:
            continue
        before = attacks[label].attack.max_spend_per_point()
        if (label, setting) not in done:
            attack = attacks[label].attack
            doubled = attack.replace(**{setting: 2 * getattr(attack, setting)})
            attacks[label] = dataclasses.replace(attacks[label], attack=doubled)
            done.add((label, setting))
        after = attacks[label].attack.max_spend_per_point()
        raised.append(
            {"probe": probe, "attack": label, "setting": setting, "from": before, "to": after}
        )
    named = list(attacks.values())
    caps = [a.attack.max_spend_per_point() for a in named]
    return Schedule(
        sum(caps),
        named,
        caps,
        raised,
        check or {},
        schedule.universal_skipped,
        schedule.smooth_skipped,
    )
