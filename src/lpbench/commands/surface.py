"""``lpbench surface``: the loss surface around one test point, models side by side."""

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
)
from lpbench.settings import Command, call_with, option, positive_int

if TYPE_CHECKING:
    from lpbench.pipelines.steps import SurfaceRun


@dataclass(frozen=True, kw_only=True)
class SurfaceSettings(DataOptions):
    """``lpbench surface``: the models, the point and the plane's grid."""

    checkpoint: str = checkpoint_argument()
    compare: list[str] = option([], "more models to draw", nargs="+", metavar="CHECKPOINT")
    point: int | None = option(
        None,
        "test-set index (default: the first point of the evaluation subset that every model "
        "classifies correctly)",
        type=int,
    )
    eps: float | None = eps_option()
    resolution: int = option(51, "grid points per axis", type=positive_int)
    seed: int = option(0, "seed of the random direction", type=int)
    dataset: str | None = dataset_option()
    out: Path | None = option(None, "PNG path (default: beside the checkpoint)", type=Path)
    pdf: bool = option(False, "also write a PDF")


def surface_lines(run: SurfaceRun) -> list[str]:
    """Each model's loss on the plane, then the point and the files written."""
    lines = [
        f"{name}: clean loss {surface.clean_loss:.4g}, on the plane "
        f"{surface.loss.min():.4g} .. {surface.loss.max():.4g}  ({raw})"
        for name, surface, raw in run.surfaces
    ]
    written = ", ".join(map(str, run.written))
    return [*lines, f"point {run.index} (label {run.label}), eps {run.eps}: {written}"]


def run(settings: SurfaceSettings) -> int:
    """Draw the surfaces; exit code 0."""
    from lpbench.pipelines.steps import surfaces_for_checkpoints

    checkpoints = [settings.checkpoint, *settings.compare]
    emit(surface_lines(call_with(surfaces_for_checkpoints, settings, checkpoints=checkpoints)))
    return 0


COMMAND = Command(
    "surface",
    "loss surface around one test point, several models side by side",
    SurfaceSettings,
    run,
    description="Cross-entropy on the plane x + a*sign(grad) + b*random_sign, a, b in "
    "[-eps, eps], drawn in 3D with contours; raw grids saved as .npz.",
)
