"""LeNet is the original's function despite running ReLU after pooling, channels-last."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lpbench.models import build_model


def _original_order(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """conv-ReLU-pool twice, then dense layers: the original MNIST code's layer order."""
    conv1, conv2 = model.features[0], model.features[3]
    dense1, dense2 = model.classifier[1], model.classifier[3]
    h = F.max_pool2d(F.relu(conv1(x)), 2)
    h = F.max_pool2d(F.relu(conv2(h)), 2)
    return dense2(F.relu(dense1(h.flatten(1))))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_lenet_matches_conv_relu_pool_order(shape) -> None:
    torch.manual_seed(0)
    model = build_model("lenet", shape, 10)
    x = torch.rand(8, *shape, requires_grad=True)
    ours = model(x)
    reference = _original_order(model, x)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    y = torch.arange(8) % 10
    (grad_ours,) = torch.autograd.grad(F.cross_entropy(ours, y), x)
    (grad_ref,) = torch.autograd.grad(F.cross_entropy(reference, y), x)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-5, atol=1e-6)


def test_lenet_parameter_names_are_stable() -> None:
    """Checkpoints name conv layers features.0 / features.3, as before the reordering."""
    names = [name for name, _ in build_model("lenet", (1, 28, 28), 10).named_parameters()]
    assert names == [
        "features.0.weight",
        "features.0.bias",
        "features.3.weight",
        "features.3.bias",
        "classifier.1.weight",
        "classifier.1.bias",
        "classifier.3.weight",
        "classifier.3.bias",
    ]
