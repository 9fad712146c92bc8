"""``lpbench plot-training``: the training curve of a run as a PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lpbench.commands._options import emit
from lpbench.settings import Command, option, positional


@dataclass(frozen=True, kw_only=True)
class PlotTrainingSettings:
    """``lpbench plot-training RUN``: the run and the figure's path and title."""

    run: str = positional("run folder or its train_log.jsonl")
    out: Path | None = option(None, "PNG (default RUN/training.png)", type=Path)
    title: str | None = option(None, "figure title (default: the run's name)")


def run(settings: PlotTrainingSettings) -> int:
    """Draw the curve; print the PNG's path. Exit code 0."""
    from lpbench.training import plot_training, read_log

    folder = Path(settings.run)
    out = settings.out or (folder if folder.is_dir() else folder.parent) / "training.png"
    emit([str(plot_training(read_log(folder), out, title=settings.title or folder.name))])
    return 0


COMMAND = Command(
    "plot-training",
    "training curve of a run (accuracies, loss terms per epoch) as a PNG",
    PlotTrainingSettings,
    run,
)
