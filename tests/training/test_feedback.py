"""What ``lpbench train`` tells its user: a line per epoch, a warning for a run far
shorter than its recipe, how to continue after Ctrl-C; and its default data set."""

from __future__ import annotations

import importlib

import pytest

from lpbench.training import TrainConfig, recipe_config
from tests.support import run, write_mnist_folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("data"), n_train=128, n_test=32)


def _train(data, out, *extra: str) -> list[str]:
    return [
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        str(data),
        "--batch-size",
        "64",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_a_line_per_epoch_and_a_warning_for_a_short_run(data, tmp_path, capsys) -> None:
    code, _, err = run(
        capsys,
        *_train(data, tmp_path / "run", "--preset", "at50", "--epochs", "2"),
        "--eval-adv-points",
        "8",
        "--adv-iters",
        "2",
    )
    assert code == 0, err
    lines = err.strip().splitlines()
    assert lines[0] == (
        "warning: 2 of the recipe's 100 epochs: expect far weaker accuracy and robustness "
        "than the paper's"
    )
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    for line in epochs:
        assert "loss ce " in line and "at " in line and "total " in line
        assert "test accuracy " in line and "adversarial accuracy " in line
        assert line.endswith(" images/s")


def test_no_warning_for_the_recipe_length_or_a_custom_length_near_it(data) -> None:
    from lpbench.commands.train import TrainSettings, short_run_warning, train_config

    settings = TrainSettings(dataset="mnist", preset="clp", epochs=50)
    assert short_run_warning(settings, train_config(settings)) is None
    settings = TrainSettings(dataset="mnist", preset="clp")
    assert short_run_warning(settings, train_config(settings)) is None


def test_ctrl_c_during_train_says_how_to_resume(data, tmp_path, capsys, monkeypatch) -> None:
    trainer = importlib.import_module("lpbench.training.trainer")
    real = trainer._Run.epoch

    def epoch(self, number, *args, **kwargs):
        if number == 2:
            raise KeyboardInterrupt
        return real(self, number, *args, **kwargs)

    monkeypatch.setattr(trainer._Run, "epoch", epoch)
    out = tmp_path / "run"
    code, _, err = run(capsys, *_train(data, out, "--preset", "clp", "--epochs", "3"))
    assert code == 130
    assert err.strip().splitlines()[-1] == (
        f"interrupted: rerun the same command with --resume to continue from {out}"
    )
    monkeypatch.setattr(trainer._Run, "epoch", real)
    code, _, err = run(capsys, *_train(data, out, "--preset", "clp", "--epochs", "3", "--resume"))
    assert code == 0, err


def test_ctrl_c_before_anything_is_saved_gives_no_resume_hint(
    data, tmp_path, capsys, monkeypatch
) -> None:
    trainer = importlib.import_module("lpbench.training.trainer")

    def epoch(self, number, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer._Run, "epoch", epoch)
    code, _, err = run(capsys, *_train(data, tmp_path / "run", "--epochs", "1"))
    assert code == 130 and err.strip().splitlines()[-1] == "interrupted"


def test_short_recipes_default_to_the_shipped_digits() -> None:
    assert recipe_config("clp").dataset == "mnist-digits"
    assert recipe_config("clp", "fashion-mnist").dataset == "fashion-mnist"
    assert TrainConfig().dataset == "mnist-digits"
