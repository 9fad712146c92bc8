"""The pre-flight: a model's facts, established once before an evaluation or a check.

:func:`prepared` puts the model in evaluation mode on the device (restored afterwards),
checks the inputs and the model contract (:mod:`lpbench.evaluation.contract`) and finds
the class count and whether the model computes ReLUs; the :class:`ModelFacts` it yields
are passed down to the resolver, the schedule, :func:`~lpbench.evaluation.evaluate` and
:func:`~lpbench.check` instead of each asking the model again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from lpbench.attacks.smooth import computes_relu
from lpbench.evaluation.contract import check_inputs, check_logits, check_model_contract
from lpbench.runtime import evaluation_mode


@dataclass(frozen=True)
class ModelFacts:
    """What the pre-flight established: the device the model is on (in eval mode), its
    number of classes and whether it computes a ReLU, which ``auto``'s smoothed runs need.
    (``num_classes`` None: facts not taken from a model, e.g. built by hand.)"""

    device: torch.device
    num_classes: int | None
    computes_relu: bool


def model_facts(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    *,
    contract: bool = True,
) -> ModelFacts:
    """The facts of ``model``, already in eval mode on ``device``, on the points ``(x, y)``
    (CPU or any device), before anything else touches the model: the inputs checked
    (:func:`~lpbench.evaluation.contract.check_inputs`; at least one point), the model
    contract on the first 8 points (unless ``contract`` is False: ``check`` probes
    randomised models too; the output must still be one tensor of logits), the class count
    and the ReLUs on the first one."""
    check_inputs(x, y)
    if len(x) == 0:
        raise ValueError("no points: the inputs hold 0 images; give at least one")
    if contract:
        check_model_contract(model, x[:8].to(device), y[:8].to(device))
    first = x[:1].to(device)
    with torch.no_grad():
        classes = check_logits(model(first), 1)
    return ModelFacts(device, classes, computes_relu(model, first))


@contextmanager
def prepared(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    *,
    contract: bool = True,
) -> Iterator[ModelFacts]:
    """``model`` in eval mode on ``device`` for the block, with its :func:`model_facts`;
    its mode and device are restored afterwards."""
    with evaluation_mode(model, device):
        yield model_facts(model, x, y, device, contract=contract)
