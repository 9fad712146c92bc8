"""``lpbench evaluate``: clean and robust accuracy of a checkpoint under an attack."""

from __future__ import annotations

import argparse
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
from lpbench.distributed import is_main_process
from lpbench.evaluation import (
    AUTO_CONTAINS_AA_BUDGET,
    DEFAULT_BUDGET,
    DEFAULT_PRESET,
    PRESETS,
    WARM_SQUARE_QUERIES,
    CustomPGD,
    EvaluationResult,
)
from lpbench.evaluation.result import summary_lines
from lpbench.evaluation.verify import RANDOMISED_RECHECKS
from lpbench.settings import Command, call_with, option, positive_int

FREE_FLAGS = "--step/--iters/--restarts/--loss/--score/--targeted/--no-early-stop"
LOCKSTEP = {"cuda": None, "on": True, "off": False}


def lockstep_choice(text: str) -> bool | None:
    """``--lockstep``: cuda (None: on CUDA devices only), on (True) or off (False)."""
    if text not in LOCKSTEP:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(LOCKSTEP)}, not {text!r}")
    return LOCKSTEP[text]


@dataclass(frozen=True, kw_only=True)
class EvaluateSettings(DataOptions):
    """``lpbench evaluate``: a preset (None: strong) or the free flags of one custom PGD."""

    checkpoint: str = checkpoint_argument()
    preset: str | None = option(
        None,
        f"attack preset (default: {DEFAULT_PRESET}: the baseline, then exhaustive auto at "
        f"{AUTO_CONTAINS_AA_BUDGET}, which runs everything aa-standard runs); strong-pgd: "
        "the baseline, then lpbench's PGD set; "
        "aa-standard: AutoAttack's standard version; auto: "
        "budgeted ladder of universal perturbations, FGSM, APGD-DLR (also through a smoothed "
        "ReLU backward pass), APGD-CE, smoothed APGD-T, FAB-T, APGD-T, Square; aa-rand: "
        "AutoAttack's version for randomised models (APGD-CE and APGD-DLR, EOT 20); with "
        "--eot-iter and no preset: aa-rand",
        choices=PRESETS,
    )
    budget: int | None = option(
        None,
        f"auto only: gradients + queries per point (default: {DEFAULT_BUDGET}; with "
        f"--exhaustive, {AUTO_CONTAINS_AA_BUDGET} or more runs everything aa-standard runs; "
        f"above {AUTO_CONTAINS_AA_BUDGET}, up to {WARM_SQUARE_QUERIES} go to a Square started "
        "from each point's nearest miss)",
        type=positive_int,
    )
    exhaustive: bool = option(
        False,
        "auto only: its APGD-T and Square run every point to the end instead of giving up "
        "points that make too little progress",
    )
    adapt: bool = option(
        False,
        "auto only: run `lpbench check` first; each probe that warns raises the budget of the "
        "attack that can expose it (recorded in the results' schedule)",
    )
    eot_iter: int | None = option(
        None,
        "the model is randomised (its logits change between identical calls): average each "
        "gradient over this many draws (EOT) in baseline, aa-rand or a custom PGD; examples "
        f"count as adversarial only when misclassified in all {RANDOMISED_RECHECKS} re-check "
        "draws",
        type=positive_int,
    )
    dataset: str | None = dataset_option()
    eps: float | None = eps_option()
    step: str | None = option(None, "custom PGD step: 0.01, 2.5/255 or eps/4 (default eps/4)")
    iters: int | None = option(None, "custom PGD iterations", type=positive_int)
    restarts: int | None = option(None, "custom PGD restarts", type=positive_int)
    loss: str | None = option(None, "custom PGD loss", choices=("ce", "margin", "dlr"))
    score: str | None = option(
        None,
        "custom PGD: a restart succeeds if its last iterate is adversarial (the paper's "
        "cleverhans baseline) or if any iterate is (default: any)",
        choices=("last", "any"),
    )
    targeted: str | None = option(
        None,
        "custom PGD towards the least-likely class or a random class fixed per point",
        choices=("ll", "random"),
    )
    no_early_stop: bool = option(False, "run every restart to the end (exact per-restart losses)")
    points: int | None = points_option(1000)
    subset_seed: int = subset_seed_option()
    seed: int = option(0, "attack seed", type=int)
    batch_size: int | None = option(
        None,
        "rows (points x restarts) per forward pass (default: 256 CPU, 8192 GPU)",
        type=positive_int,
    )
    lockstep: bool | None = option(
        None,
        "run all of a point's restarts and targets (APGD, APGD-T, FAB-T) in one batch, "
        "points grouped to fit --batch-size rows: the same results in fewer passes (faster "
        "where a pass over few rows costs about what a full one does), more gradients on "
        "points broken before their last target (the later ones go on until then); "
        "cuda (default): on CUDA only",
        type=lockstep_choice,
        metavar="{cuda,on,off}",
    )
    name: str | None = option(None, "model name in reports")
    out: Path | None = option(
        None,
        "results JSON (default beside the checkpoint: results.json for strong, "
        "results-PRESET.json for another preset, results-custom.json for an attack list)",
        type=Path,
    )
    resume: bool = option(
        False, "continue an interrupted evaluation from its journal (OUT.journal/)"
    )


def custom_pgd_settings(settings: EvaluateSettings) -> CustomPGD | None:
    """The custom PGD the free attack flags describe, or None when none is given."""
    s = settings
    free = [s.step, s.iters, s.restarts, s.loss, s.score, s.targeted]
    if all(v is None for v in free) and not s.no_early_stop:
        return None
    if s.preset is not None:
        raise ValueError(f"give either --preset or the free attack flags ({FREE_FLAGS}), not both")
    return CustomPGD(
        step=s.step,
        iters=s.iters,
        restarts=s.restarts,
        loss=s.loss,
        score=s.score,
        targeted=s.targeted,
        early_stop=not s.no_early_stop,
    )


def evaluation_lines(result: EvaluationResult, out: Path) -> list[str]:
    """The summary of an EvaluationResult (:meth:`EvaluationResult.summary`: accuracies and
    cost, one line per attack, the auto schedule, failed re-checks) and where the results
    are."""
    return [*summary_lines(result), f"results: {out}"]


def run(settings: EvaluateSettings) -> int:
    """Evaluate; only torchrun's rank 0 prints. Exit code 0."""
    from lpbench.pipelines.steps import evaluate_checkpoint

    result, out = call_with(evaluate_checkpoint, settings, custom=custom_pgd_settings(settings))
    if is_main_process():
        emit(evaluation_lines(result, out))
    return 0


COMMAND = Command(
    "evaluate",
    "attack a checkpoint on the fixed test subset",
    EvaluateSettings,
    run,
    description="Clean and worst-case robust accuracy of a checkpoint under an attack preset "
    "or a custom PGD; writes per-point JSON.",
)
