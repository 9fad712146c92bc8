"""Tables like the seed's (Markdown, CSV, JSON, terminal) and report folders."""

from lpbench.reporting.report import write_report
from lpbench.reporting.table import (
    ResultRow,
    describe_attack,
    machine_warnings,
    render_markdown,
    render_text,
)

__all__ = [
    "ResultRow",
    "describe_attack",
    "machine_warnings",
    "render_markdown",
    "render_text",
    "write_report",
]
