"""The population's models: activations by name, the MLP, the batch-norm CNN, maskers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lpbench.checkpoint import load_checkpoint, save_checkpoint
from lpbench.models import build_model
from lpbench.models.small import ACTIVATIONS

SHAPE = (1, 28, 28)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize(
    ("model", "options"),
    [("lenet", {"width": 4, "hidden": 16}), ("mlp", {"hidden": 16}), ("cnn-bn", {"width": 4})],
)
def test_models_take_each_activation(model: str, options: dict, name: str) -> None:
    net = build_model(model, SHAPE, 10, activation=name, **options)
    kinds = {type(m) for m in net.modules()}
    assert type(ACTIVATIONS[name]()) in kinds
    others = {type(f()) for key, f in ACTIVATIONS.items() if key != name}
    assert not kinds & others
    assert net(torch.rand(2, *SHAPE)).shape == (2, 10)


def test_unknown_activation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        build_model("mlp", SHAPE, 10, activation="tanh")


def test_mlp_depth_and_batch_norm_cnn_layers() -> None:
    mlp = build_model("mlp", SHAPE, 10, hidden=32, depth=3)
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [32, 32, 32, 10]
    cnn = build_model("cnn-bn", SHAPE, 10, width=4, hidden=8)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in cnn.modules()) == 2


def test_logit_scale_keeps_decisions_and_kills_cross_entropy_gradients() -> None:
    torch.manual_seed(0)
    plain = build_model("lenet", SHAPE, 10, width=4, hidden=16)
    masked = build_model("lenet", SHAPE, 10, width=4, hidden=16, logit_scale=1e4)
    masked.load_state_dict(plain.state_dict())
    x = torch.rand(8, *SHAPE)
    assert torch.allclose(masked(x), plain(x) * 1e4)
    y = plain(x).argmax(1)
    x.requires_grad_(True)
    nn.functional.cross_entropy(masked(x), y, reduction="sum").backward()
    assert x.grad is not None and x.grad.abs().max() == 0


def test_input_levels_round_inputs_and_zero_the_gradient() -> None:
    torch.manual_seed(0)
    plain = build_model("mlp", SHAPE, 10, hidden=16)
    masked = build_model("mlp", SHAPE, 10, hidden=16, input_levels=4)
    masked.load_state_dict(plain.state_dict())
    x = torch.rand(3, *SHAPE, requires_grad=True)
    assert torch.equal(masked(x), plain(torch.round(x * 3) / 3))
    masked(x).sum().backward()
    assert x.grad is not None and x.grad.abs().max() == 0


@pytest.mark.parametrize("options", [{"logit_scale": 0.0}, {"input_levels": 1}])
def test_bad_masker_options_are_refused(options: dict) -> None:
    with pytest.raises(ValueError, match="must be"):
        build_model("mlp", SHAPE, 10, hidden=8, **options)


def test_masker_options_travel_with_a_checkpoint(tmp_path) -> None:
    options = {"hidden": 8, "activation": "relu6", "logit_scale": 10.0, "input_levels": 8}
    net = build_model("mlp", SHAPE, 10, **options)
    meta = {"model": "mlp", "input_shape": list(SHAPE), "num_classes": 10}
    save_checkpoint(tmp_path / "m", net, {**meta, "dataset": "mnist", "model_options": options})
    loaded, _ = load_checkpoint(tmp_path / "m")
    x = torch.rand(4, *SHAPE)
    assert torch.equal(loaded(x), net.eval()(x))
