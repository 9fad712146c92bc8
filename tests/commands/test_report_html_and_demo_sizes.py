"""``lpbench report --html`` and the demo's sizes (its defaults, ``--full``, given options)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lpbench.pipelines.demo import FULL, QUICK, DemoSettings
from tests.support import run


def test_report_html_writes_one_self_contained_page(tmp_path, capsys) -> None:
    results = tmp_path / "clp.json"
    code, _, err = run(
        capsys,
        "evaluate",
        "zoo:mnist-digits/clp",
        "--preset",
        "baseline",
        "--points",
        "6",
        "--out",
        str(results),
        "--no-progress",
    )
    assert code == 0, err
    code, out, err = run(capsys, "report", str(results), "--out", str(tmp_path), "--html")
    assert code == 0, err
    page = tmp_path / "report.html"
    assert str(page) in out
    text = page.read_text()
    assert text.lstrip().lower().startswith("<!doctype html") and "clp" in text
    assert "<script" not in text and 'src="http' not in text
    code, out, err = run(capsys, "report", str(results), "--out", str(tmp_path / "md"))
    assert code == 0, err
    assert not (tmp_path / "md" / "report.html").exists()  # only when asked


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], QUICK),
        (["--full"], FULL),
        (["--full", "--points", "300"], replace(FULL, points=300)),
        (["--grid-points", "7"], replace(QUICK, grid_points=7)),
    ],
)
def test_demo_sizes(argv, expected, monkeypatch, tmp_path, capsys) -> None:
    import lpbench.commands.demo as command

    seen: list[DemoSettings] = []
    monkeypatch.setattr(command, "run_demo", lambda settings, echo: seen.append(settings))
    code, _, err = run(capsys, "demo", *argv, "--out", str(tmp_path))
    assert code == 0, err
    (settings,) = seen
    sizes = (settings.points, settings.restarts, settings.restart_points, settings.grid_points)
    assert sizes == (
        expected.points,
        expected.restarts,
        expected.restart_points,
        expected.grid_points,
    )
