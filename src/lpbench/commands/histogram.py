"""``lpbench histogram``: per-restart loss histograms and the restarts curve."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lpbench.commands._options import emit
from lpbench.settings import Command, call_with, option, positional, positive_int

if TYPE_CHECKING:
    from lpbench.pipelines.steps import HistogramRun


@dataclass(frozen=True, kw_only=True)
class HistogramSettings:
    """``lpbench histogram``: a results file, the attack and points to draw."""

    results: Path = positional("results.json written by `lpbench evaluate`", type=Path)
    attack: str | None = option(None, "attack label (default: most restarts)")
    point: list[int] | None = option(
        None, "test-set indices (default: picked)", nargs="+", type=int
    )
    bins: int = option(20, "histogram bins", type=positive_int)
    out: Path | None = option(None, "PNG path (default: histograms.png beside results)", type=Path)
    pdf: bool = option(False, "also write PDFs")


def histogram_lines(run: HistogramRun) -> list[str]:
    """Each point's restarts, the accuracy with k restarts, and the files written."""
    lines = [
        f"point {hist.index}: {hist.successes}/{hist.restarts} restarts succeed, final loss "
        f"{hist.edges[0]:.3g} .. {hist.edges[-1]:.3g}"
        for hist in run.histograms
    ]
    curve = run.summary.curve
    marks = sorted({1, 10, 100, 1000, len(curve)} & set(range(1, len(curve) + 1)))
    lines.append(
        f"{run.label}: robust accuracy with k restarts: "
        + ", ".join(f"k={k}: {curve[k - 1]:.1%}" for k in marks)
    )
    lines.append(", ".join(map(str, run.written)))
    return lines


def run(settings: HistogramSettings) -> int:
    """Draw the histograms; exit code 0."""
    from lpbench.pipelines.steps import histograms_for_results

    found = call_with(
        histograms_for_results, settings, results_path=settings.results, points=settings.point
    )
    emit(histogram_lines(found))
    return 0


COMMAND = Command(
    "histogram",
    "per-restart loss histograms and the restarts curve from a results file",
    HistogramSettings,
    run,
    description="From an evaluation run with every restart recorded (`lpbench evaluate "
    "--restarts N --no-early-stop`): final loss per restart for chosen points, success "
    "fraction per point, robust accuracy vs restarts.",
)
