"""Per-class universal perturbations (after Moosavi-Dezfooli et al. 2017), L-infinity."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lpbench.attacks._common import forward
from lpbench.attacks.base import Attack, AttackResult, Cost, count_at_least
from lpbench.attacks.losses import cross_entropy, is_adversarial, margin


class Universal(Attack):
    """One perturbation per class, found on a few ``sources`` and added to every point.

    ``sources`` are (images, labels), e.g. a few training images per class. The
    perturbation of class c starts at 0 and takes ``n_iter`` steps of ``step`` (default
    eps / 2) along the sign of the summed cross-entropy gradient of class c's sources,
    projected onto the eps-ball. A point of class c is attacked with ``x + delta_c``
    clipped to [0, 1]: no gradient and no query on the point itself. A class without
    sources gets no perturbation; a point misclassified as given keeps its input.

    The perturbations cost ``n_iter`` gradients per source image (their forward passes
    included). They are computed at an attack's first call on a model and reused while its
    weights are unchanged, so they are charged to that call only; a fresh attack object
    (another process, shard or resumed run) computes and is charged for them again.
    Results per point do not depend on batch or order. Loss reported: cross-entropy.
    """

    name = "universal"

    def __init__(
        self,
        eps: float,
        sources: tuple[torch.Tensor, torch.Tensor],
        *,
        n_iter: int = 5,
        step: float | None = None,
        seed: int = 0,
        stream: str | None = None,
        max_batch: int = 10_000,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(eps, seed=seed, stream=stream, max_batch=max_batch, model_mode=model_mode)
        images, labels = sources
        if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
            raise ValueError(
                f"sources need as many labels as images and at least one image, got "
                f"{images.shape[0]} images and {labels.shape[0]} labels"
            )
        if images.min() < 0 or images.max() > 1:
            raise ValueError("source images must lie in [0, 1]")
        if step is not None and not 0 < step <= 1:
            raise ValueError(f"step must be in (0, 1], got {step}")
        self.sources = (images.detach().cpu(), labels.detach().cpu().long())
        self.n_iter = count_at_least("n_iter", n_iter, 1)
        self.step = self.eps / 2 if step is None else float(step)
        self._cache: tuple[tuple[int, ...], torch.Tensor] | None = None

    @property
    def spend(self) -> int:
        """Gradients the perturbations cost each time they are computed."""
        return self.n_iter * self.sources[0].shape[0]

    def config(self) -> dict[str, Any]:
        images, labels = self.sources
        digest = hashlib.sha256(images.float().numpy().tobytes() + labels.numpy().tobytes())
        return {
            **self.base_config(),
            "n_iter": self.n_iter,
            "step": self.step,
            "sources": {"images": int(images.shape[0]), "sha256": digest.hexdigest()},
        }

    def _weights_state(self, model: nn.Module) -> tuple[int, ...]:
        """Identifies the model and the version of its weights (changed by any update)."""
        return (id(model), *(p._version for p in model.parameters()))

    def perturbations(self, model: nn.Module, device: torch.device) -> tuple[torch.Tensor, int]:
        """(one perturbation per class, gradients spent now: 0 when cached)."""
        state = self._weights_state(model)
        if self._cache is not None and self._cache[0] == state:
            return self._cache[1].to(device), 0
        images, labels = (t.to(device) for t in self.sources)
        classes = max(int(labels.max()) + 1, forward(model, images[:1], 1).shape[1])
        deltas = torch.zeros(classes, *images.shape[1:], dtype=images.dtype, device=device)
        spent = 0
        for c in labels.unique().tolist():
            own = images[labels == c]
            delta = torch.zeros_like(own[0])
            for _ in range(self.n_iter):
                grads = []
                for i in range(0, own.shape[0], self.max_batch):
                    xa = (own[i : i + self.max_batch] + delta).clamp(0.0, 1.0)
                    xa.requires_grad_(True)
                    with torch.enable_grad():
                        target = torch.full((xa.shape[0],), c, device=device)
                        loss = F.cross_entropy(model(xa).double(), target, reduction="sum")
                        (grad,) = torch.autograd.grad(loss, xa)
                    grads.append(grad.sum(dim=0))
                spent += own.shape[0]
                delta = (delta + self.step * torch.stack(grads).sum(dim=0).sign()).clamp(
                    -self.eps, self.eps
                )
            deltas[c] = delta
        self._cache = (state, deltas.cpu())
        return deltas, spent

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
    ) -> AttackResult:
        deltas, spent = self.perturbations(model, x.device)
        clean = forward(model, x, self.max_batch)
        wrong = is_adversarial(clean, y, None)  # misclassified as given: keeps its input
        moved = ~wrong & (y < deltas.shape[0])
        x_adv = x.clone()
        x_adv[moved] = (x[moved] + deltas[y[moved]]).clamp(0.0, 1.0)
        logits = clean.clone()
        logits[moved] = forward(model, x_adv[moved], self.max_batch)
        return AttackResult(
            x_adv=x_adv,
            success=is_adversarial(logits, y, None),
            loss=cross_entropy(logits, y, None),
            margin=margin(logits, y, None),
            cost=Cost(gradients=spent, forwards=spent + x.shape[0] + int(moved.sum())),
        )
