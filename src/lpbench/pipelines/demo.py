"""``lpbench demo``: train Plain, CLP and LSQ, evaluate, draw the figures, write a report.

Built on the Python API (:mod:`lpbench.pipelines.steps`); before each step it prints the
``lpbench`` command that does the same thing alone, so any step can be re-run by hand.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lpbench.evaluation import custom_pgd, default_eps
from lpbench.pipelines import steps
from lpbench.reporting import render_text
from lpbench.training import TrainConfig, get_train_preset, train

#: The seed's first three rows, trained and compared by the demo.
DEMO_PRESETS = ("plain", "clp", "lsq")


@dataclass(frozen=True)
class DemoSettings:
    """What the demo trains and measures (the ``lpbench demo`` flags)."""

    out: Path
    dataset: str = "fashion-mnist"
    epochs: int = 1
    eps: float | None = None
    points: int = 1000
    train_points: int | None = None
    seed: int = 0
    restarts: int = 32
    restart_points: int = 20
    grid_points: int = 100
    data_dir: Path | None = None
    device: str = "auto"
    show_progress: bool = True


def run_demo(settings: DemoSettings, echo: Callable[[str], None] = print) -> Path:
    """Run every step of the demo into ``settings.out``; return the report's path."""
    s = settings
    run = s.out
    eps = s.eps if s.eps is not None else default_eps(s.dataset)
    started = time.perf_counter()
    q = shlex.quote
    shared = f"--device {q(s.device)}" + ("" if s.show_progress else " --no-progress")
    if s.data_dir:
        shared += f" --data-dir {q(str(s.data_dir))}"
    common = {"data_dir": s.data_dir, "device": s.device, "show_progress": s.show_progress}
    figures = run / "figures"
    for preset in DEMO_PRESETS:
        folder = run / preset
        subset = "" if s.train_points is None else f" --train-points {s.train_points}"
        echo(f"== {preset}: training {s.epochs} epoch(s) on {s.dataset}")
        echo(
            f"$ lpbench train --dataset {s.dataset} --preset {preset} --epochs {s.epochs} "
            f"--seed {s.seed}{subset} --out {q(str(folder))} --resume {shared}"
        )
        config = TrainConfig(
            dataset=s.dataset,
            objective=get_train_preset(preset),
            preset=preset,
            epochs=s.epochs,
            seed=s.seed,
            train_points=s.train_points,
        )
        train(
            config,
            folder,
            data_dir=s.data_dir,
            device=s.device,
            resume=True,
            show_progress=s.show_progress,
        )

        echo(f"== {preset}: baseline and strong attacks on {s.points} test points")
        echo(
            f"$ lpbench evaluate {q(str(folder))} --preset strong --eps {eps} "
            f"--points {s.points} --name {preset} --resume {shared}"
        )
        result, _ = steps.evaluate_checkpoint(
            folder,
            preset="strong",
            eps=eps,
            points=s.points,
            name=preset,
            resume=True,
            **common,
        )
        echo(f"   clean {result.clean_accuracy:.1%}, robust {result.robust_accuracy:.1%}")

        echo(f"== {preset}: restart study, histograms and step x iterations grid")
        study = folder / "restarts.json"
        echo(
            f"$ lpbench evaluate {q(str(folder))} --eps {eps} --step eps/4 --iters 40 "
            f"--restarts {s.restarts} --no-early-stop --points {s.restart_points} "
            f"--name {preset} --out {q(str(study))} --resume {shared}"
        )
        attack = custom_pgd(eps, step="eps/4", iters=40, restarts=s.restarts, early_stop=False)
        steps.evaluate_checkpoint(
            folder,
            attacks=[attack],
            eps=eps,
            points=s.restart_points,
            name=preset,
            out=study,
            resume=True,
            **common,
        )
        histograms = figures / f"histograms-{preset}.png"
        echo(f"$ lpbench histogram {q(str(study))} --out {q(str(histograms))}")
        hist = steps.histograms_for_results(study, out=histograms)
        curve = hist.summary.curve
        echo(
            f"   robust accuracy on {s.restart_points} points: {curve[0]:.1%} with 1 restart, "
            f"{curve[-1]:.1%} with {len(curve)}"
        )
        grid = figures / f"grid-{preset}.png"
        echo(
            f"$ lpbench grid {q(str(folder))} --eps {eps} --points {s.grid_points} "
            f"--steps eps/20 eps/10 eps/4 eps/2 eps --iters 5 10 20 50 "
            f"--out {q(str(grid))} {shared}"
        )
        cells = steps.grid_for_checkpoint(
            folder,
            steps=["eps/20", "eps/10", "eps/4", "eps/2", "eps"],
            iters=[5, 10, 20, 50],
            eps=eps,
            points=s.grid_points,
            out=grid,
            **common,
        ).grid
        echo(
            f"   grid: robust accuracy {cells.accuracy.min():.1%} .. {cells.accuracy.max():.1%}, "
            f"{cells.grad_evals:,} gradients (one run per cell: {cells.naive_grad_evals:,})"
        )
    folders = [run / preset for preset in DEMO_PRESETS]
    surface = figures / "surface.png"
    echo(
        f"$ lpbench surface {' '.join(q(str(f)) for f in folders[:1])} --compare "
        f"{' '.join(q(str(f)) for f in folders[1:])} --eps {eps} --out {q(str(surface))} "
        f"{shared}"
    )
    planes = steps.surfaces_for_checkpoints(folders, eps=eps, out=surface, **common)
    for name, plane, _ in planes.surfaces:
        echo(
            f"   {name}: loss {plane.loss.min():.3g} .. {plane.loss.max():.3g} on the plane "
            f"around point {planes.index}"
        )
    title = (
        f"lpbench demo: LeNet on {s.dataset}, eps {eps}, {s.epochs} epoch(s), "
        f"{s.points} test points"
    )
    echo(f"$ lpbench report {q(str(run))} --title {q(title)}")
    rows, written = steps.report_for([run], title=title)
    echo("")
    echo(render_text(rows))
    echo(f"\ntotal time {time.perf_counter() - started:.0f} s; report: {written['markdown']}")
    return written["markdown"]
