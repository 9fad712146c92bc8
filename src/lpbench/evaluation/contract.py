"""Pre-flight check of what every attack assumes of a model, before any attack runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class ModelContractError(ValueError):
    """The model breaks an assumption the attacks rely on; the message says which and how."""


class LogitsOf(nn.Module):
    """Adapter for models whose forward returns a tuple or dict: picks the logits.

    ``LogitsOf(model, 0)`` takes element 0 of a tuple output, ``LogitsOf(model, "logits")``
    the ``"logits"`` entry of a dict output, and a callable gets the whole output.
    """

    def __init__(self, model: nn.Module, select: int | str | Callable[[Any], torch.Tensor]):
        super().__init__()
        self.model = model
        self.select = select

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if callable(self.select):
            return self.select(out)
        return out[self.select]


def check_inputs(x: torch.Tensor, y: torch.Tensor) -> None:
    """Inputs in [0, 1], one integer label per input."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels")
    if x.is_floating_point() is False:
        raise ValueError(f"inputs must be floating point in [0, 1], got dtype {x.dtype}")
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError(
            f"inputs must lie in [0, 1], got values in [{float(x.min()):.4g}, "
            f"{float(x.max()):.4g}]: the eps-ball and clipping are defined in pixel space, so "
            "put any normalisation (mean/std) inside the model"
        )
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")


def randomised(model: nn.Module, x: torch.Tensor, *, tol: float = 1e-4) -> bool:
    """Whether two identical calls of ``model`` on ``x`` give different logits (dropout
    left on, a stochastic defense): the test :func:`check_model_contract` refuses on."""
    with torch.no_grad():
        out, again = model(x), model(x)
    scale = max(1.0, float(out.abs().max()))
    return not torch.allclose(out, again, atol=tol * scale, rtol=0)


def check_model_contract(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, tol: float = 1e-4
) -> int:
    """Check the model on a few of the points; return its number of classes.

    The model must be in the mode it will be attacked in (eval) and on the device of
    ``x``. Raises :class:`ModelContractError` with a fix for: outputs that are not one
    tensor of logits (tuple/dict: wrap in :class:`LogitsOf`), probabilities instead of
    logits, non-finite outputs, labels beyond the number of classes, outputs that
    change between two identical calls (dropout, stochastic defenses) or with the batch
    size (rows that influence each other, e.g. BatchNorm in training mode).
    """
    check_inputs(x, y)
    sample = x[:8]
    if len(sample) == 0:
        return 0
    with torch.no_grad():
        out = model(sample)
        if isinstance(out, (tuple, list, dict)):
            kind = "a dict" if isinstance(out, dict) else f"a {type(out).__name__}"
            raise ModelContractError(
                f"the model returns {kind}, not one tensor of logits: wrap it, e.g. "
                "lpbench.LogitsOf(model, 0) or lpbench.LogitsOf(model, 'logits')"
            )
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != len(sample):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelContractError(
                f"the model must return logits of shape (batch, classes); got {shape}"
            )
        classes = out.shape[1]
        if classes < 2:
            raise ModelContractError(f"the model returns {classes} logit(s); need >= 2 classes")
        if not torch.isfinite(out).all():
            raise ModelContractError("the model returns NaN or infinite logits on clean inputs")
        if int(y.max()) >= classes or int(y.min()) < 0:
            raise ModelContractError(
                f"labels range over [{int(y.min())}, {int(y.max())}] but the model has "
                f"{classes} classes"
            )
        row_sums = out.sum(dim=1)
        if (out >= 0).all() and torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-3):
            raise ModelContractError(
                "the model's outputs are non-negative and sum to 1 per row: they look like "
                "probabilities; return the logits (drop the final softmax), otherwise the "
                "cross-entropy of the attacks saturates and gradients vanish"
            )
        again = model(sample)
        scale = max(1.0, float(out.abs().max()))
        if not torch.allclose(out, again, atol=tol * scale, rtol=0):
            raise ModelContractError(
                "two identical calls of the model give different logits (max difference "
                f"{float((out - again).abs().max()):.3g}): the model is randomised (dropout "
                "active, a stochastic defense). lpbench's attacks assume a deterministic "
                "model: call model.eval() or remove the randomness"
            )
        if len(sample) > 1:
            alone = torch.cat([model(sample[i : i + 1]) for i in range(len(sample))])
            if not torch.allclose(out, alone, atol=tol * scale, rtol=0):
                raise ModelContractError(
                    "the model's output for one input depends on the other inputs of the "
                    f"batch (max difference {float((out - alone).abs().max()):.3g}), e.g. "
                    "BatchNorm in training mode: results would depend on batch size"
                )
    return classes
