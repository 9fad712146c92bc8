"""The eps sweep of ``lpbench check``: robust accuracy against the radius, which must fall
as eps grows (a rise is a sign of gradient masking)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from lpbench.diagnostics.surface import save_figure


def plot_sweep(sweep: Sequence[tuple[float, float]], path: str | Path, *, eps: float) -> Path:
    """Robust accuracy against eps (PNG; ``CheckReport.sweep``), the checked radius marked."""
    fig = Figure(figsize=(5.0, 3.5))
    ax = fig.add_subplot()
    ax.plot([e for e, _ in sweep], [a for _, a in sweep], marker="o")
    ax.axvline(eps, color="grey", linestyle="--", linewidth=1, label=f"eps {eps:g}")
    ax.set_xlabel("eps (L-infinity)")
    ax.set_ylabel("robust accuracy (APGD-CE)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("robust accuracy must fall as eps grows")
    ax.legend()
    return save_figure(fig, path)[0]
