"""Size limits that keep the package readable: no module over 500 lines, a thin cli.py."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lpbench"


def test_no_module_over_500_lines() -> None:
    sizes = {p: len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert sizes, "no modules found"
    too_big = {str(p.relative_to(SRC)): n for p, n in sizes.items() if n > 500}
    assert not too_big, f"split these by concern: {too_big}"


def test_cli_only_builds_the_parser_and_dispatches() -> None:
    assert len((SRC / "cli.py").read_text().splitlines()) <= 300
