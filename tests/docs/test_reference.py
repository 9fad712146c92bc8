"""The generated reference pages match the code: a changed option, help text, default,
export or docstring needs the page regenerated (the failure names the command)."""

from __future__ import annotations

import difflib

import pytest

from tests.docs._scripts import load_script


def _diff(committed: str, fresh: str) -> str:
    lines = difflib.unified_diff(
        committed.splitlines(), fresh.splitlines(), "committed", "from the code", lineterm="", n=1
    )
    return "\n".join(list(lines)[:40])


@pytest.mark.parametrize(
    ("script", "page"),
    [("cli_reference", "docs/reference/cli.md"), ("api_reference", "docs/reference/python-api.md")],
)
def test_reference_page_is_up_to_date(script: str, page: str, monkeypatch) -> None:
    module = load_script(script)
    monkeypatch.setenv("COLUMNS", "37")  # the page must not depend on the terminal
    fresh = module.render()
    committed = module.TARGET.read_text(encoding="utf-8")
    assert committed == fresh, (
        f"{page} is out of date: run `python scripts/{script}.py`\n{_diff(committed, fresh)}"
    )


def test_cli_reference_lists_every_command_and_option() -> None:
    from lpbench.cli import build_parser

    script = load_script("cli_reference")
    text = script.render()
    for name, parser in script._subcommands(build_parser()).items():
        section = text.split(f"## `lpbench {name}`\n", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in section, (name, flag)


def test_api_reference_lists_every_export() -> None:
    import lpbench

    text = load_script("api_reference").render()
    for name in lpbench.__all__:
        assert f"| `{name}" in text
