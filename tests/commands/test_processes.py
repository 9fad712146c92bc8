"""`lpbench evaluate` as a process: killed and resumed, and sharded over torchrun ranks."""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lpbench.cli import main

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    from tests.support import train_tiny, write_mnist_folder

    root = tmp_path_factory.mktemp("procs")
    data = write_mnist_folder(root / "mnist", n_train=256, n_test=160)
    train_tiny(data, root / "plain", "plain")
    ckpt = root / "plain"
    return ckpt, data


def _evaluate_argv(ckpt: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """A PGD with restarts on 48 points at a radius where about half of them survive."""
    return [
        "evaluate", str(ckpt), "--data-dir", str(data), "--eps", "0.1", "--points", "48",
        "--step", "eps/4", "--iters", "20", "--restarts", "3",
        "--out", str(out), "--no-progress", "--device", "cpu", "--batch-size", "1", *extra,
    ]  # fmt: skip


def _points(path: Path) -> list[dict]:
    """Per-point verdicts and which restarts ran and succeeded."""
    data = json.loads(path.read_text())
    keys = ("index", "robust", "broken_by", "clean_pred", "adv_pred")
    return [
        {**{k: p[k] for k in keys}, "success": p["attacks"].get("pgd", {}).get("restart_success")}
        for p in data["points"]
    ]


def _losses(path: Path) -> list[float]:
    data = json.loads(path.read_text())
    return [
        v for p in data["points"] for v in p["attacks"].get("pgd", {}).get("restart_loss", [])
        if v is not None
    ]  # fmt: skip


def _same(a: Path, b: Path) -> None:
    """Identical verdicts, per-restart losses (to 1e-6) and adversarial examples.

    The runs use one row per forward pass: CPU kernels may round the last bit differently
    for other batch compositions, and PGD's gradient signs can amplify that; the
    bookkeeping (shards, journal, resume) is what these tests check exactly. Batch-size
    invariance of the attacks themselves is tested in test_pgd and test_evaluation_core.
    """
    assert _points(a) == _points(b)
    assert _losses(a) == pytest.approx(_losses(b), abs=1e-6)
    adv_a, adv_b = (load_file(str(p.with_suffix(".adv.safetensors"))) for p in (a, b))
    assert torch.equal(adv_a["indices"], adv_b["indices"]) and len(adv_a["indices"]) > 0
    assert torch.equal(adv_a["x_adv"], adv_b["x_adv"])


def test_sigkill_then_resume_gives_identical_results(checkpoint, tmp_path) -> None:
    ckpt, data = checkpoint
    whole = tmp_path / "whole.json"
    assert main(_evaluate_argv(ckpt, data, whole)) == 0
    points = _points(whole)
    broken = sum(p["broken_by"] == "pgd" for p in points)
    assert broken > 0 and sum(p["robust"] for p in points) > 0  # the attack decides some
    killed = tmp_path / "killed.json"
    journal = killed.with_suffix(".journal")
    cmd = [
        sys.executable,
        "-m",
        "lpbench",
        *_evaluate_argv(ckpt, data, killed),
    ]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list(journal.glob("s001-*.safetensors")):  # mid-way through the attack
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed.exists() and journal.is_dir()
    with pytest.raises(FileExistsError):  # a second run never silently overwrites it
        from lpbench.cli import build_parser

        args = build_parser().parse_args(_evaluate_argv(ckpt, data, killed))
        args.func(args)
    assert main(_evaluate_argv(ckpt, data, killed, "--resume")) == 0
    _same(killed, whole)
    assert not journal.exists()  # the journal is removed once the results are saved


def test_torchrun_two_ranks_match_one_process_and_resume_its_journal(
    checkpoint, tmp_path, monkeypatch
) -> None:
    benchmark_module = importlib.import_module("lpbench.evaluation.benchmark")
    ckpt, data = checkpoint
    out = tmp_path / "res.json"
    monkeypatch.setattr(benchmark_module, "discard_journal", lambda folder: None)
    assert main(_evaluate_argv(ckpt, data, out)) == 0
    single = tmp_path / "single.json"
    out.rename(single)
    out.with_suffix(".adv.safetensors").rename(single.with_suffix(".adv.safetensors"))
    journal = out.with_suffix(".journal")
    attacked = sorted(journal.glob("s001-*.safetensors"))
    assert len(attacked) > 1
    for part in attacked[1:]:  # as if a single process had been killed after one block
        part.unlink()
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "lpbench",
        *_evaluate_argv(ckpt, data, out, "--resume"),
    ]  # fmt: skip
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    _same(out, single)
    manifest = json.loads(out.read_text())["manifest"]
    assert manifest["world_size"] == 2
    assert done.stdout.count("results:") == 1  # only rank 0 reports and writes
    assert not journal.exists()
