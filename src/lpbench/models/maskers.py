"""Constructed gradient maskers: a model's function kept, its gradients made useless.

They are known answers for an evaluation: a model behind a masker is exactly as robust
as the model alone (``logit_scale`` keeps every decision; ``input_levels`` changes the
input by at most half a level), yet gradient attacks see nothing (a saturated softmax, a
gradient of zero). An evaluation that reports such a model robust has been fooled.

- ``logit_scale``: logits multiplied by this factor; cross-entropy gradients underflow to
  zero on points classified with a margin, while margin (DLR) losses are unchanged.
- ``input_levels``: inputs rounded to this many grey levels in [0, 1] before the model;
  the rounding has a zero gradient almost everywhere.
- ``input_noise``: Gaussian noise of this standard deviation added to the inputs at every
  call (drawn from torch's global generator): a randomised model, whose single-draw
  gradients are noisy. Unlike the others it changes the function (its predictions are
  random), so its known answer is not the bare model's robustness; it is there to check
  that evaluations of randomised models average gradients over draws (EOT) and re-check
  their examples over several draws. lpbench evaluates it only when asked to treat the
  model as randomised (``eot_iter``, the ``aa-rand`` preset).

All are forward hooks on the model itself, so its weights and their names are those of
the model without the masker: a checkpoint turns into its masked form by adding the
options to its ``model_options``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: The masker options every registered model accepts.
MASKER_OPTIONS = ("logit_scale", "input_levels", "input_noise")


def add_masker(
    model: nn.Module,
    logit_scale: float | None = None,
    input_levels: int | None = None,
    input_noise: float | None = None,
) -> nn.Module:
    """``model`` with the maskers asked for (none: the model unchanged); the noise is
    added after any rounding to levels."""
    if logit_scale is not None:
        if not logit_scale > 0:
            raise ValueError(f"logit_scale must be positive, got {logit_scale}")
        scale = float(logit_scale)

        def scaled(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            return output * scale

        model.register_forward_hook(scaled)
    if input_levels is not None:
        if int(input_levels) != input_levels or input_levels < 2:
            raise ValueError(f"input_levels must be an integer >= 2, got {input_levels}")
        steps = int(input_levels) - 1

        def quantised(_module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
            x, *rest = inputs
            return (torch.round(x * steps) / steps, *rest)

        model.register_forward_pre_hook(quantised)
    if input_noise is not None:
        if not input_noise > 0:
            raise ValueError(f"input_noise must be positive, got {input_noise}")
        sigma = float(input_noise)

        def noisy(_module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
            x, *rest = inputs
            return (x + sigma * torch.randn_like(x), *rest)

        model.register_forward_pre_hook(noisy)
    return model
