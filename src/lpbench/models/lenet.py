"""The LeNet of the logit-pairing paper's MNIST code."""

from __future__ import annotations

import torch
from torch import nn

from lpbench.models.small import he_init, make_activation


class LeNet(nn.Module):
    """conv3x3(32)-ReLU-maxpool, conv3x3(64)-ReLU-maxpool, dense 1024-ReLU, dense classes.

    'Same' padding, no batch norm, He-normal initialisation (as in the original code).
    ReLU runs after max-pooling: the two commute (ReLU is monotonic), so the function and
    its gradients are the original's, on a quarter of the activations. Convolution weights
    are kept channels-last; together this made training and PGD ~1.5x faster on a 2-core
    CPU (before/after figures of ``benchmarks/attack_throughput.py`` in the README).
    ``width`` (first convolution's filters, the second has twice as many) and ``hidden``
    (units of the first dense layer) default to the original's 32 and 1024; tests use
    smaller values to keep fixtures small. ``activation`` (default ``relu``) names another
    activation (:data:`lpbench.models.small.ACTIVATIONS`), applied at the same places, after
    pooling (for the non-monotonic GELU this is not the same as before pooling).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        width: int = 32,
        hidden: int = 1024,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            make_activation(activation),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            make_activation(activation),
        )
        flat = 2 * width * (image_size // 4) ** 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            make_activation(activation),
            nn.Linear(hidden, num_classes),
        )
        he_init(self)
        # Module.to takes memory_format at run time; torch's overloads do not list it.
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
