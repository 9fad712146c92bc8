"""Re-running the model on adversarial examples: predictions, which examples are truly
adversarial (in the eps-ball, in [0, 1], misclassified) and a strict check that raises;
the keyed draws of a randomised model's noise (:func:`keyed_noise`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from lpbench.attacks.keyed import derive_key

#: Re-checks of each stored example of a randomised model: it counts as adversarial only
#: when every one of these draws misclassifies it.
RANDOMISED_RECHECKS = 10


@contextmanager
def keyed_noise(enabled: bool, device: torch.device, *parts: object) -> Iterator[None]:
    """With ``enabled`` (a randomised model), torch's global generator seeded from
    ``parts`` for the block, and the caller's generator state restored after: the model's
    draws repeat when the block does (same points, same batch size)."""
    if not enabled:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(derive_key(*parts))
        yield


class VerificationError(RuntimeError):
    """A stored adversarial example does not do what the evaluation claimed."""


def predict(
    model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Predicted classes of ``x`` (on the CPU), ``batch_size`` inputs at a time."""
    with torch.no_grad():
        return torch.cat(
            [
                model(x[i : i + batch_size].to(device)).argmax(1).cpu()
                for i in range(0, len(x), batch_size)
            ]
            or [torch.zeros(0, dtype=torch.int64)]
        )


def checked_predictions(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
    tol: float = 1e-6,
    draws: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example, whether it is inside the eps-ball (up to ``tol``), inside [0, 1] and
    misclassified when re-run, and the prediction it was read from (one forward pass per
    example and draw, ``batch_size`` at a time on ``device``). With ``draws`` > 1 (a
    randomised model) it must be misclassified in every draw; the prediction is the last
    draw's."""
    if len(x_adv) == 0:
        return torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.int64)
    dist = (x_adv - x).flatten(1).abs().max(dim=1).values
    in_box = (x_adv.flatten(1).min(dim=1).values >= 0) & (x_adv.flatten(1).max(dim=1).values <= 1)
    wrong = torch.ones(len(x_adv), dtype=torch.bool)
    for _ in range(draws):
        pred = predict(model, x_adv, batch_size, torch.device(device))
        wrong &= pred != y.cpu()
    return (dist.cpu() <= eps + tol) & in_box.cpu() & wrong, pred


def adversarial_mask(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    **options: Any,
) -> torch.Tensor:
    """Per example: inside the eps-ball, inside [0, 1] and misclassified when re-run
    (``options``: ``batch_size``, ``device``, ``tol`` of :func:`checked_predictions`)."""
    return checked_predictions(model, x, x_adv, y, eps, **options)[0]


def verify_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    **options: Any,
) -> int:
    """Check every example as :func:`adversarial_mask` does (same ``options``); raise on any
    failure. For checking stored results by hand; evaluations count failures as robust.
    """
    ok = adversarial_mask(model, x, x_adv, y, eps, **options)
    if not ok.all():
        raise VerificationError(
            f"{int((~ok).sum())} of {len(ok)} stored adversarial examples are outside the "
            "eps-ball or [0, 1], or classified correctly when the model is re-run on them"
        )
    return len(x_adv)
