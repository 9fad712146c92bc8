"""Every ```bash and ```python block of README.md and docs/quickstart.md runs as written.

The pages run one after the other, each block in order, in one temporary folder (a later
block may use what an earlier one wrote, as a reader following the page would), with
``lpbench`` and ``python`` being this checkout's under this interpreter, PYTHONPATH at src/
and OMP_NUM_THREADS=1. A bash block runs under ``set -e``, so a failing command fails the
test with its output.

Three rules leave commands out, all visible here and in the test's output:

- NOT_RUN: the commands listed there, each for the reason given beside it; one that no page
  shows any more fails the test, so the list cannot go stale;
- RUN_BY_CI: the commands that ``.ci/run`` runs itself after the suite, with the check
  given beside each (the README's ``lpbench demo``: scripts/readme_demo.py);
- a command line (or a whole python block) that an earlier page already ran, verbatim, in
  the same folder is not run again: the quick start repeats the README's quick start, and
  the second run would only write the same files again.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docs._scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("README.md", "docs/quickstart.md")

#: Commands of the pages that the test does not run (matched exactly, per `&&` segment).
NOT_RUN = {
    # CI (.ci/run) installs lpbench itself and then runs the suite this test is part of.
    "pip install torch==2.13.0 -e .": "CI installs lpbench (.ci/run)",
    'pip install torch==2.13.0 -e ".[dev]"': "CI installs lpbench (.ci/run)",
    "python -m pytest -q": "the suite this test belongs to (.ci/run runs it)",
    "ruff check src tests benchmarks scripts": ".ci/run runs it after the suite",
    "ruff format --check src tests benchmarks scripts": ".ci/run runs it after the suite",
    "mypy": ".ci/run runs it after the suite",
}

#: Commands of the pages that .ci/run runs after the suite, and what it checks.
RUN_BY_CI = {
    "lpbench demo": "scripts/readme_demo.py runs it as written in a temporary folder and "
    "checks that CLP and LSQ lose at least 20 points from the baseline to strong",
}

_FENCE = re.compile(r"^```(bash|python)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def code_blocks(page: Path) -> list[tuple[str, str]]:
    """(language, code) of each ```bash / ```python block of ``page``, in order."""
    return [(m[1], m[2]) for m in _FENCE.finditer(page.read_text(encoding="utf-8"))]


def runnable(
    code: str, seen: set[str], done: set[str] | None = None, again: list[str] | None = None
) -> str:
    """A bash block without the NOT_RUN and RUN_BY_CI segments of each line (added to
    ``seen``) and without the lines in ``done`` (listed in ``again``; the lines kept are
    added to it)."""
    lines = []
    for line in code.replace("\\\n", " ").splitlines():
        kept = []
        for segment in line.split(" && "):
            command = segment.strip()
            if command in NOT_RUN or command in RUN_BY_CI:
                seen.add(command)
            else:
                kept.append(segment)
        command = " && ".join(kept)
        if done is not None:
            if command in done:
                if again is not None and command:
                    again.append(command)
                continue
            done.add(command)
        if kept:
            lines.append(command)
    return "\n".join(lines)


def _environment(tmp: Path) -> dict[str, str]:
    """This checkout's lpbench and this interpreter first on PATH, one torch thread."""
    bin_dir = tmp / ".bin"
    bin_dir.mkdir()
    for name, run in (("lpbench", "-m lpbench"), ("python", "")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {run} "$@"\n')
        shim.chmod(0o755)
    env = dict(os.environ)
    paths = [str(ROOT / "src"), env.get("PYTHONPATH", "")]
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        PYTHONPATH=os.pathsep.join(p for p in paths if p),
        OMP_NUM_THREADS="1",
    )
    return env


@pytest.mark.slow
def test_code_blocks_run(tmp_path: Path) -> None:
    env = _environment(tmp_path)
    seen: set[str] = set()
    ran: set[str] = set()
    again: list[str] = []
    cpu_before = _children_cpu()
    for page in PAGES:
        timings = []
        for number, (language, code) in enumerate(code_blocks(ROOT / page), start=1):
            if language == "python":
                if code in ran:
                    timings.append(f"block {number}: already run")
                    again.append(f"python block {number}")
                    continue
                ran.add(code)
                script = tmp_path / f"block{number}.py"
                script.write_text(code)
                argv = [sys.executable, str(script)]
            else:
                argv = ["bash", "-e", "-o", "pipefail", "-c", runnable(code, seen, ran, again)]
            started = time.perf_counter()
            done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
            timings.append(f"block {number}: {time.perf_counter() - started:.1f} s")
            assert done.returncode == 0, (
                f"{page}, code block {number} ({language}) failed with exit code "
                f"{done.returncode}:\n{code}\n--- stdout\n{done.stdout[-3000:]}\n"
                f"--- stderr\n{done.stderr[-3000:]}"
            )
        print(f"\n{page}: " + ", ".join(timings))
    print(f"not run (NOT_RUN): {sorted(seen & NOT_RUN.keys())}")
    print(f"run by .ci/run after the suite (RUN_BY_CI): {sorted(seen & RUN_BY_CI.keys())}")
    print(f"not run again (an earlier page ran them): {again}")
    print(f"CPU time of the commands: {_children_cpu() - cpu_before:.1f} s")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_every_command_left_out_is_still_on_a_page() -> None:
    seen: set[str] = set()
    for page in PAGES:
        for language, code in code_blocks(ROOT / page):
            if language == "bash":
                runnable(code, seen)
    listed = NOT_RUN.keys() | RUN_BY_CI.keys()
    assert seen == listed, f"NOT_RUN or RUN_BY_CI list commands no page shows: {listed - seen}"


def test_ci_runs_the_readme_demo_and_checks_the_finding() -> None:
    script = load_script("readme_demo")
    first = code_blocks(ROOT / "README.md")[0][1].splitlines()[0]
    assert runnable(first, set()) == ""  # nothing of the first command is left to this test
    assert script.readme_command() in RUN_BY_CI
    steps = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    suite = next(i for i, line in enumerate(steps) if "python -m pytest -q" in line)
    assert steps[suite].endswith(" || exit $?")  # a failing suite fails CI, demo or not
    runs = [line.split()[-2:] for line in steps[suite + 1 :] if not line.startswith("#")]
    assert ["python", "scripts/readme_demo.py"] in runs


def test_the_demo_check_needs_the_baseline_20_points_above_strong() -> None:
    script = load_script("readme_demo")

    def row(name: str, baseline: float | None, strong: float | None) -> dict[str, object]:
        return {"name": name, "baseline_accuracy": baseline, "strongest_accuracy": strong}

    shown = [row("plain", 0.0, 0.0), row("clp", 0.385, 0.0), row("lsq", 0.425, 0.02)]
    assert script.illusion_problems(shown) == []
    problems = script.illusion_problems([shown[0], row("clp", 0.3, 0.15), row("lsq", 0.4, None)])
    assert [p.split(":")[0] for p in problems] == ["clp", "lsq"]
    assert script.illusion_problems(shown[:2]) == ["no row for lsq (rows: plain, clp)"]
    stdout = "total time 80 s\nreport: runs/demo-1/report.html (one page: open it), x.md\n"
    assert script.report_json(stdout, ROOT) == ROOT / "runs" / "demo-1" / "report.json"
