"""What ``lpbench check`` reports: one :class:`Finding` per probe and the
:class:`CheckReport` that gathers them with the verdict and exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Exit codes of ``lpbench check``: no warning, warnings (masking suspected).
CLEAN, SUSPECT = 0, 1


class NothingToCheck(ValueError):
    """The model classifies none of the points correctly: no probe can run."""


@dataclass
class Finding:
    """One probe's outcome: ``ok`` or a warning, a sentence and the numbers behind it."""

    probe: str
    ok: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'WARN'} {self.probe:<15} {self.message}"


@dataclass
class CheckReport:
    """All findings, the accuracies each attack left and the eps sweep."""

    eps: float
    points: int
    correct: int
    findings: list[Finding]
    accuracy: dict[str, float]
    sweep: list[tuple[float, float]]
    cost: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The eps-sweep figure, when a pipeline drew one (``lpbench check`` does).
    figure: Path | None = None

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    @property
    def exit_code(self) -> int:
        """0 when every probe passed, 1 when any warned (masking or a failed attack)."""
        return SUSPECT if self.warnings else CLEAN

    @property
    def verdict(self) -> str:
        if not self.warnings:
            return (
                f"verdict: clean: {len(self.findings)} probes found no sign of gradient "
                "masking or attack failure (no proof of robustness)"
            )
        names = ", ".join(f.probe for f in self.warnings)
        randomised = any(
            f.probe == "randomness" and f.evidence.get("randomised") for f in self.findings
        )
        stronger = (
            "--preset aa-rand or --eot-iter N: the model is randomised"
            if randomised
            else "--preset auto or aa-standard"
        )
        return (
            f"verdict: MASKING SUSPECTED: {len(self.warnings)} of {len(self.findings)} "
            f"probes warn ({names}); do not trust robust accuracies from gradient attacks "
            f"on this model without stronger attacks (try {stronger})"
        )

    def lines(self) -> list[str]:
        head = (
            f"check at eps {self.eps:g}: {self.correct} of {self.points} points classified "
            "correctly; accuracies below are over those"
        )
        accs = "  ".join(f"{k} {v:.1%}" for k, v in self.accuracy.items())
        return [head, f"robust accuracy: {accs}", *(f.line() for f in self.findings), self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "eps": self.eps,
            "points": self.points,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "sweep": [{"eps": e, "robust_accuracy": a} for e, a in self.sweep],
            "findings": [vars(f) for f in self.findings],
            "warnings": len(self.warnings),
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "cost": self.cost,
            "figure": None if self.figure is None else str(self.figure),
        }
