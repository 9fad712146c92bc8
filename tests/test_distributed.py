"""torchrun with 2 CPU processes (gloo) reaches the weights of one process, and resumes;
the one torchrun context that training and evaluation share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lpbench
from lpbench import distributed
from lpbench.attacks import PGD
from lpbench.evaluation import NamedAttack, benchmark
from lpbench.training import TrainConfig, load_checkpoint, read_log, recipe_config, train
from tests.support import TinyNet, write_mnist_folder

#: Two processes average two half-batch gradients where one process takes the mean over
#: the whole batch: the same sum, added in another order. After 8 Adam steps the weights
#: agree to float32 rounding (7e-7 at most, measured) and stay far below this tolerance.
ATOL = 1e-5


def _torchrun(args: list[str], cwd: Path) -> None:
    src = str(Path(lpbench.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", "-m", "lpbench", "train", *args]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_two_processes_match_one_and_resume(tmp_path) -> None:
    data = tmp_path / "data"
    write_mnist_folder(data / "mnist", n_train=64, n_test=16)
    common = ["--preset", "mnist/plain", "--data-dir", str(data), "--batch-size", "16"]
    common += ["--out", str(tmp_path / "ddp"), "--no-progress", "--device", "cpu"]
    _torchrun([*common, "--epochs", "1"], tmp_path)
    _torchrun([*common, "--epochs", "2", "--resume"], tmp_path)

    config = recipe_config("mnist/plain", epochs=2, batch_size=16)
    single, _ = train(config, tmp_path / "one", data_dir=data, device="cpu", show_progress=False)
    multi, meta = load_checkpoint(tmp_path / "ddp")
    assert meta["epoch"] == 2
    for key, value in single.state_dict().items():
        assert torch.allclose(multi.state_dict()[key], value, atol=ATOL, rtol=0), key
    log = read_log(tmp_path / "ddp")
    assert [r["epoch"] for r in log] == [1, 2] and log[-1]["images"] == 64


def test_the_context_reads_torchrun_environment(monkeypatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    alone = distributed.from_env("cpu")
    assert alone == distributed.Context() and alone.is_main and not alone.distributed
    assert alone.positions(3) == [0, 1, 2] and distributed.is_main_process()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = distributed.from_env("cpu")
    assert (ctx.rank, ctx.world_size, ctx.local_rank) == (2, 4, 1)
    assert ctx.device == torch.device("cpu") and ctx.distributed and not ctx.is_main
    assert ctx.positions(10) == [2, 6] and not distributed.is_main_process()


def test_training_and_evaluation_use_the_one_context(mnist_dir, tmp_path, monkeypatch) -> None:
    made: list[distributed.Context] = []
    real_setup = distributed.setup

    def recording_setup(device: str | torch.device | None = None) -> distributed.Context:
        made.append(real_setup(device))
        return made[-1]

    monkeypatch.setattr(distributed, "setup", recording_setup)
    config = TrainConfig(dataset="mnist", epochs=1, batch_size=64, train_points=64)
    train(config, tmp_path / "run", data_dir=mnist_dir, device="cpu", show_progress=False)
    model = TinyNet().eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    attacks = [NamedAttack("pgd", PGD(0.1, 0.05, 1))]
    benchmark(model, (x, y), attacks=attacks, eps=0.1, device="cpu", show_progress=False)
    assert made == [distributed.Context(), distributed.Context()]
