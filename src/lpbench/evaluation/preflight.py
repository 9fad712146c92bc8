"""The pre-flight: a model's facts, established once before an evaluation or a check.

:func:`prepared` puts the model in evaluation mode on the device (restored afterwards),
checks the inputs and the model contract (:mod:`lpbench.evaluation.contract`) and finds
the class count and the model's ReLU-like ops (smoothed or not); the :class:`ModelFacts`
it yields are passed down to the resolver, the schedule,
:func:`~lpbench.evaluation.evaluate` and :func:`~lpbench.check` instead of each asking the
model again.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lpbench.attacks.smooth import ReLUFacts, relu_facts
from lpbench.evaluation.contract import (
    check_inputs,
    check_logits,
    check_model_contract,
    randomised,
)
from lpbench.runtime import evaluation_mode


@dataclass(frozen=True)
class ModelFacts:
    """What the pre-flight established: the device the model is on (in eval mode), its
    number of classes, whether it computes a ReLU that can be smoothed, which ``auto``'s
    smoothed runs need, and its ReLU-like ops, smoothed or not (``relus``).
    ``forwards``: the rows of the forward passes the pre-flight ran (charged to the
    evaluation). ``randomised``: two identical calls gave different logits (established
    only when the caller accepts randomised models). (``num_classes`` or ``relus`` None:
    facts not taken from a model, e.g. built by hand.)"""

    device: torch.device
    num_classes: int | None
    computes_relu: bool
    relus: ReLUFacts | None = None
    forwards: int = field(default=0, compare=False)
    randomised: bool = False

    def smooth_skipped(self) -> str:
        """Why ``auto`` leaves out its smoothed runs (for a model that computes no ReLU
        that can be smoothed)."""
        return (self.relus or ReLUFacts()).nothing_to_smooth()


def model_facts(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    *,
    contract: bool = True,
    randomised_ok: bool = False,
) -> ModelFacts:
    """The facts of ``model``, already in eval mode on ``device``, on the points ``(x, y)``
    (CPU or any device), before anything else touches the model: the inputs checked
    (:func:`~lpbench.evaluation.contract.check_inputs`; at least one point), the model
    contract on the first 8 points (unless ``contract`` is False: ``check`` probes
    randomised models too; the output must still be one tensor of logits; with
    ``randomised_ok`` the contract accepts a randomised model and the facts say whether it
    is one), the class count and the ReLU-like ops
    (:func:`~lpbench.attacks.smooth.relu_facts`) on the first one."""
    check_inputs(x, y)
    if len(x) == 0:
        raise ValueError("no points: the inputs hold 0 images; give at least one")
    counted = _RowCounter(model)
    if contract:
        check_model_contract(
            counted, x[:8].to(device), y[:8].to(device), randomised_ok=randomised_ok
        )
    random = randomised_ok and randomised(counted, x[:8].to(device))
    first = x[:1].to(device)
    with torch.no_grad():
        classes = check_logits(counted(first), 1)
    relus = relu_facts(model, first)  # the model itself: its module names are reported
    forwards = counted.rows + len(first)  # relu_facts runs one forward pass
    return ModelFacts(
        device, classes, relus.computes_relu, relus, forwards=forwards, randomised=random
    )


class _RowCounter(nn.Module):
    """``model``, counting the rows of its forward passes (a wrapper: TorchScript modules
    take no hooks). Built around a model already in eval mode, and left in it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows = 0
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> Any:
        self.rows += len(x)
        return self.model(x)


def smoothing_record(
    facts: ModelFacts, attacks: Sequence[Any], *, warn: bool = True
) -> dict[str, Any] | None:
    """What a results file records when ``attacks`` (named attacks) hold a smoothed one:
    the ReLU-like calls of one forward pass, smoothed and not, per form
    (:meth:`~lpbench.attacks.smooth.ReLUFacts.to_dict`); None when none is smoothed or the
    facts are not taken from a model. With ``warn``, one warning (a line) when the model
    is only partly smoothed."""
    smoothed = any(getattr(a.attack, "smooth_relu", None) is not None for a in attacks)
    if not smoothed or facts.relus is None:
        return None
    line = facts.relus.partly_smoothed()
    if warn and line is not None:
        warnings.warn(line, stacklevel=3)
    return facts.relus.to_dict()


@contextmanager
def prepared(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    *,
    contract: bool = True,
    randomised_ok: bool = False,
) -> Iterator[ModelFacts]:
    """``model`` in eval mode on ``device`` for the block, with its :func:`model_facts`
    (``contract``, ``randomised_ok`` as there); its mode and device are restored afterwards."""
    with evaluation_mode(model, device):
        yield model_facts(model, x, y, device, contract=contract, randomised_ok=randomised_ok)
