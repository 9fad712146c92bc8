"""Finding results files and figures in run folders, and reading results safely."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lpbench.io import read_json


def read_results(path: str | Path) -> dict[str, Any]:
    """An evaluation results file, or ValueError naming what is wrong with it."""
    data = read_json(path)
    missing = [key for key in ("attacks", "points", "robust_accuracy") if key not in data]
    if missing:
        raise ValueError(
            f"{path} is not an lpbench evaluation result (no {', '.join(missing)}); "
            "give the results.json written by `lpbench evaluate`"
        )
    return data


def collect_results(inputs: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(results files, figures) from run folders and results JSON files."""
    results, figures = [], []
    for item in inputs:
        if item.is_dir():
            found = sorted(item.glob("*/results*.json")) + sorted(item.glob("results*.json"))
            if not found:
                raise FileNotFoundError(
                    f"no results.json (or results-PRESET.json) in {item} or its sub-folders"
                )
            results += found
            figures += sorted((item / "figures").glob("*.png"))
        elif item.is_file():
            results.append(item)
        else:
            raise FileNotFoundError(f"no run folder or results file {item}")
    return results, figures


def figure_sections(figures: Sequence[Path]) -> dict[str, list[Path]]:
    """Group figure files into report sections by the command that made them."""
    sections: dict[str, list[Path]] = {}
    for path in figures:
        stem = path.stem
        if stem.startswith("surface"):
            section = "Loss surfaces"
        elif stem.startswith("grid"):
            section = "Step size x iterations"
        elif stem.endswith("restarts"):
            section = "How many restarts are needed"
        elif stem.startswith("histograms"):
            section = "Final loss per restart"
        else:
            section = "Figures"
        sections.setdefault(section, []).append(path)
    return sections
