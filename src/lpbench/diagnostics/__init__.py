"""Figures that show gradient masking: loss surfaces, step x iteration grids, restarts."""

from lpbench.diagnostics.grid import GridData, plot_grid, step_iteration_grid
from lpbench.diagnostics.histogram import (
    LOSS_THRESHOLD,
    PointHistogram,
    RestartSummary,
    pick_points,
    plot_point_histograms,
    plot_restart_summary,
    point_histograms,
    resolve_label,
    restart_losses,
    restart_summary,
    restarts_curve,
    success_fractions,
)
from lpbench.diagnostics.surface import (
    SurfaceData,
    loss_surface,
    plot_surfaces,
    save_figure,
    write_npz,
)
from lpbench.diagnostics.sweep import plot_sweep

__all__ = [
    "LOSS_THRESHOLD",
    "GridData",
    "PointHistogram",
    "RestartSummary",
    "SurfaceData",
    "loss_surface",
    "pick_points",
    "plot_grid",
    "plot_point_histograms",
    "plot_restart_summary",
    "plot_surfaces",
    "plot_sweep",
    "point_histograms",
    "resolve_label",
    "restart_losses",
    "restart_summary",
    "restarts_curve",
    "save_figure",
    "step_iteration_grid",
    "success_fractions",
    "write_npz",
]
