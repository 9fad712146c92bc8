"""``lpbench check``: cheap probes for gradient masking; exit code 1 when any warns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lpbench.commands._options import (
    DataOptions,
    checkpoint_argument,
    dataset_option,
    emit,
    eps_option,
    points_option,
    subset_seed_option,
)
from lpbench.settings import Command, call_with, option, positive_int


@dataclass(frozen=True, kw_only=True)
class CheckSettings(DataOptions):
    """``lpbench check``: the probes' points, budgets and the randomised-model settings."""

    checkpoint: str = checkpoint_argument()
    dataset: str | None = dataset_option()
    eps: float | None = eps_option()
    points: int | None = points_option(200)
    subset_seed: int = subset_seed_option()
    seed: int = option(0, "attack seed", type=int)
    iters: int = option(50, "iterations of the APGD probes", type=positive_int)
    restarts: int = option(5, "PGD restarts of the restart probe", type=positive_int)
    queries: int = option(1000, "Square's queries", type=positive_int)
    surrogate: str | None = option(
        None,
        "checkpoint of the same data set to transfer APGD-CE examples from (transfer probe; "
        "skipped without one)",
    )
    eot_iter: int = option(
        10,
        "randomised models: draws averaged per gradient in every gradient attack",
        type=positive_int,
    )
    reevals: int = option(
        10,
        "randomised models: evaluations of each final example (broken only if misclassified "
        "in all)",
        type=positive_int,
    )
    out: Path | None = option(
        None,
        "eps sweep PNG; the report goes beside it as JSON (default: check.png beside the "
        "checkpoint)",
        type=Path,
    )


def run(settings: CheckSettings) -> int:
    """Run the probes and print them; 0 when every probe passes, 1 when any warns."""
    from lpbench.pipelines.steps import check_checkpoint

    report = call_with(check_checkpoint, settings)
    emit(report.lines())
    emit([f"eps sweep: {report.figure}  report: {report.figure.with_suffix('.json')}"])
    return report.exit_code


COMMAND = Command(
    "check",
    "cheap probes for gradient masking; exit code 1 when any warns",
    CheckSettings,
    run,
    description="Probe a checkpoint for gradient masking and attack failure: baseline vs "
    "stronger attacks, black-box vs white-box, restarts, input gradients, logit size, "
    "eps = 1, FGSM vs iterative, an eps sweep (PNG) and the indicators of Pintor et al. 2022. "
    "Prints each probe with its evidence and a verdict; exits 0 when every probe passes, 1 "
    "when any warns, 2 on a usage error.",
)
