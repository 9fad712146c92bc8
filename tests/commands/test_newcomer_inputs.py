"""A newcomer's mistakes on the command line: each is refused with exit code 2 and one
error line, before any attack starts, and leaves nothing on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lpbench.zoo import get_entry
from tests.support import run

ZOO = "zoo:mnist-digits/plain"


@pytest.fixture
def folders(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A working folder (the current one) holding a truncated and a mislabelled copy of a
    zoo model's run folder; and where the results would go."""
    work = tmp_path / "work"
    plain = Path(get_entry("mnist-digits/plain").weights).parent
    truncated = shutil.copytree(plain, work / "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    other = shutil.copytree(plain, work / "other-architecture")
    meta = json.loads((other / "model.json").read_text())
    meta["model"] = "resnet20-v2"  # its LeNet weights do not fit
    (other / "model.json").write_text(json.dumps(meta))
    monkeypatch.chdir(work)
    return work, tmp_path / "out" / "results.json"


def _files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


@pytest.mark.parametrize(
    "argv,message",
    [
        ([ZOO, "--preset", "nope"], "argument --preset: invalid choice: 'nope'"),
        ([ZOO, "--dataset", "nope"], "argument --dataset: invalid choice: 'nope'"),
        (["zoo:mnist-digits/nope"], "no zoo model 'mnist-digits/nope'"),
        (["truncated"], "cannot read weights truncated/model.safetensors"),
        (["other-architecture"], "do not fit model 'resnet20-v2' (114 tensor(s) missing"),
        ([ZOO, "--points", "1000000"], "the largest allowed is 1000"),
        ([ZOO, "--eps", "2"], "--eps must be in (0, 1]"),
        ([ZOO, "--eps", "8/0"], "--eps must be a number or a fraction such as 8/255"),
    ],
)
def test_a_mistake_gets_exit_2_one_line_and_no_files(folders, capsys, argv, message) -> None:
    work, out = folders
    before = _files(work)
    code, stdout, err = run(capsys, "evaluate", *argv, "--out", str(out), "--no-progress")
    assert code == 2 and stdout == ""
    lines = err.splitlines()
    assert len(lines) == 1  # argparse's own errors too: no usage block
    assert lines[0].startswith("lpbench evaluate: error: ") and message in lines[0]
    assert not out.parent.exists()  # no results, adversarial examples or journal
    assert _files(work) == before  # nor anything beside the checkpoint (runs/zoo/...)


def test_eps_as_a_fraction_is_accepted(folders, capsys) -> None:
    _, out = folders
    argv = ["evaluate", ZOO, "--eps", "8/255", "--preset", "baseline", "--points", "5"]
    code, stdout, err = run(capsys, *argv, "--out", str(out), "--no-progress")
    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["eps"] == 8 / 255 and data["num_points"] == 5
    assert f"at eps {8 / 255}" in stdout


@pytest.mark.parametrize("command,out_name", [("check", "check.png"), ("grid", "grid.png")])
def test_too_many_points_are_refused_as_evaluate_refuses_them(
    folders, capsys, command, out_name
) -> None:
    work, results = folders
    out = results.with_name(out_name)
    before = _files(work)
    code, stdout, err = run(capsys, command, ZOO, "--points", "1001", "--out", str(out))
    assert code == 2 and stdout == ""
    assert err.splitlines() == [
        f"lpbench {command}: error: 1,001 points asked for, but the test split of "
        "mnist-digits holds 1,000: the largest allowed is 1000"
    ]
    assert not out.parent.exists()
    assert _files(work) == before
