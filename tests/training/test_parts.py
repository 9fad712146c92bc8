"""Pieces of the training engine: targets, crafting modes, objective options, EMA,
learning-rate schedule, and the train / data / plot-training commands."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lpbench.cli import main
from lpbench.defenses import (
    ObjectiveConfig,
    add_input_noise,
    least_likely_targets,
    objective_terms,
    weight_l2,
)
from lpbench.training import RECIPES, read_log
from lpbench.training.adversarial import crafting_mode
from lpbench.training.ema import WeightEMA
from lpbench.training.trainer import _lr_at
from tests.support import write_tiny_imagenet_tree


class BNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _warm(model: nn.Module) -> None:
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, 1, 8, 8) * 3)


def test_least_likely_targets_use_eval_mode_and_restore_it() -> None:
    model = BNNet()
    _warm(model)
    x = torch.rand(6, 1, 8, 8)
    model.train()
    targets = least_likely_targets(model, x)
    assert model.training
    model.eval()
    assert torch.equal(targets, model(x).argmin(1))


def test_crafting_mode_train_uses_batch_statistics_and_keeps_running_ones() -> None:
    model = BNNet()
    _warm(model)
    before = {k: v.clone() for k, v in model.named_buffers()}
    x = torch.rand(6, 1, 8, 8)
    with crafting_mode(model, "train"):
        assert model.training
        inside = model(x)
    assert all(torch.equal(before[k], v) for k, v in model.named_buffers())
    model.eval()
    assert not torch.allclose(inside, model(x))
    with crafting_mode(model, "eval"):
        assert not model.training


def test_objective_options_of_the_tiny_imagenet_code() -> None:
    model = BNNet().train()
    x, x_adv = torch.rand(8, 1, 8, 8), torch.rand(8, 1, 8, 8)
    y = torch.randint(0, 5, (8,))
    smooth = ObjectiveConfig(label_smoothing=0.1)
    expected = F.cross_entropy(model(x), y, label_smoothing=0.1)
    assert torch.allclose(objective_terms(model, x, y, smooth)["ce"], expected)
    joint = ObjectiveConfig(ce=0.5, at=0.5, lsq=0.05, joint_batch=True)
    separate = dataclasses.replace(joint, joint_batch=False)
    logits = model(torch.cat([x, x_adv]))  # batch norm sees both halves
    terms = objective_terms(model, x, y, joint, x_adv)
    assert torch.allclose(terms["at"], F.cross_entropy(logits[8:], y))
    assert torch.allclose(terms["lsq"], logits.norm(dim=1).mean())
    assert not torch.allclose(terms["at"], objective_terms(model, x, y, separate, x_adv)["at"])
    halves = objective_terms(model, x, y, ObjectiveConfig(clp=0.5, clp_halves=True))
    expected = F.mse_loss(model(x[:4]), model(x[4:]))  # each half with its own statistics
    assert torch.allclose(halves["clp"], expected)
    whole = objective_terms(model, x, y, ObjectiveConfig(clp=0.5))
    assert not torch.allclose(whole["clp"], expected)
    bn_shift = model.body[1].bias
    with torch.no_grad():
        bn_shift.fill_(3.0)
    gap = weight_l2(model, include_norm_shift=True) - weight_l2(model)
    assert torch.isclose(gap, torch.tensor(0.5 * 9 * 4))
    noisy = add_input_noise(torch.ones(4, 3), 0.5, torch.Generator().manual_seed(0), clip=False)
    assert noisy.max() > 1
    assert add_input_noise(torch.ones(4, 3), 0.5, torch.Generator().manual_seed(0)).max() <= 1


def test_ema_follows_tensorflow_and_lr_schedule() -> None:
    model = nn.Linear(2, 1)
    ema = WeightEMA(model, 0.9999)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, num_updates=1)  # decay min(0.9999, 2 / 11)
    expected = start * (2 / 11) + (start + 1) * (9 / 11)
    assert torch.allclose(ema.state_dict(model)["weight"], expected)
    tiny = RECIPES["tiny-imagenet/plain"].config
    assert [_lr_at(tiny, e) for e in (1, 80, 81, 90, 91, 100)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5]
    )


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_presets_prepare_train_plot(tmp_path, capsys) -> None:
    code, out, _ = _run(capsys, "train", "--list-presets")
    assert code == 0 and all(name in out for name in RECIPES)
    tree, _, _ = write_tiny_imagenet_tree(tmp_path / "src", per_class=2, n_val=4)
    data = tmp_path / "data"
    code, out, err = _run(
        capsys, "data", "prepare", "tiny-imagenet", "--source", str(tree), "--data-dir",
        str(data), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert (data / "tiny-imagenet" / "val-images.npy").is_file()
    common = ["--data-dir", str(data), "--epochs", "1", "--batch-size", "4", "--width", "2"]
    common += ["--adv-iters", "1", "--no-progress"]
    code, _, err = _run(
        capsys, "train", "--preset", "tiny-imagenet/finetuned-plain-alp-ll", *common
    )
    assert code == 2 and "--init-from" in err
    run = tmp_path / "run"
    code, out, err = _run(
        capsys, "train", "--preset", "tiny-imagenet/50at-ll", "--eval-adv-points", "2",
        "--out", str(run), *common,
    )  # fmt: skip
    assert code == 0, err
    assert read_log(run)[0]["images"] == 6 and (run / "model_ema.safetensors").is_file()
    code, out, err = _run(capsys, "plot-training", str(run))
    assert code == 0, err
    png = run / "training.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_tensorboard_events_when_installed(mnist_dir, tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from lpbench.training import recipe_config, train

    config = recipe_config("mnist/plain", epochs=1, batch_size=64, train_points=64)
    train(config, tmp_path / "run", data_dir=mnist_dir, show_progress=False)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_init_from_starts_at_the_checkpoint(mnist_dir, tmp_path) -> None:
    from lpbench.training import CheckpointError, load_checkpoint, recipe_config, train

    base = recipe_config("mnist/plain", epochs=1, batch_size=64, train_points=64)
    source, _ = train(base, tmp_path / "source", data_dir=mnist_dir, show_progress=False)
    tuned = dataclasses.replace(base, init_from=str(tmp_path / "source"), lr=1e-12, seed=5)
    model, _ = train(tuned, tmp_path / "tuned", data_dir=mnist_dir, show_progress=False)
    for key, value in source.state_dict().items():
        assert torch.allclose(model.state_dict()[key], value, atol=1e-9)
    with pytest.raises(CheckpointError, match="not 'resnet20-v2'"):
        load_checkpoint(tmp_path / "source", model="resnet20-v2")
