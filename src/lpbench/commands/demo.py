"""``lpbench demo``: the zoo's models (or fresh ones) under baseline and strong attacks."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

from lpbench.commands._options import DataOptions, dataset_option, eps_option
from lpbench.pipelines.demo import FULL, QUICK, ZOO_DATASET, DemoSettings, DemoSizes, run_demo
from lpbench.settings import Command, call_with, option, positive_int

#: DemoSettings' defaults, the ones the options show.
_DEFAULT = {item.name: item.default for item in fields(DemoSettings)}


def _size(name: str, what: str) -> str:
    """Help of a size option: what it sets, its default and its --full value."""
    return f"{what} (default: {getattr(QUICK, name)}; {getattr(FULL, name)} with --full)"


@dataclass(frozen=True, kw_only=True)
class DemoCommandSettings(DataOptions):
    """``lpbench demo``: DemoSettings as options, and the run folder."""

    train: bool = option(_DEFAULT["train"], "train fresh Plain, CLP and LSQ models instead")
    dataset: str | None = dataset_option(
        f"default: {ZOO_DATASET} (the zoo's), fashion-mnist with --train"
    )
    epochs: int = option(_DEFAULT["epochs"], "--train only: epochs per model", type=positive_int)
    eps: float | None = eps_option("default: data set's")
    full: bool = option(False, f"the full-size run: {FULL.flags()}")
    points: int | None = option(None, _size("points", "evaluation subset size"), type=positive_int)
    train_points: int | None = option(
        _DEFAULT["train_points"], "train on a fixed subset", type=positive_int
    )
    seed: int = option(_DEFAULT["seed"], "seed of training and attacks", type=int)
    restarts: int | None = option(
        None, _size("restarts", "restarts of the histogram study"), type=positive_int
    )
    restart_points: int | None = option(
        None, _size("restart_points", "points of the histogram study"), type=positive_int
    )
    grid_points: int | None = option(
        None, _size("grid_points", "points of the step x iters grid"), type=positive_int
    )
    out: Path | None = option(None, "run folder (default runs/demo-TIME)", type=Path)


def run(settings: DemoCommandSettings) -> int:
    """Run the demo, printing each step as it goes; exit code 0."""
    out = settings.out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    base = FULL if settings.full else QUICK
    given = {item.name: getattr(settings, item.name) for item in fields(DemoSizes)}
    sizes = replace(base, **{name: value for name, value in given.items() if value is not None})
    demo = call_with(DemoSettings, settings, out=out, **vars(sizes))
    run_demo(demo, echo=lambda line: print(line, flush=True))
    return 0


COMMAND = Command(
    "demo",
    "the zoo's Plain, CLP, LSQ and AT models: baseline vs strong, figures, report",
    DemoCommandSettings,
    run,
    description="Evaluate the model zoo's LeNets (MNIST digits shipped with lpbench) with the "
    "baseline and the strong attack, draw restart histograms, step x iterations grids and "
    "loss surfaces, write report.html and report.md. The default sizes take under two minutes on "
    "two CPU cores; --full is the full-size run (about 5 minutes); a size option given "
    "wins over both. --train trains fresh Plain, CLP and LSQ models instead.",
)
