"""What both reference generators share: write their page, or check that it is current."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def write_or_check(
    target: Path, render: Callable[[], str], description: str, argv: list[str] | None
) -> int:
    """Write ``render()`` to ``target``; with ``--check``, exit 1 when it differs instead."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    check = parser.parse_args(argv).check
    text = render()
    shown = target.relative_to(target.parents[2])
    if check:
        same = target.exists() and target.read_text(encoding="utf-8") == text
        print(f"{shown} is {'up to date' if same else 'out of date'}")
        return 0 if same else 1
    target.write_text(text, encoding="utf-8")
    print(f"wrote {shown} ({text.count(chr(10))} lines)")
    return 0
