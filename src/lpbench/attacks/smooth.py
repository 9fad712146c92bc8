"""A smoothed backward pass through ReLUs, the forward pass left exact (BPDA-style).

Logit pairing, logit squeezing and adversarial training on MNIST leave most ReLUs of a
LeNet off on a typical input (in lpbench's digit models 95-98% of the second and third
layers' units for CLP and LSQ): their gradient is 0, so the input gradient sees only the
few units that are on, and gradient attacks stall where a small change would switch
units on. Backpropagating ``sigmoid(beta * x)`` instead of the step ``x > 0`` (the
derivative of a softplus of sharpness ``beta``) lets the gradient see those units. The
forward pass is untouched, so every logit, loss and verdict is the model's own; only the
direction of the steps changes (Athalye et al. 2018 call such replacements BPDA).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


class _SmoothReLU(torch.autograd.Function):
    """``max(x, 0)`` forward, ``sigmoid(beta * x)`` times the incoming gradient backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, beta: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.beta = beta
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(ctx.beta * x), None


_OUT_OF_PLACE: set[Callable[..., Any]] = {F.relu, torch.relu, torch.Tensor.relu}
_IN_PLACE: set[Callable[..., Any]] = {F.relu_, torch.relu_, torch.Tensor.relu_}


class SmoothReLUBackward(TorchFunctionMode):
    """Within this context every ReLU (``nn.ReLU``, ``F.relu``, ``torch.relu``,
    ``Tensor.relu`` and their in-place forms) returns ``max(x, 0)`` exactly but
    backpropagates ``sigmoid(beta * x)``. ``calls`` counts the ReLUs it replaced, so a
    caller can tell a model without ReLUs (nothing smoothed) from one with them.
    """

    def __init__(self, beta: float) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"the smoothing sharpness beta must be positive, got {beta}")
        self.beta = float(beta)
        self.calls = 0

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        inplace = func in _IN_PLACE or (func is F.relu and kwargs.get("inplace", False))
        if func in _OUT_OF_PLACE or inplace:
            self.calls += 1
            x = args[0]
            if not inplace:
                return _SmoothReLU.apply(x, self.beta)
            return x.copy_(_SmoothReLU.apply(x.clone(), self.beta))
        return func(*args, **kwargs)


def computes_relu(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``model`` computes a ReLU on ``x`` (one forward pass without gradients), so
    that a smoothed backward pass changes something."""
    with torch.no_grad(), SmoothReLUBackward(1.0) as relus:
        model(x)
    return relus.calls > 0
