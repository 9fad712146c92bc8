"""Output files and concurrent runs: every problem with where results go is found before
any attack or training starts, in one line with exit code 2, and leaves nothing behind."""

from __future__ import annotations

import importlib
import json
import os
import stat

import pytest

from lpbench.io import atomic_write, output_lock, write_json
from lpbench.pipelines import steps
from lpbench.pipelines.steps import journal_lock
from tests.support import run, train_tiny, write_mnist_folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    data = write_mnist_folder(root / "data")
    train_tiny(data, root / "run")
    return root / "run", data


def _evaluate(run_dir, data, out, *extra: str) -> list[str]:
    return [
        "evaluate",
        str(run_dir),
        "--data-dir",
        str(data),
        "--preset",
        "baseline",
        "--points",
        "16",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def _no_attack(*args, **kwargs):
    raise AssertionError("the work started before the output was checked")


def _one_line_error(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lpbench {command}: error: "), err
    return lines[0]


def _read_only(folder, monkeypatch) -> None:
    """Make ``folder`` read-only; root ignores permissions, so os.access is told too."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:
        real = os.access
        blocked = str(folder.resolve())

        def access(path, mode, *args, **kwargs):
            if str(os.path.abspath(path)).startswith(blocked) and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)


def test_evaluate_out_naming_a_folder_fails_before_the_attack(
    trained, tmp_path, capsys, monkeypatch
):
    run_dir, data = trained
    folder = tmp_path / "results"
    folder.mkdir()
    monkeypatch.setattr(steps, "benchmark", _no_attack)
    code, _, err = run(capsys, *_evaluate(run_dir, data, folder))
    assert code == 2
    line = _one_line_error(err, "evaluate")
    assert "is a folder" in line and str(folder / "results.json") in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no journal, no lock
    assert not any(folder.iterdir())


@pytest.mark.parametrize("command", ["evaluate", "check", "grid", "surface", "train"])
def test_read_only_output_fails_before_any_work(command, trained, tmp_path, capsys, monkeypatch):
    run_dir, data = trained
    locked = tmp_path / "ro"
    _read_only(locked, monkeypatch)
    monkeypatch.setattr(steps, "benchmark", _no_attack)
    monkeypatch.setattr(steps, "check", _no_attack)
    monkeypatch.setattr(steps, "step_iteration_grid", _no_attack)
    monkeypatch.setattr(steps, "loss_surface", _no_attack)
    monkeypatch.setattr("lpbench.training.trainer.load_arrays", _no_attack)
    out = locked / "sub" / "out.json"
    common = ["--data-dir", str(data), "--no-progress", "--out"]
    argv = {
        "evaluate": _evaluate(run_dir, data, out),
        "check": ["check", str(run_dir), *common, str(locked / "check.png")],
        "grid": ["grid", str(run_dir), *common, str(locked / "grid.png")],
        "surface": ["surface", str(run_dir), *common, str(locked / "surface.png")],
        "train": ["train", "--dataset", "mnist", *common, str(locked / "run")],
    }[command]
    try:
        code, _, err = run(capsys, *argv)
    finally:
        locked.chmod(0o755)
    assert code == 2
    assert "cannot write" in _one_line_error(err, command)
    assert list(locked.iterdir()) == []


def test_a_second_evaluation_on_one_out_is_refused_naming_the_live_one(
    trained, tmp_path, capsys, monkeypatch
):
    run_dir, data = trained
    out = tmp_path / "res.json"
    monkeypatch.setattr(steps, "benchmark", _no_attack)
    with output_lock(journal_lock(out), what="the test's"):
        # the live run's journal: without the lock, the second run was told to --resume
        write_json(out.with_suffix(".journal") / "manifest.json", {})
        for extra in ((), ("--resume",)):
            code, _, err = run(capsys, *_evaluate(run_dir, data, out, *extra))
            assert code == 2
            line = _one_line_error(err, "evaluate")
            assert f"pid {os.getpid()}" in line and "another lpbench run" in line


def test_a_second_process_is_refused_while_the_first_holds_the_lock(trained, tmp_path):
    import subprocess
    import sys
    import textwrap

    run_dir, data = trained
    out = tmp_path / "res.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from lpbench.io import output_lock
                from lpbench.pipelines.steps import journal_lock
                with output_lock(journal_lock({str(out)!r}), what="x"):
                    print("held", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        from lpbench.cli import main

        assert main(_evaluate(run_dir, data, out)) == 2
    finally:
        holder.kill()
        holder.wait()
    # the kernel frees a killed holder's lock: the stale file is taken over
    assert journal_lock(out).exists()
    assert main(_evaluate(run_dir, data, out)) == 0
    assert not journal_lock(out).exists() and not out.with_suffix(".journal").exists()


def test_ctrl_c_during_evaluate_says_how_to_resume(trained, tmp_path, capsys, monkeypatch):
    loop = importlib.import_module("lpbench.evaluation.evaluate")  # the module, not the function
    run_dir, data = trained
    out = tmp_path / "res.json"
    real, calls = loop._run_block, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_run_block", interrupted)
    code, _, err = run(capsys, *_evaluate(run_dir, data, out, "--batch-size", "4"))
    assert code == 130
    journal = out.with_suffix(".journal")
    assert err.strip() == (
        f"interrupted: rerun the same command with --resume to continue from {journal}"
    )
    assert not journal_lock(out).exists()
    monkeypatch.setattr(loop, "_run_block", real)
    code, _, err = run(capsys, *_evaluate(run_dir, data, out, "--batch-size", "4", "--resume"))
    assert code == 0, err


def test_train_refuses_to_overwrite_a_checkpoint_without_force(tmp_path, capsys) -> None:
    data = write_mnist_folder(tmp_path / "data", n_train=128, n_test=32)
    out = tmp_path / "run"
    train_tiny(data, out)
    argv = ["train", "--dataset", "mnist", "--data-dir", str(data), "--preset", "clp"]
    argv += ["--epochs", "1", "--batch-size", "64", "--out", str(out), "--no-progress"]
    capsys.readouterr()
    before = (out / "model.safetensors").read_bytes()
    (out / "train_state.safetensors").unlink()  # a checkpoint alone is refused too
    code, _, err = run(capsys, *argv, "--seed", "1")
    assert code == 2 and "--force" in _one_line_error(err, "train")
    assert (out / "model.safetensors").read_bytes() == before
    code, _, err = run(capsys, *argv, "--seed", "1", "--force")
    assert code == 0, err
    assert (out / "model.safetensors").read_bytes() != before
    assert json.loads((out / "model.json").read_text())["seed"] == 1


def test_report_flags_results_of_other_weights_than_the_checkpoint_beside(tmp_path, capsys) -> None:
    data = write_mnist_folder(tmp_path / "data", n_train=128, n_test=64)
    out = tmp_path / "run"
    train_tiny(data, out)
    assert run(capsys, *_evaluate(out, data, out / "results.json"))[0] == 0
    code, _, err = run(capsys, "report", str(out))
    assert code == 0 and "warning" not in err
    assert json.loads((out / "report.json").read_text())["warnings"] == []
    argv = ["train", "--dataset", "mnist", "--data-dir", str(data), "--preset", "clp"]
    argv += ["--epochs", "1", "--batch-size", "64", "--out", str(out), "--no-progress"]
    assert run(capsys, *argv, "--seed", "1", "--force")[0] == 0
    code, _, err = run(capsys, "report", str(out))
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "results.json" in warnings[0] and "other weights" in warnings[0]
    saved = json.loads((out / "report.json").read_text())["warnings"]
    assert len(saved) == 1 and "model.safetensors" in saved[0]
    assert "other weights" in (out / "report.md").read_text()


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_files_follow_the_umask(mask, tmp_path) -> None:
    old = os.umask(mask)
    try:
        json_path = write_json(tmp_path / "a.json", {"a": 1})
        raw = atomic_write(tmp_path / "b.bin", lambda tmp: tmp.write_bytes(b"x"))
    finally:
        os.umask(old)
    for path in (json_path, raw):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
