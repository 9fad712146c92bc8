"""``lpbench report``: the seed-style table of results files, with figures (and a page)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lpbench.commands._options import emit
from lpbench.settings import Command, call_with, option, positional


@dataclass(frozen=True, kw_only=True)
class ReportSettings:
    """``lpbench report``: the runs or results files, extra figures, title and folder."""

    inputs: list[Path] = positional(
        "run folders or results files", nargs="+", type=Path, metavar="RUN_OR_RESULTS"
    )
    figure: list[Path] = option([], "more images to embed", nargs="+", type=Path)
    title: str = option("lpbench report", "title of the report")
    out: Path | None = option(None, "folder (default: the first run folder, else .)", type=Path)
    html: bool = option(False, "also write report.html, one self-contained page")


def run(settings: ReportSettings) -> int:
    """Write the report files; print the table and their paths. Exit code 0."""
    from lpbench.pipelines.reports import report_for
    from lpbench.reporting import render_text

    rows, written = call_with(report_for, settings, figures=settings.figure)
    emit([render_text(rows), "\n" + ", ".join(str(p) for p in written.values())])
    return 0


COMMAND = Command(
    "report",
    "seed-style table (Markdown, CSV, JSON) with figures",
    ReportSettings,
    run,
    description="Collect results files (or run folders holding results.json or "
    "results-PRESET.json files, the latter as rows named 'MODEL (PRESET)', and a figures/ "
    "folder) into report.md, report.csv and report.json (--html: report.html too, one page "
    "with the figures inlined). The baseline column is the attack "
    "labelled 'baseline' (the paper's, in `strong`); without one it is the first attack, named "
    "beside its accuracy (e.g. apgd-ce for auto).",
)
