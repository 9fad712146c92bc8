"""Training: seeded, logged, checkpointed atomically, resumable to the same weights."""

from __future__ import annotations

import json

import pytest
import torch

from lpbench.defenses import ObjectiveConfig
from lpbench.training import CheckpointError, TrainConfig, load_checkpoint, train
from lpbench.training import trainer as trainer_module

CONFIG = TrainConfig(
    dataset="mnist",
    objective=ObjectiveConfig(clp=0.5, noise_std=0.5),
    preset="clp",
    epochs=2,
    batch_size=64,
    seed=3,
)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_after_a_kill_reaches_the_same_weights(mnist_dir, tmp_path, monkeypatch) -> None:
    reference, history = train(CONFIG, tmp_path / "ref", data_dir=mnist_dir, show_progress=False)
    assert [r["epoch"] for r in history] == [1, 2]

    real_terms = trainer_module.objective_terms
    calls = {"n": 0}
    batches_per_epoch = 256 // 64

    def killed_mid_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > batches_per_epoch + 2:
            raise KeyboardInterrupt("simulated kill")
        return real_terms(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "objective_terms", killed_mid_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(CONFIG, tmp_path / "run", data_dir=mnist_dir, show_progress=False)
    monkeypatch.setattr(trainer_module, "objective_terms", real_terms)
    log = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 1  # only epoch 1 was completed and saved

    with pytest.raises(FileExistsError, match="resume"):
        train(CONFIG, tmp_path / "run", data_dir=mnist_dir, show_progress=False)
    resumed, history = train(
        CONFIG, tmp_path / "run", data_dir=mnist_dir, resume=True, show_progress=False
    )
    assert [r["epoch"] for r in history] == [1, 2]
    ref, got = _weights(reference), _weights(resumed)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    on_disk, meta = load_checkpoint(tmp_path / "run")
    assert all(torch.equal(ref[k], v) for k, v in _weights(on_disk).items())
    assert meta["epoch"] == 2 and meta["preset"] == "clp" and meta["dataset"] == "mnist"


def test_log_and_checkpoint_metadata(mnist_dir, tmp_path) -> None:
    config = TrainConfig(dataset="mnist", epochs=1, batch_size=128, eval_adv_points=20)
    train(config, tmp_path / "run", data_dir=mnist_dir, show_progress=False)
    record = json.loads((tmp_path / "run" / "train_log.jsonl").read_text())
    for key in (
        "epoch",
        "loss_ce",
        "loss_total",
        "test_accuracy",
        "adv_accuracy_baseline",
        "images_per_s",
    ):
        assert key in record
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["format"] == "lpbench-checkpoint"
    assert meta["objective"]["ce"] == 1.0 and meta["input_shape"] == [1, 28, 28]
    assert "lpbench_version" in meta and meta["metrics"]["epoch"] == 1


def test_resume_refuses_other_settings(mnist_dir, tmp_path) -> None:
    config = TrainConfig(dataset="mnist", epochs=1, batch_size=128)
    train(config, tmp_path / "run", data_dir=mnist_dir, show_progress=False)
    other = TrainConfig(dataset="mnist", epochs=2, batch_size=128, lr=0.01)
    with pytest.raises(ValueError, match="lr"):
        train(other, tmp_path / "run", data_dir=mnist_dir, resume=True, show_progress=False)
    # more epochs with the same settings is allowed: it continues
    longer = TrainConfig(dataset="mnist", epochs=2, batch_size=128)
    _, history = train(
        longer, tmp_path / "run", data_dir=mnist_dir, resume=True, show_progress=False
    )
    assert [r["epoch"] for r in history] == [1, 2]


def test_adversarial_training_runs(mnist_dir, tmp_path) -> None:
    config = TrainConfig(
        dataset="mnist",
        objective=ObjectiveConfig(ce=0.5, at=0.5, alp=0.5),
        epochs=1,
        batch_size=128,
        adv_iters=2,
        train_points=128,
    )
    _, history = train(config, tmp_path / "run", data_dir=mnist_dir, show_progress=False)
    assert {"loss_at", "loss_alp", "loss_ce"} <= set(history[0])


def test_checkpoint_errors(mnist_dir, tmp_path) -> None:
    config = TrainConfig(dataset="mnist", epochs=1, batch_size=128, train_points=64)
    train(config, tmp_path / "run", data_dir=mnist_dir, show_progress=False)
    with pytest.raises(CheckpointError, match="fashion-mnist"):
        load_checkpoint(tmp_path / "run", dataset="fashion-mnist")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "run" / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "run")
