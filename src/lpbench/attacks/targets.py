"""Target classes for targeted attacks: least likely, or random and fixed per point."""

from __future__ import annotations

import torch
from torch import nn

from lpbench.attacks.keyed import derive_key, keyed_randint

TARGET_MODES = ("ll", "random")


def least_likely(model: nn.Module, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """The argmin of the clean logits per input ("LL" target)."""
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]).argmin(1) for i in range(0, len(x), batch)])


def random_other_class(
    seed: int, stream: str, index: torch.Tensor, y: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """A class other than ``y``, uniform, drawn once per (seed, stream, data-set index)."""
    if num_classes < 2:
        raise ValueError("a random target needs at least 2 classes")
    key = derive_key(seed, stream, "target")
    offset = keyed_randint(key, index, 0, num_classes - 1).squeeze(1).to(y.device)
    return (y + 1 + offset) % num_classes


def top_other_classes(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Per row, the ``k`` classes other than ``y`` with the largest logits, best first.

    ``k`` is capped at ``classes - 1``: the class count comes from the logits.
    """
    k = min(k, logits.shape[1] - 1)
    if k < 1:
        raise ValueError("targets need at least 2 classes")
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.sort(dim=1, descending=True, stable=True).indices[:, :k]


def choose_targets(
    mode: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    index: torch.Tensor,
    *,
    seed: int,
    stream: str,
) -> torch.Tensor:
    """Targets for ``mode`` ("ll" or "random"), computed with the model as it is now."""
    if mode == "ll":
        return least_likely(model, x)
    if mode == "random":
        with torch.no_grad():
            classes = model(x[:1]).shape[1]
        return random_other_class(seed, stream, index, y, classes)
    raise ValueError(f"unknown target mode {mode!r}; choose one of {', '.join(TARGET_MODES)}")
