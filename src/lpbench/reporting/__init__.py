"""Tables like the seed's (Markdown, CSV, JSON, terminal, HTML) and report folders."""

from lpbench.reporting.html import render_html, write_html_report
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
    "render_html",
    "render_markdown",
    "render_text",
    "write_html_report",
    "write_report",
]
