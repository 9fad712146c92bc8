"""Robust accuracy over a step size x iteration grid, one PGD run per step size."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from lpbench.attacks import PGD
from lpbench.diagnostics.surface import read_npz, save_figure, write_npz
from lpbench.evaluation.contract import check_inputs
from lpbench.evaluation.verify import predict
from lpbench.runtime import default_batch_rows, evaluation_mode, progress


@dataclass
class GridData:
    """``accuracy[i, j]``: robust accuracy under PGD with ``steps[i]`` and ``iters[j]``.

    ``grad_evals`` is what the grid cost; ``naive_grad_evals`` what one early-stopped run
    per cell would have cost (exact for one restart, a lower bound for more).
    """

    steps: list[float]
    iters: list[int]
    accuracy: np.ndarray
    clean_accuracy: float
    eps: float
    num_points: int
    restarts: int
    loss: str
    seed: int
    grad_evals: int
    naive_grad_evals: int
    wall_time_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {**vars(self), "accuracy": self.accuracy.tolist()}

    def save_npz(self, path: str | Path) -> Path:
        """Write every field to a compressed ``.npz`` file, atomically."""
        return write_npz(path, vars(self))

    @classmethod
    def load_npz(cls, path: str | Path) -> GridData:
        """Read a file written by :meth:`save_npz`."""
        d = read_npz(path)
        return cls(
            steps=[float(s) for s in d["steps"]],
            iters=[int(k) for k in d["iters"]],
            accuracy=d["accuracy"],
            clean_accuracy=float(d["clean_accuracy"]),
            eps=float(d["eps"]),
            num_points=int(d["num_points"]),
            restarts=int(d["restarts"]),
            loss=str(d["loss"]),
            seed=int(d["seed"]),
            grad_evals=int(d["grad_evals"]),
            naive_grad_evals=int(d["naive_grad_evals"]),
            wall_time_s=float(d["wall_time_s"]),
        )


def step_iteration_grid(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: Sequence[float],
    iters: Sequence[int],
    *,
    restarts: int = 1,
    seed: int = 0,
    loss: str = "ce",
    indices: Sequence[int] | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
) -> GridData:
    """Robust accuracy for every (step size, iteration count) pair.

    Per step size, one PGD run of ``max(iters)`` iterations (same ``seed`` for every step
    size) records which points are broken within each count in ``iters``. A point counts
    as robust in a cell if it is classified correctly and survives every restart within
    that many iterations; every point counts in the denominator. Only clean-correct points
    are attacked, so a cell equals :func:`~lpbench.evaluation.evaluate` with one PGD of
    that step, count and seed. ``indices`` are the points' data-set indices (they key the
    random starts; default ``0..N-1``). The model runs in eval mode on ``device``; its
    mode and device are restored afterwards.

    ``naive_grad_evals`` is what one early-stopped run per cell costs: exact for one
    restart; with more restarts a lower bound (a short run skips fewer later restarts).
    """
    steps = [float(s) for s in steps]
    iters = sorted({int(k) for k in iters})
    if not steps or not iters:
        raise ValueError("give at least one step size and one iteration count")
    check_inputs(x, y)
    device = torch.device(device)
    batch_size = batch_size or default_batch_rows(device)
    n = len(x)
    index = torch.arange(n) if indices is None else torch.as_tensor(list(indices))
    start = time.perf_counter()
    accuracy = np.zeros((len(steps), len(iters)))
    grad_evals = naive = 0
    with evaluation_mode(model, device):
        clean_ok = predict(model, x, batch_size, device) == y.cpu()
        todo = clean_ok.nonzero().squeeze(1)
        for row, step in enumerate(
            progress(steps, desc="step sizes", enabled=show_progress, unit="step")
        ):
            attack = PGD(
                eps,
                step,
                max(iters),
                restarts,
                loss=loss,
                seed=seed,
                record_at=iters,
                max_batch=batch_size,
            )
            out = attack(model, x[todo].to(device), y[todo].to(device), index=index[todo])
            grad_evals += out.cost.gradients
            naive += sum(out.gradients_within[k] for k in iters)
            for col, k in enumerate(iters):
                broken = torch.zeros(n, dtype=torch.bool)
                broken[todo] = out.success_at[k].cpu()
                accuracy[row, col] = float((clean_ok & ~broken).sum()) / n
    return GridData(
        steps=steps,
        iters=iters,
        accuracy=accuracy,
        clean_accuracy=float(clean_ok.float().mean()),
        eps=float(eps),
        num_points=n,
        restarts=int(restarts),
        loss=loss,
        seed=int(seed),
        grad_evals=grad_evals,
        naive_grad_evals=naive,
        wall_time_s=time.perf_counter() - start,
    )


def plot_grid(
    grid: GridData,
    path: str | Path,
    *,
    step_unit: str = "",
    step_labels: Sequence[str] | None = None,
    iter_labels: Sequence[str] | None = None,
    annotate: bool | None = None,
    title: str | None = None,
    pdf: bool = False,
) -> list[Path]:
    """The original paper's heatmap: step size across, iterations up, colour = robust accuracy.

    Tick labels default to the step sizes and counts as plain numbers; pass ``step_labels``
    (e.g. ``"2.5/255"``) to show them in the caller's units and ``step_unit`` to name the
    unit on the axis. Each cell carries its value when ``annotate`` (default: grids of at
    most 400 cells). Returns the files written (.png, and .pdf when asked).
    """
    n_steps, n_iters = grid.accuracy.shape
    step_labels = list(step_labels) if step_labels is not None else [f"{s:g}" for s in grid.steps]
    iter_labels = list(iter_labels) if iter_labels is not None else [str(k) for k in grid.iters]
    if len(step_labels) != n_steps or len(iter_labels) != n_iters:
        raise ValueError("need one tick label per step size and per iteration count")
    if annotate is None:
        annotate = n_steps * n_iters <= 400
    values = grid.accuracy.T  # rows: iteration counts (drawn bottom to top)
    fig = Figure(
        figsize=(min(9.0, max(4.5, 0.55 * n_steps + 2.5)), min(6.0, max(3.5, 0.4 * n_iters + 1.5)))
    )
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="hot", origin="lower", aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="adv. accuracy")
    if annotate:
        low, high = float(values.min()), float(values.max())
        middle = (low + high) / 2
        size = 9 if max(n_steps, n_iters) <= 10 else 6
        for (j, i), value in np.ndenumerate(values):
            ax.text(
                i,
                j,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=size,
                color="black" if value > middle else "white",
            )
    ax.set_xticks(
        _thin(n_steps), [step_labels[i] for i in _thin(n_steps)], rotation=45 if n_steps > 4 else 0
    )
    ax.set_yticks(_thin(n_iters), [iter_labels[i] for i in _thin(n_iters)])
    ax.set_xlabel(f"step size ({step_unit})" if step_unit else "step size")
    ax.set_ylabel("iterations")
    ax.set_title(title or f"eps {grid.eps:g}, {grid.restarts} restart(s), {grid.loss} loss")
    return save_figure(fig, path, pdf=pdf)


def _thin(count: int, most: int = 9) -> list[int]:
    """At most ``most`` evenly spread tick positions, always the first and last."""
    return [int(i) for i in np.unique(np.linspace(0, count - 1, min(count, most)).round())]
