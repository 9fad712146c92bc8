"""Small models beside LeNet: an MLP and a CNN with batch norm, for model populations.

Both take the activation by name (:data:`ACTIVATIONS`), so one architecture can be trained
with ReLU, ReLU6, LeakyReLU or GELU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: Activations a model can be built with, by name.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky-relu": lambda: nn.LeakyReLU(0.1),
    "gelu": nn.GELU,
}


def make_activation(name: str) -> nn.Module:
    """A new activation module called ``name`` (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def he_init(model: nn.Module) -> None:
    """He-normal weights and zero biases for every convolution and dense layer."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            assert module.bias is not None  # built with the default bias=True
            nn.init.zeros_(module.bias)


class MLP(nn.Module):
    """Flatten, ``depth`` dense layers of ``hidden`` units with an activation, dense classes."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        hidden: int = 256,
        depth: int = 2,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = int(torch.tensor(input_shape).prod())
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), make_activation(activation)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BatchNormCNN(nn.Module):
    """Two blocks conv3x3-BN-activation-maxpool (``width``, 2 x ``width`` filters), dense
    ``hidden``-activation, dense classes."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 16,
        hidden: int = 128,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        channels, height, _ = input_shape
        blocks: list[nn.Module] = []
        for n_in, n_out in ((channels, width), (width, 2 * width)):
            blocks += [
                nn.Conv2d(n_in, n_out, kernel_size=3, padding=1),
                nn.BatchNorm2d(n_out),
                make_activation(activation),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * (height // 4) ** 2, hidden),
            make_activation(activation),
            nn.Linear(hidden, num_classes),
        )
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
