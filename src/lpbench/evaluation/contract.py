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
    """Inputs a batch of images (N x C x H x W), floating point, finite and in [0, 1]; one
    integer label per input. Each refusal names what was found and what is expected."""
    for name, value in (("inputs", x), ("labels", y)):
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{name} must be a torch.Tensor, got {type(value).__name__} "
                "(e.g. torch.from_numpy(array))"
            )
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels")
    if not x.is_floating_point():
        hint = ": convert with x.float() / 255" if x.dtype == torch.uint8 else ""
        raise ValueError(f"inputs must be floating point in [0, 1], got dtype {x.dtype}{hint}")
    if x.dim() != 4:
        hint = (
            ": add the channel dimension, e.g. x.unsqueeze(1) for grey images"
            if x.dim() == 3
            else ""
        )
        raise ValueError(
            f"inputs must be a batch of images N x C x H x W, got shape {tuple(x.shape)}{hint}"
        )
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        nan = int(torch.isnan(x).sum())
        inf = int((~finite).sum()) - nan
        held = " and ".join(
            f"{count} {what} value(s)" for count, what in ((nan, "NaN"), (inf, "infinite")) if count
        )
        rows = (~finite).flatten(1).any(dim=1).nonzero().squeeze(1)
        raise ValueError(
            f"the inputs hold {held} in {len(rows)} input(s), the first at index "
            f"{int(rows[0])}: fix or drop them (the model is not to blame)"
        )
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError(
            f"inputs must lie in [0, 1], got values in [{float(x.min()):.4g}, "
            f"{float(x.max()):.4g}]: the eps-ball and clipping are defined in pixel space, so "
            "put any normalisation (mean/std) inside the model"
        )
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    if y.dim() != 1:
        raise ValueError(
            f"labels must be one class index per input (shape N), got shape {tuple(y.shape)}"
        )


def check_logits(out: Any, rows: int) -> int:
    """The class count of a model's output ``out`` on ``rows`` inputs; ModelContractError,
    saying how to fix it, when ``out`` is not one tensor of logits (rows x classes)."""
    if isinstance(out, dict):
        keys = list(out)
        fits = [k for k in keys if _looks_like_logits(out[k], rows)]
        pick = "logits" if "logits" in out else (fits or keys or ["logits"])[0]
        raise ModelContractError(
            f"the model returns a dict with keys {keys}, not one tensor of logits: wrap it, "
            f"e.g. lpbench.LogitsOf(model, {pick!r})"
        )
    if isinstance(out, (tuple, list)):
        pick = next((i for i, v in enumerate(out) if _looks_like_logits(v, rows)), 0)
        raise ModelContractError(
            f"the model returns a {type(out).__name__} of {len(out)} outputs, not one tensor "
            f"of logits: wrap it, e.g. lpbench.LogitsOf(model, {pick})"
        )
    if not _looks_like_logits(out, rows):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelContractError(
            f"the model must return logits of shape (batch, classes); got {shape}"
        )
    return int(out.shape[1])


def _looks_like_logits(value: Any, rows: int) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == rows


def randomised(model: nn.Module, x: torch.Tensor, *, tol: float = 1e-4) -> bool:
    """Whether two identical calls of ``model`` on ``x`` give different logits (dropout
    left on, a stochastic defense): the test :func:`check_model_contract` refuses on."""
    with torch.no_grad():
        out, again = model(x), model(x)
    return _differ(out, again, tol)


def _differ(out: torch.Tensor, other: torch.Tensor, tol: float) -> bool:
    """Whether ``other`` differs from ``out`` by more than ``tol`` times the scale of
    ``out``'s logits (at least 1)."""
    scale = max(1.0, float(out.abs().max()))
    return not torch.allclose(out, other, atol=tol * scale, rtol=0)


def check_model_contract(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    tol: float = 1e-4,
    randomised_ok: bool = False,
) -> int:
    """Check the model on a few of the points; return its number of classes.

    The model must be in the mode it will be attacked in (eval) and on the device of
    ``x``. Raises :class:`ModelContractError` with a fix for: outputs that are not one
    tensor of logits (tuple/dict: wrap in :class:`LogitsOf`), probabilities instead of
    logits, non-finite outputs, labels beyond the number of classes, outputs that
    change between two identical calls (dropout, stochastic defenses) or with the batch
    size (rows that influence each other, e.g. BatchNorm in training mode).
    ``randomised_ok``: outputs that change between identical calls are accepted (an
    evaluation of a randomised model, with EOT); the batch-size test is then skipped, as
    two calls cannot be compared.
    """
    check_inputs(x, y)
    sample = x[:8]
    if len(sample) == 0:
        return 0
    with torch.no_grad():
        out = model(sample)
        classes = check_logits(out, len(sample))
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
        if _differ(out, again, tol):
            if randomised_ok:
                return classes
            raise ModelContractError(
                "two identical calls of the model give different logits (max difference "
                f"{float((out - again).abs().max()):.3g}): the model is randomised (dropout "
                "active, a stochastic defense). Call model.eval() or remove the randomness; "
                "to evaluate a randomised defense as such, ask for EOT: eot_iter=20 or "
                "preset='aa-rand' (CLI: --eot-iter 20 or --preset aa-rand)"
            )
        if len(sample) > 1:
            alone = torch.cat([model(sample[i : i + 1]) for i in range(len(sample))])
            if _differ(out, alone, tol):
                raise ModelContractError(
                    "the model's output for one input depends on the other inputs of the "
                    f"batch (max difference {float((out - alone).abs().max()):.3g}), e.g. "
                    "BatchNorm in training mode: results would depend on batch size"
                )
    return classes
