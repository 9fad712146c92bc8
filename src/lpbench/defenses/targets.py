"""Target classes for targeted adversarial training: least likely (LL) and random."""

from __future__ import annotations

import torch
from torch import nn

TARGETS = ("none", "ll", "random")


def least_likely_targets(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The argmin of the clean logits, computed with the model in eval mode.

    The model's mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x).argmin(dim=1)
    finally:
        model.train(was_training)


def random_targets(
    num: int, num_classes: int, generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Uniform classes, which may equal the true one (as the ALP code drew them)."""
    return torch.randint(num_classes, (num,), generator=generator).to(device)
