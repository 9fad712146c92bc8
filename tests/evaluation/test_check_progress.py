"""``lpbench check`` reports its probes as they run (stderr), unless --no-progress."""

from __future__ import annotations

import json

import pytest

from tests.support import run, train_tiny, write_mnist_folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    data = write_mnist_folder(root / "data", n_train=128, n_test=64)
    train_tiny(data, root / "run")
    return root / "run", data


def _check(trained, out, *extra: str) -> list[str]:
    run_dir, data = trained
    return [
        "check",
        str(run_dir),
        "--data-dir",
        str(data),
        "--points",
        "24",
        "--iters",
        "4",
        "--restarts",
        "1",
        "--queries",
        "10",
        "--out",
        str(out),
        *extra,
    ]


def test_check_prints_each_probe_as_it_runs_and_not_with_no_progress(
    trained, tmp_path, capsys
) -> None:
    code, _, err = run(capsys, *_check(trained, tmp_path / "a.png"))
    assert code in (0, 1), err
    lines = [line for line in err.splitlines() if line.startswith("check: ")]
    assert lines[0].startswith("check: baseline: ") and lines[0].endswith(" ...")
    assert any(line.startswith("check: baseline: done in ") for line in lines)
    assert any(line.startswith("check: eps-sweep: ") for line in lines)
    assert lines[-1].endswith("probes done")
    code_quiet, _, err = run(capsys, *_check(trained, tmp_path / "b.png", "--no-progress"))
    assert code_quiet == code and "check: " not in err
    shown, quiet = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert shown["findings"] == quiet["findings"]
