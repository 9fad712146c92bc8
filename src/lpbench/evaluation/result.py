"""What an evaluation returns: per-attack summaries and the per-point result, its JSON
form and the adversarial examples stored beside it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from lpbench.io import atomic_write, write_json


def _deprecated_grad_evals(value: int) -> int:
    warnings.warn(
        "grad_evals is deprecated: use gradients (results files keep the key 'grad_evals')",
        DeprecationWarning,
        stacklevel=3,
    )
    return value


@dataclass
class AttackSummary:
    """What one attack of an evaluation did (cost and time summed over processes);
    ``gradients``: gradient evaluations (written as ``"grad_evals"`` in results files, the
    key every results file already written uses); ``forward_evals``: the attack's forward
    passes, those with a gradient included; ``verification_forwards``: the forward passes
    that re-checked its adversarial examples; ``shared_gradients`` / ``shared_forwards``:
    the part of its cost spent once for all points (a universal perturbation's sources);
    ``points_given_up``: points a run stopped on early for too little progress."""

    label: str
    config: dict[str, Any]
    points_attacked: int
    points_broken: int
    robust_accuracy_after: float
    mean_over_restarts_accuracy: float | None
    gradients: int
    forward_evals: int
    queries: int
    wall_time_s: float
    verification_mismatches: int = 0
    points_given_up: int = 0
    verification_forwards: int = 0
    shared_gradients: int = 0
    shared_forwards: int = 0

    @property
    def grad_evals(self) -> int:
        """Deprecated name of :attr:`gradients`."""
        return _deprecated_grad_evals(self.gradients)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with the gradient count under the results files' ``"grad_evals"``."""
        return {("grad_evals" if k == "gradients" else k): v for k, v in vars(self).items()}


@dataclass
class EvaluationResult:
    """Clean and worst-case robust accuracy on a fixed set of points, with per-point records.

    ``verification_mismatches`` lists the data-set indices whose adversarial example was
    not adversarial when the model was re-run on it (numerical non-determinism); those
    points count as robust. ``smoothing`` (only when an attack ran through the smoothed
    ReLU backward pass): the model's ReLU-like calls in one forward pass, smoothed and not,
    per form. ``forwards_outside_attacks``: the forward passes the evaluation made itself,
    by step (``clean``: the points' clean inputs; ``final_check``: the last re-check of the
    examples, from which their final predictions are read; ``full_test``: the whole test split's
    clean accuracy, when a data set was evaluated; ``preflight``: the checks of the model
    before any attack).
    """

    indices: list[int]
    labels: list[int]
    clean_pred: list[int]
    adv_pred: list[int]
    robust: list[bool]
    broken_by: list[str | None]
    restart_records: list[dict[str, dict[str, Any]]]
    attacks: list[AttackSummary]
    eps: float
    x_adv: torch.Tensor
    clean_time_s: float
    verified_points: int
    verification_mismatches: list[int] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    smoothing: dict[str, Any] | None = None
    forwards_outside_attacks: dict[str, int] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return len(self.indices)

    @property
    def clean_accuracy(self) -> float:
        if not self.indices:
            return float("nan")
        correct = sum(p == y for p, y in zip(self.clean_pred, self.labels, strict=True))
        return correct / self.num_points

    @property
    def robust_accuracy(self) -> float:
        return sum(self.robust) / self.num_points if self.indices else float("nan")

    @property
    def gradients(self) -> int:
        """Gradient evaluations of every attack (``"grad_evals"`` in results files)."""
        return sum(a.gradients for a in self.attacks)

    @property
    def grad_evals(self) -> int:
        """Deprecated name of :attr:`gradients`."""
        return _deprecated_grad_evals(self.gradients)

    @property
    def queries(self) -> int:
        return sum(a.queries for a in self.attacks)

    @property
    def forwards(self) -> int:
        """Every forward pass of the evaluation: the attacks' own (those with a gradient
        included), their re-checks and :attr:`forwards_outside_attacks`."""
        attacks = sum(a.forward_evals + a.verification_forwards for a in self.attacks)
        return attacks + sum(self.forwards_outside_attacks.values())

    def cost(self) -> dict[str, Any]:
        """What the evaluation cost, in rows: the totals; ``shared``, what was spent once
        for all points (the universal perturbations' source images, the pre-flight's
        checks), whatever the number of points; ``per_point``, the rest (the whole test
        split's clean pass left out) divided by the number of points; the forward passes
        by step."""
        n = self.num_points
        preflight = self.forwards_outside_attacks.get("preflight", 0)
        shared = {
            "gradients": sum(a.shared_gradients for a in self.attacks),
            "forwards": sum(a.shared_forwards for a in self.attacks) + preflight,
        }
        points = {
            "gradients": self.gradients - shared["gradients"],
            "forwards": self.forwards
            - shared["forwards"]
            - self.forwards_outside_attacks.get("full_test", 0),
            "queries": self.queries,
        }
        return {
            "gradients": self.gradients,
            "forwards": self.forwards,
            "queries": self.queries,
            "shared": shared,
            "per_point": {k: v / n if n else float("nan") for k, v in points.items()},
            "forwards_by_step": {
                "attacks": sum(a.forward_evals for a in self.attacks),
                "verification": sum(a.verification_forwards for a in self.attacks),
                **self.forwards_outside_attacks,
            },
        }

    @property
    def wall_time_s(self) -> float:
        return self.clean_time_s + sum(a.wall_time_s for a in self.attacks)

    def __repr__(self) -> str:
        """One short line (the dataclass's own would print every tensor and record)."""
        preset = self.meta.get("preset")
        shown = "" if preset is None else f", preset={preset!r}"
        return (
            f"EvaluationResult(points={self.num_points}, clean={self.clean_accuracy:.1%}, "
            f"robust={self.robust_accuracy:.1%}{shown}, eps={self.eps:g}, "
            f"gradients={self.gradients:,}, queries={self.queries:,})"
        )

    def summary(self) -> str:
        """A few lines for people: clean and robust accuracy, eps, points and cost, then the
        robust accuracy after each attack with what it attacked and spent, ``auto``'s
        schedule and the examples that failed the re-check (:func:`summary_lines`)."""
        return "\n".join(summary_lines(self))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: summary first, then one record per point."""
        first = self.attacks[0] if self.attacks else None
        points = [
            {
                "index": i,
                "label": y,
                "clean_pred": c,
                "adv_pred": a,
                "robust": r,
                "broken_by": b,
                "attacks": rec,
            }
            for i, y, c, a, r, b, rec in zip(
                self.indices,
                self.labels,
                self.clean_pred,
                self.adv_pred,
                self.robust,
                self.broken_by,
                self.restart_records,
                strict=True,
            )
        ]
        return {
            **self.meta,
            "eps": self.eps,
            "num_points": self.num_points,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "mean_over_restarts_accuracy": first.mean_over_restarts_accuracy if first else None,
            "grad_evals": self.gradients,  # the key of every results file already written
            "queries": self.queries,
            "forwards": self.forwards,
            "cost": self.cost(),
            "wall_time_s": self.wall_time_s,
            "verification": {
                "adversarial_points_rechecked": self.verified_points,
                "mismatches": len(self.verification_mismatches),
                "mismatched_indices": self.verification_mismatches,
                "rule": "a stored example counts only if, re-run, it is misclassified, within "
                "the eps-ball and in [0, 1]; a mismatch counts the point as robust",
            },
            "attacks": [a.to_dict() for a in self.attacks],
            **({"smoothing": self.smoothing} if self.smoothing is not None else {}),
            "subset_indices": self.indices,
            "points": points,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (JSON) and, beside it, the adversarial examples (safetensors)."""
        path = Path(path)
        adv_path = path.with_suffix(".adv.safetensors")
        broken = torch.tensor([not r for r in self.robust], dtype=torch.bool)
        tensors = {
            "indices": torch.tensor(self.indices, dtype=torch.int64)[broken],
            "x_adv": self.x_adv[broken].contiguous().cpu(),
        }
        atomic_write(adv_path, lambda tmp: save_file(tensors, str(tmp)))
        data = self.to_dict()
        data["adversarial_examples"] = adv_path.name
        return write_json(path, data)


def summary_lines(result: Any) -> list[str]:
    """The lines of :meth:`EvaluationResult.summary` for ``result`` (an EvaluationResult or
    anything with its attributes): what ``lpbench evaluate`` prints."""
    cost = f"{result.gradients:,} gradient evaluations"
    if result.queries:
        cost += f", {result.queries:,} queries"
    cost += f", {result.forwards:,} forward passes"
    shared = sum(a.shared_gradients for a in result.attacks)
    if shared:
        cost += f"; {shared:,} of the gradients shared by all points"
    lines = [
        f"clean accuracy {result.clean_accuracy:.1%}, robust accuracy "
        f"{result.robust_accuracy:.1%} at eps {result.eps} over {result.num_points} points "
        f"({cost}, {result.wall_time_s:.1f} s)"
    ]
    for summary in result.attacks:
        given_up = f", {summary.points_given_up} given up" if summary.points_given_up else ""
        if summary.queries and not summary.gradients:  # a score-based (black-box) attack
            spent = f"{summary.queries:,} queries"
        else:
            spent = f"{summary.gradients:,} grad evals"
        spent += f", {summary.forward_evals + summary.verification_forwards:,} forward passes"
        if "score" in summary.config:
            spent += f", {summary.config['score']}-iterate scoring"
        lines.append(
            f"  after {summary.label:<20} {summary.robust_accuracy_after:6.1%}  "
            f"({summary.points_attacked} points attacked{given_up}, {spent})"
        )
    schedule = result.meta.get("schedule")
    if schedule is not None:
        lines += _schedule_lines(schedule)
    randomised = result.meta.get("randomised")
    if randomised is not None:
        draws = "/".join(str(d) for d in randomised["eot_iter"])
        lines.append(
            f"  randomised model: {draws} draws per gradient (EOT); an example counts only "
            f"if all {randomised['rechecks']} re-check draws misclassify it"
        )
    if result.verification_mismatches:
        lines.append(
            f"  {len(result.verification_mismatches)} adversarial example(s) failed the "
            "re-check and count as robust: data-set indices "
            f"{result.verification_mismatches[:20]}"
        )
    return lines


def _schedule_lines(schedule: dict[str, Any]) -> list[str]:
    """The auto preset's budget, what it spent and skipped, and what the check raised."""
    shared = (
        f" (and {schedule['shared_spent']:,} in all for the universal perturbations)"
        if schedule.get("shared_spent")
        else ""
    )
    lines = [
        f"  auto budget {schedule['budget_per_point']:,} gradients + queries per point{shared}"
        f"; spent {schedule['spent']:,} in all, {schedule['spent_per_point_mean']:.1f} "
        "per point on average"
    ]
    if schedule.get("universal_skipped"):
        lines.append(f"  universal perturbations skipped: {schedule['universal_skipped']}")
    if schedule.get("smooth_skipped"):
        lines.append(f"  smoothed APGD-DLR runs skipped: {schedule['smooth_skipped']}")
    if "check" in schedule:
        lines.append(f"  {schedule['check']['verdict']}")
    for r in schedule.get("raised", []):
        lines.append(
            f"  {r['probe']} warned: {r['attack']} {r['setting']} raised, cap "
            f"{r['from']:,} -> {r['to']:,} per point"
        )
    return lines


def load_adversarial(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The (indices, x_adv) stored beside a results file."""
    tensors = load_file(str(path))
    return tensors["indices"], tensors["x_adv"]
