"""Run the README's first command (``lpbench demo``) as written and check what it shows.

The command runs in a temporary folder with this checkout's ``lpbench`` and one torch
thread unless OMP_NUM_THREADS is set; its install segment is left out (CI installed
lpbench before the test suite, as tests/docs/test_code_blocks.py says). The demo's
report.json must show the paper's finding: CLP and LSQ keep at least 20 points more of
the test points against the paper's baseline than against ``strong``. ``.ci/run`` calls
this after the test suite.
Prints the demo's output and each model's accuracies; exit code 0 when the finding shows,
1 when it does not or the command fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The models that look robust to the baseline only, and by how much at least.
ILLUSION = ("clp", "lsq")
MARGIN = 0.20
INSTALL = "pip install "

_FIRST_BASH = re.compile(r"^```bash\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_REPORT = re.compile(r"^report: (\S+\.html) ", re.MULTILINE)


def readme_command(readme: Path = ROOT / "README.md") -> str:
    """The first line of the README's first bash block, without its install segments."""
    found = _FIRST_BASH.search(readme.read_text(encoding="utf-8"))
    if found is None:
        raise ValueError(f"{readme} has no bash block")
    first = found[1].splitlines()[0]
    kept = [s.strip() for s in first.split(" && ") if not s.strip().startswith(INSTALL)]
    return " && ".join(kept)


def report_json(stdout: str, folder: Path) -> Path:
    """The report.json beside the report.html the demo names on its ``report:`` line."""
    found = _REPORT.search(stdout)
    if found is None:
        raise ValueError("the demo printed no `report: ... .html` line")
    return (folder / found[1]).with_name("report.json")


def illusion_problems(rows: list[dict[str, Any]]) -> list[str]:
    """Why report.json's ``rows`` do not show the finding (none when they do)."""
    by_name = {row["name"]: row for row in rows}
    problems = []
    for name in ILLUSION:
        row = by_name.get(name)
        if row is None:
            problems.append(f"no row for {name} (rows: {', '.join(by_name) or 'none'})")
            continue
        baseline, strong = row["baseline_accuracy"], row["strongest_accuracy"]
        if baseline is None or strong is None or baseline - strong < MARGIN:
            problems.append(
                f"{name}: baseline {baseline}, strong {strong}: the baseline should keep at "
                f"least {MARGIN:.0%} more of the points"
            )
    return problems


def _environment(folder: Path) -> dict[str, str]:
    """This checkout's ``lpbench`` (this interpreter, src/ first) ahead of any other, and
    one torch thread unless OMP_NUM_THREADS says otherwise (as the code-block test runs
    the pages: a busy machine's spinning threads can slow two of them tenfold)."""
    bin_dir = folder / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "lpbench"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m lpbench "$@"\n')
    shim.chmod(0o755)
    env = {"OMP_NUM_THREADS": "1", **os.environ}
    paths = [str(ROOT / "src"), env.get("PYTHONPATH", "")]
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        PYTHONPATH=os.pathsep.join(p for p in paths if p),
    )
    return env


def main() -> int:
    """Run the command, print its output and the check; the exit code."""
    command = readme_command()
    with tempfile.TemporaryDirectory(prefix="lpbench-readme-demo-") as tmp:
        folder = Path(tmp)
        print(f"README.md's first command, in {folder}: {command}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", command],
            cwd=folder,
            env=_environment(folder),
            capture_output=True,
            text=True,
        )
        print(done.stdout, end="", flush=True)
        print(f"{command}: exit code {done.returncode} after {time.perf_counter() - started:.0f} s")
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        rows = json.loads(report_json(done.stdout, folder).read_text())["rows"]
    for row in rows:
        baseline, strong = row["baseline_accuracy"], row["strongest_accuracy"]
        print(f"{row['name']}: baseline {baseline}, strong {strong}")
    problems = illusion_problems(rows)
    for problem in problems:
        print(f"the demo does not show the finding: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
