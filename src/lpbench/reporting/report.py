"""A report folder: report.md (tables and figures), report.csv and report.json."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lpbench.io import atomic_write, write_json
from lpbench.reporting.table import ResultRow, machine_warnings, render_markdown

CSV_FIELDS = (
    "name",
    "dataset",
    "eps",
    "num_points",
    "clean_accuracy",
    "baseline_accuracy",
    "strongest_accuracy",
    "baseline_grad_evals",
    "baseline_wall_time_s",
    "strong_grad_evals",
    "strong_wall_time_s",
    "baseline_attack",
    "strong_attacks",
    "machine",
)


def _as_row(item: ResultRow | dict[str, Any]) -> ResultRow:
    return item if isinstance(item, ResultRow) else ResultRow.from_results(item)


def _relative(path: str | Path, base: Path) -> str:
    """``path`` relative to ``base``, with forward slashes (Markdown links)."""
    return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()


def _csv_text(rows: Sequence[ResultRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        data = row.to_dict()
        data["strong_attacks"] = "; ".join(data["strong_attacks"])
        writer.writerow({k: "" if data[k] is None else data[k] for k in CSV_FIELDS})
    return buffer.getvalue()


def write_report(
    rows_or_results: Sequence[ResultRow | dict[str, Any]],
    out_dir: str | Path,
    *,
    figures: dict[str, list[Path]] | None = None,
    title: str = "lpbench report",
    warnings: Sequence[str] = (),
) -> dict[str, Path]:
    """Write report.md, report.csv and report.json into ``out_dir``.

    Items are rows or evaluation results dicts (turned into rows). ``figures`` maps a
    section heading to image files, embedded in report.md by paths relative to
    ``out_dir``. report.md and report.json carry the warning of :func:`machine_warnings`
    when the rows come from different machines, and ``warnings`` (e.g. results whose
    weights differ from the checkpoint beside them). Returns the paths written, keyed
    "markdown", "csv" and "json".
    """
    out_dir = Path(out_dir)
    rows = [_as_row(item) for item in rows_or_results]
    links = {
        section: [_relative(p, out_dir) for p in paths]
        for section, paths in (figures or {}).items()
    }
    markdown = render_markdown(rows, title=title)
    markdown += "".join(f"\n> **Warning:** {warning}\n" for warning in warnings)
    for section, paths in links.items():
        images = "\n\n".join(f"![{Path(p).stem}]({p})" for p in paths)
        markdown += f"\n## {section}\n\n{images}\n"
    written = {
        "markdown": atomic_write(out_dir / "report.md", lambda tmp: tmp.write_text(markdown)),
        "csv": atomic_write(out_dir / "report.csv", lambda tmp: tmp.write_text(_csv_text(rows))),
        "json": write_json(
            out_dir / "report.json",
            {
                "title": title,
                "rows": [row.to_dict() for row in rows],
                "figures": links,
                "warnings": machine_warnings(rows) + list(warnings),
            },
        ),
    }
    return written
