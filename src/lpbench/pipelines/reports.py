"""Reports and listings on the Python API: a report of results files or run folders, the
warnings about results whose weights changed, the zoo's listing."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lpbench.checkpoint import WEIGHTS_NAME
from lpbench.evaluation import (
    weights_sha256,
)
from lpbench.reporting import ResultRow, write_html_report, write_report
from lpbench.reporting.collect import collect_results, figure_sections, read_results
from lpbench.training import SHORT_OBJECTIVES, CheckpointError, load_checkpoint
from lpbench.zoo import get_entry, list_entries


def report_for(
    inputs: Sequence[str | Path],
    *,
    figures: Sequence[str | Path] = (),
    title: str = "lpbench report",
    out: str | Path | None = None,
    html: bool = False,
) -> tuple[list[ResultRow], dict[str, Path]]:
    """Paper-style report (Markdown, CSV, JSON; ``html``: a page too) of results files or run
    folders.

    A run folder gives every results file in it and its sub-folders; a row read from
    ``results-PRESET.json`` is named ``MODEL (PRESET)``, after the model's own row.
    The paths written are keyed "markdown", "csv", "json" and, with ``html``, "html"
    (report.html: :func:`lpbench.reporting.write_html_report`). A results file whose
    manifest's weights hash differs from the checkpoint beside it (``model.safetensors`` in
    its folder: retrained since) gets a warning (:func:`stale_weights_warnings`), printed on
    stderr and kept in report.md and report.json.
    """
    paths = [Path(p) for p in inputs]
    files, found = collect_results(paths)
    found += [Path(f) for f in figures]
    rank = {name: i for i, name in enumerate(SHORT_OBJECTIVES)}
    keyed = []
    for path in files:
        results = read_results(path)
        row = ResultRow.from_results(results)
        variant = path.stem.removeprefix("results-") if path.stem.startswith("results-") else ""
        keyed.append(((rank.get(row.name, len(rank)), row.name, variant), row, results))
        if variant:
            row.name = f"{row.name} ({variant})"
    keyed.sort(key=lambda item: item[0])
    rows = [row for _, row, _ in keyed]
    out = Path(out) if out is not None else (paths[0] if paths[0].is_dir() else Path("."))
    sections = figure_sections(found)
    warnings = stale_weights_warnings(files)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    written = write_report(rows, out, figures=sections, title=title, warnings=warnings)
    if html:
        written["html"] = write_html_report(
            [results for *_, results in keyed],
            out,
            names=[row.name for row in rows],
            figures=sections,
            title=title,
        )
    return rows, written


def stale_weights_warnings(files: Sequence[Path]) -> list[str]:
    """A warning per results file whose manifest's ``weights_sha256`` is not the hash
    (:func:`lpbench.evaluation.weights_sha256`) of the checkpoint in its folder."""
    hashes: dict[Path, str | None] = {}
    warnings = []
    for path in files:
        recorded = (read_results(path).get("manifest") or {}).get("weights_sha256")
        weights = Path(path).parent / WEIGHTS_NAME
        if recorded is None or not weights.is_file():
            continue
        if weights not in hashes:
            try:
                hashes[weights] = weights_sha256(load_checkpoint(weights)[0])
            except CheckpointError:
                hashes[weights] = None
        actual = hashes[weights]
        if actual is not None and actual != recorded:
            warnings.append(
                f"{path} was computed for other weights (sha256 {recorded[:12]}) than the "
                f"checkpoint beside it, {weights} (sha256 {actual[:12]}): the model changed "
                "since (retrained?); evaluate it again"
            )
    return warnings


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def zoo_listing(name: str | None = None) -> list[str]:
    """``lpbench zoo``: a line per entry, or one entry's full record when ``name`` is given."""
    if name is not None:
        entry = get_entry(name)
        return [json.dumps(entry.zoo, indent=2), f"weights: {entry.weights}"]
    entries = list_entries()
    if not entries:
        return ["the zoo is empty"]
    lines = [
        f"{'name':<24} {'train images':>12} {'train time':>10} {'clean':>6} {'baseline':>8} "
        f"{'strongest':>9}  attack"
    ]
    for entry in entries:
        zoo = entry.zoo
        robust: Any = zoo.get("robust_accuracy") or {}  # JSON: label -> accuracy
        strongest = min((k for k in robust if k != "baseline"), key=robust.get, default=None)
        lines.append(
            f"{entry.name:<24} {zoo['training_images']:>12,} "
            f"{zoo['training_seconds'] / 60:>8.1f} m {_percent(zoo.get('clean_accuracy')):>6} "
            f"{_percent(robust.get('baseline')):>8} {_percent(robust.get(strongest)):>9}  "
            f"{strongest or '-'}"
        )
    lines.append("use as zoo:NAME, e.g. `lpbench evaluate zoo:" + entries[0].name + "`")
    return lines
