"""Exponential moving average of the weights, as TensorFlow's ExponentialMovingAverage."""

from __future__ import annotations

import torch
from torch import nn


class WeightEMA:
    """Shadow copies of a model's floating-point state (weights and batch-norm statistics).

    With ``num_updates`` n the decay is min(decay, (1 + n) / (10 + n)), as TensorFlow's
    ``ExponentialMovingAverage(decay, num_updates=global_step)`` used by the ALP code, so
    early averages are not dominated by the initial weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {
            k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()
        }

    @torch.no_grad()
    def update(self, model: nn.Module, num_updates: int) -> None:
        """Move the averages towards the model's current state."""
        decay = min(self.decay, (1 + num_updates) / (10 + num_updates))
        state = model.state_dict()
        for key, avg in self.shadow.items():
            avg.lerp_(state[key].detach().to(avg.dtype), 1 - decay)

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state with the averaged entries in place of the current ones."""
        return {k: self.shadow.get(k, v) for k, v in model.state_dict().items()}
