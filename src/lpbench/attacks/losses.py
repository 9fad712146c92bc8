"""Per-example losses that attacks maximise, and the success criterion."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

AttackLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def _other_max(logits: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """Largest logit among the classes other than ``cls``."""
    masked = logits.scatter(1, cls[:, None], float("-inf"))
    return masked.max(dim=1).values


def cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
) -> torch.Tensor:
    """CE of the true class (untargeted) or minus CE of the target class (targeted)."""
    if target is None:
        return F.cross_entropy(logits, y, reduction="none")
    return -F.cross_entropy(logits, target, reduction="none")


def margin(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Carlini-Wagner margin: best other logit minus the true one (target minus best other)."""
    if target is None:
        return _other_max(logits, y) - logits.gather(1, y[:, None]).squeeze(1)
    return logits.gather(1, target[:, None]).squeeze(1) - _other_max(logits, target)


def dlr(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020): the margin scaled by the logit spread.

    Invariant to shifting and scaling the logits, which defeats logit squeezing's small
    logits. Needs at least 3 classes (4 when targeted).
    """
    ordered = logits.sort(dim=1, descending=True).values
    if target is None:
        if logits.shape[1] < 3:
            raise ValueError("the DLR loss needs at least 3 classes")
        spread = ordered[:, 0] - ordered[:, 2]
        return margin(logits, y, None) / (spread + 1e-12)
    if logits.shape[1] < 4:
        raise ValueError("the targeted DLR loss needs at least 4 classes")
    spread = ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3])
    true = logits.gather(1, y[:, None]).squeeze(1)
    tgt = logits.gather(1, target[:, None]).squeeze(1)
    return -(true - tgt) / (spread + 1e-12)


LOSSES: dict[str, AttackLoss] = {"ce": cross_entropy, "margin": margin, "dlr": dlr}


def get_loss(name: str) -> AttackLoss:
    """The loss called ``name``; a clear error for an unknown one."""
    if name not in LOSSES:
        raise ValueError(f"unknown attack loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def is_adversarial(
    logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
) -> torch.Tensor:
    """Misclassified (untargeted) or classified as the target (targeted)."""
    pred = logits.argmax(dim=1)
    return pred != y if target is None else pred == target
