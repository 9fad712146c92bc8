"""``lpbench grid``: robust accuracy over step sizes x iteration counts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from lpbench.pipelines.steps import GridRun


@dataclass(frozen=True, kw_only=True)
class GridSettings(DataOptions):
    """``lpbench grid``: the steps and iteration counts, and the PGD they run."""

    checkpoint: str = checkpoint_argument()
    steps: list[str] = option(
        ["eps/40", "eps/20", "eps/10", "eps/4", "eps/2", "eps"],
        "step sizes as numbers, fractions (2.5/255) or multiples of eps (eps/4); shown on the "
        "axis as written",
        nargs="+",
    )
    iters: list[int] = option(
        [10, 20, 50, 100, 200], "iteration counts", nargs="+", type=positive_int
    )
    step_unit: str = option("", "unit named on the step axis, e.g. 1/255")
    restarts: int = option(1, "PGD restarts", type=positive_int)
    loss: str = option("ce", "PGD loss", choices=("ce", "margin", "dlr"))
    eps: float | None = eps_option()
    points: int | None = points_option(1000)
    subset_seed: int = subset_seed_option()
    seed: int = option(0, "attack seed (same start for every step)", type=int)
    batch_size: int | None = option(
        None, "rows (points x restarts) per forward pass", type=positive_int
    )
    dataset: str | None = dataset_option()
    out: Path | None = option(None, "PNG path; .npz and .json beside it", type=Path)
    pdf: bool = option(False, "also write a PDF")


def grid_lines(run: GridRun) -> list[str]:
    """The accuracy table (rows: step, columns: iterations), its cost and the files."""
    grid, labels = run.grid, run.step_labels
    width = max(len(t) for t in labels)
    lines = [
        f"robust accuracy of {run.name} on {grid.num_points} points "
        "(rows: step, columns: iterations)",
        " " * width + "".join(f"{k:>8}" for k in grid.iters),
    ]
    for label, row in zip(labels, grid.accuracy, strict=True):
        lines.append(f"{label:>{width}}" + "".join(f"{v:8.1%}" for v in row))
    bound = "" if grid.restarts == 1 else "at least "
    lines.append(
        f"cost {grid.grad_evals:,} gradient evaluations (one early-stopped run per cell would "
        f"take {bound}{grid.naive_grad_evals:,}), {grid.wall_time_s:.1f} s; "
        + ", ".join(map(str, run.written))
    )
    return lines


def run(settings: GridSettings) -> int:
    """Compute and draw the grid; exit code 0."""
    from lpbench.pipelines.steps import grid_for_checkpoint

    emit(grid_lines(call_with(grid_for_checkpoint, settings)))
    return 0


COMMAND = Command(
    "grid",
    "robust accuracy over step sizes x iteration counts (heatmap)",
    GridSettings,
    run,
    description="One PGD run of max(--iters) iterations per step size, read off at every "
    "smaller count: the grid costs max(iters) x steps gradient evaluations.",
)
