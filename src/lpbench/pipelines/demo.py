"""``lpbench demo``: evaluate the zoo's models (or train fresh ones), draw the figures, report.

By default the demo takes the model zoo's LeNets of one data set (Plain, CLP, LSQ and the
adversarially trained one on the shipped MNIST digits), so it shows in under two minutes,
without training, what the original paper found: CLP and LSQ look robust to the baseline
attack and fall to the strong one. Its default sizes (:data:`QUICK`) are small; :data:`FULL`
(``lpbench demo --full``) is the full-size run of docs/results/demo.md. ``train=True``
(``--train``) trains fresh Plain, CLP and LSQ models instead.
Built on the Python API (:mod:`lpbench.pipelines.steps`); before each step it prints the
``lpbench`` command that does the same thing alone, so any step can be re-run by hand.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from lpbench.evaluation import CustomPGD
from lpbench.pipelines import reports, steps
from lpbench.reporting import render_text
from lpbench.training import TrainConfig, short_objective, train
from lpbench.zoo import ZOO_PREFIX, list_entries

#: The original paper's first three rows, trained and compared by ``--train``.
DEMO_PRESETS = ("plain", "clp", "lsq")
#: The zoo's data set the demo shows by default, and the order of its rows.
ZOO_DATASET = "mnist-digits"
_PAPER_ORDER = ("plain", "clp", "lsq", "plain-alp", "at50-alp", "at50", "at100-alp", "at100")


@dataclass(frozen=True)
class DemoSizes:
    """How many points each step of the demo runs on."""

    points: int
    restarts: int
    restart_points: int
    grid_points: int

    def flags(self) -> str:
        """The ``lpbench demo`` options that ask for these sizes."""
        return (
            f"--points {self.points} --restarts {self.restarts} "
            f"--restart-points {self.restart_points} --grid-points {self.grid_points}"
        )


#: The default sizes: under two minutes on two CPU cores, and CLP and LSQ still lose 20 points
#: and more from the baseline to ``strong`` on the zoo's models.
QUICK = DemoSizes(points=200, restarts=8, restart_points=10, grid_points=50)
#: The full-size run (``lpbench demo --full``): the 1,000 held-out digits, a 32-restart
#: study on 20 points and a 100-point grid; about 5 minutes on two CPU cores.
FULL = DemoSizes(points=1000, restarts=32, restart_points=20, grid_points=100)


class _Common(TypedDict):
    """The options every step of the demo passes on."""

    data_dir: Path | None
    device: str
    show_progress: bool


@dataclass(frozen=True)
class DemoSettings:
    """What the demo evaluates or trains (the ``lpbench demo`` flags).

    ``dataset`` None means the zoo's MNIST digits, or Fashion-MNIST with ``train``.
    """

    out: Path
    train: bool = False
    dataset: str | None = None
    epochs: int = 1
    eps: float | None = None
    points: int = QUICK.points
    train_points: int | None = None
    seed: int = 0
    restarts: int = QUICK.restarts
    restart_points: int = QUICK.restart_points
    grid_points: int = QUICK.grid_points
    data_dir: Path | None = None
    device: str = "auto"
    show_progress: bool = True


def zoo_models(dataset: str) -> list[str]:
    """The zoo's entries for ``dataset`` as ``zoo:`` references, in the original paper's row
    order."""
    names = [e.name.split("/", 1)[1] for e in list_entries() if e.meta["dataset"] == dataset]
    if not names:
        raise ValueError(f"the model zoo has no {dataset} models (`lpbench zoo list`)")
    rank = {name: i for i, name in enumerate(_PAPER_ORDER)}
    names.sort(key=lambda name: (rank.get(name, len(rank)), name))
    return [f"{ZOO_PREFIX}{dataset}/{name}" for name in names]


def run_demo(settings: DemoSettings, echo: Callable[[str], None] = print) -> Path:
    """Run every step of the demo into ``settings.out``; return the HTML report's path
    (report.md, report.csv and report.json lie beside it)."""
    s = settings
    dataset = s.dataset or ("fashion-mnist" if s.train else ZOO_DATASET)
    run = s.out
    eps_flag = "" if s.eps is None else f" --eps {s.eps}"  # None: the data set's default
    started = time.perf_counter()
    q = shlex.quote
    shared = f"--device {q(s.device)}" + ("" if s.show_progress else " --no-progress")
    if s.data_dir:
        shared += f" --data-dir {q(str(s.data_dir))}"
    common = _Common(data_dir=s.data_dir, device=s.device, show_progress=s.show_progress)
    figures = run / "figures"
    models: list[tuple[str, str | Path]]
    if s.train:
        models = [(preset, run / preset) for preset in DEMO_PRESETS]
    else:
        models = [(ref.rsplit("/", 1)[1], ref) for ref in zoo_models(dataset)]
    for name, model in models:
        folder = run / name
        if s.train:
            subset = "" if s.train_points is None else f" --train-points {s.train_points}"
            echo(f"== {name}: training {s.epochs} epoch(s) on {dataset}")
            echo(
                f"$ lpbench train --dataset {dataset} --preset {name} --epochs {s.epochs} "
                f"--seed {s.seed}{subset} --out {q(str(folder))} --resume {shared}"
            )
            config = TrainConfig(
                dataset=dataset,
                objective=short_objective(name),
                preset=name,
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
        results = folder / "results.json"
        echo(f"== {name}: baseline and strong attacks on {s.points} test points")
        echo(
            f"$ lpbench evaluate {q(str(model))} --preset strong{eps_flag} "
            f"--points {s.points} --name {name} --out {q(str(results))} --resume {shared}"
        )
        result, _ = steps.evaluate_checkpoint(
            model,
            preset="strong",
            eps=s.eps,
            points=s.points,
            name=name,
            out=results,
            resume=True,
            **common,
        )
        baseline = result.attacks[0].robust_accuracy_after
        echo(
            f"   clean {result.clean_accuracy:.1%}, baseline {baseline:.1%}, "
            f"strong {result.robust_accuracy:.1%}"
        )

        echo(f"== {name}: restart study, histograms and step x iterations grid")
        study = folder / "restarts.json"
        echo(
            f"$ lpbench evaluate {q(str(model))}{eps_flag} --step eps/4 --iters 40 "
            f"--restarts {s.restarts} --no-early-stop --points {s.restart_points} "
            f"--name {name} --out {q(str(study))} --resume {shared}"
        )
        pgd = CustomPGD(step="eps/4", iters=40, restarts=s.restarts, early_stop=False)
        steps.evaluate_checkpoint(
            model,
            custom=pgd,
            eps=s.eps,
            points=s.restart_points,
            name=name,
            out=study,
            resume=True,
            **common,
        )
        histograms = figures / f"histograms-{name}.png"
        echo(f"$ lpbench histogram {q(str(study))} --out {q(str(histograms))}")
        hist = steps.histograms_for_results(study, out=histograms)
        curve = hist.summary.curve
        echo(
            f"   robust accuracy on {s.restart_points} points: {curve[0]:.1%} with 1 restart, "
            f"{curve[-1]:.1%} with {len(curve)}"
        )
        grid = figures / f"grid-{name}.png"
        echo(
            f"$ lpbench grid {q(str(model))}{eps_flag} --points {s.grid_points} "
            f"--steps eps/20 eps/10 eps/4 eps/2 eps --iters 5 10 20 50 "
            f"--out {q(str(grid))} {shared}"
        )
        cells = steps.grid_for_checkpoint(
            model,
            steps=["eps/20", "eps/10", "eps/4", "eps/2", "eps"],
            iters=[5, 10, 20, 50],
            eps=s.eps,
            points=s.grid_points,
            out=grid,
            **common,
        ).grid
        echo(
            f"   grid: robust accuracy {cells.accuracy.min():.1%} .. {cells.accuracy.max():.1%}, "
            f"{cells.grad_evals:,} gradients (one run per cell: {cells.naive_grad_evals:,})"
        )
    sources = [model for _, model in models]
    surface = figures / "surface.png"
    echo(
        f"$ lpbench surface {q(str(sources[0]))} --compare "
        f"{' '.join(q(str(f)) for f in sources[1:])}{eps_flag} --out {q(str(surface))} "
        f"{shared}"
    )
    planes = steps.surfaces_for_checkpoints(sources, eps=s.eps, out=surface, **common)
    for name, plane, _ in planes.surfaces:
        echo(
            f"   {name}: loss {plane.loss.min():.3g} .. {plane.loss.max():.3g} on the plane "
            f"around point {planes.index}"
        )
    what = (
        f"{s.epochs} epoch(s) of training"
        if s.train
        else "the model zoo (`lpbench zoo list` for how each was trained)"
    )
    title = f"lpbench demo: LeNet on {dataset}, eps {planes.eps}, {what}, {s.points} test points"
    echo(f"$ lpbench report {q(str(run))} --title {q(title)} --html")
    rows, written = reports.report_for([run], title=title, html=True)
    echo("")
    echo(render_text(rows))
    echo(f"\ntotal time {time.perf_counter() - started:.0f} s")
    echo(f"report: {written['html']} (one page: open it in a browser), {written['markdown']}")
    sizes = DemoSizes(s.points, s.restarts, s.restart_points, s.grid_points)
    if sizes != FULL and not s.train:
        echo(
            f"this was a small run ({s.points} points); the full-size one ({FULL.points} points, "
            f"{FULL.restarts} restarts on {FULL.restart_points}, a {FULL.grid_points}-point grid, "
            "about 5 minutes on two CPU cores): lpbench demo --full"
        )
    return written["html"]
