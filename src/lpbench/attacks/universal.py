"""Per-class universal perturbations (after Moosavi-Dezfooli et al. 2017), L-infinity."""

from __future__ import annotations

import hashlib
import math
from dataclasses import KW_ONLY
from typing import Any, ClassVar

import torch
from torch import nn

from lpbench.attacks._common import ce_parts, forward
from lpbench.attacks.base import (
    Attack,
    AttackResult,
    Cost,
    attack_settings,
    count_at_least,
    setting,
)
from lpbench.attacks.losses import cross_entropy, is_adversarial, margin


@attack_settings
class Universal(Attack):
    """One perturbation per class, found on a few ``sources`` and added to every point.

    ``sources`` are (images, labels), e.g. a few training images per class. The
    perturbation of class c starts at 0 and takes ``iters`` steps of ``step`` (default
    eps / 2) along the sign of the summed cross-entropy gradient of class c's sources,
    projected onto the eps-ball. A point of class c is attacked with ``x + delta_c``
    clipped to [0, 1]: no gradient and no query on the point itself. A class without
    sources gets no perturbation; a point misclassified as given keeps its input.

    The perturbations cost ``iters`` gradients per source image (their forward passes
    included) and one forward pass that reads the class count: a shared cost, reported as
    ``shared_gradients`` / ``shared_forwards`` of the result's cost. They are computed at an
    attack's first call on a model and reused while its weights are unchanged, so they are
    charged to that call only; a fresh attack object (another process, shard or resumed
    run) computes and is charged for them again. Each point costs one forward pass (its
    clean input) and one more when it is moved. Results per point do not depend on batch or
    order. Loss reported: cross-entropy.
    """

    name = "universal"
    renamed: ClassVar[dict[str, str]] = {"n_iter": "iters"}

    sources: tuple[torch.Tensor, torch.Tensor] = setting(config=False)
    _: KW_ONLY
    iters: int = 5
    step: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        images, labels = self.sources
        if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
            raise ValueError(
                f"sources need as many labels as images and at least one image, got "
                f"{images.shape[0]} images and {labels.shape[0]} labels"
            )
        if images.min() < 0 or images.max() > 1:
            raise ValueError("source images must lie in [0, 1]")
        if self.step is not None and not 0 < self.step <= 1:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        self.sources = (images.detach().cpu(), labels.detach().cpu().long())
        self.iters = count_at_least("iters", self.iters, 1)
        self._cache: tuple[tuple[int, ...], torch.Tensor] | None = None

    @property
    def step_size(self) -> float:
        """The step of each iteration: ``step``, by default eps / 2."""
        return self.eps / 2 if self.step is None else float(self.step)

    @property
    def spend(self) -> int:
        """Gradients the perturbations cost each time they are computed."""
        return self.iters * self.sources[0].shape[0]

    def config(self) -> dict[str, Any]:
        images, labels = self.sources
        digest = hashlib.sha256(images.float().numpy().tobytes() + labels.numpy().tobytes())
        return super().config() | {
            "step": self.step_size,
            "sources": {"images": int(images.shape[0]), "sha256": digest.hexdigest()},
        }

    def max_spend_per_point(self) -> int:
        """0: the perturbations are a shared cost (:attr:`spend`), not one per point."""
        return 0

    def _weights_state(self, model: nn.Module) -> tuple[int, ...]:
        """Identifies the model and the version of its weights (changed by any update)."""
        return (id(model), *(p._version for p in model.parameters()))

    def perturbations(self, model: nn.Module, device: torch.device) -> tuple[torch.Tensor, Cost]:
        """(one perturbation per class, what computing them cost now: nothing when cached)."""
        state = self._weights_state(model)
        if self._cache is not None and self._cache[0] == state:
            return self._cache[1].to(device), Cost()
        images, labels = (t.to(device) for t in self.sources)
        classes = max(int(labels.max()) + 1, forward(model, images[:1], 1).shape[1])
        deltas = torch.zeros(classes, *images.shape[1:], dtype=images.dtype, device=device)
        spent = 0
        for c in labels.unique().tolist():
            own = images[labels == c]
            delta = torch.zeros_like(own[0])
            for _ in range(self.iters):
                total = self._summed_gradient(model, (own + delta).clamp(0.0, 1.0), c)
                spent += own.shape[0]
                delta = (delta + self.step_size * total.sign()).clamp(-self.eps, self.eps)
            deltas[c] = delta
        self._cache = (state, deltas.cpu())
        forwards = spent + 1  # the gradients' forward passes and the class count's
        return deltas, Cost(spent, forwards, 0, spent, forwards)

    def _summed_gradient(self, model: nn.Module, images: torch.Tensor, c: int) -> torch.Tensor:
        """A positive multiple of the gradient of the summed cross-entropy of ``images``
        (all of class ``c``), in chunks of ``max_batch``: each image's gradient is formed
        from its closed-form direction and the log of its scale, and the images are
        weighted relative to the largest scale, so a confident model's cross-entropy, 0 in
        float64, still gives the sum's direction (logits x 1,000 do not hide it)."""
        total, top = torch.zeros_like(images[0]), -math.inf
        for i in range(0, images.shape[0], self.max_batch):
            xa = images[i : i + self.max_batch].detach().requires_grad_(True)
            with torch.enable_grad():
                logits = model(xa)
            labels = torch.full((xa.shape[0],), c, device=xa.device)
            _, _, direction, log_scale = ce_parts(logits.detach().double(), labels, None)
            chunk_top = float(log_scale.max())
            if chunk_top > top:  # rescale what was summed so far to the new largest scale
                total, top = total * math.exp(top - chunk_top), chunk_top
            weight = (log_scale - top).exp().nan_to_num(0.0)[:, None]
            (grad,) = torch.autograd.grad(
                logits, xa, grad_outputs=(direction * weight).to(logits.dtype)
            )
            total = total + grad.sum(dim=0)
        return total

    def perturb(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        target: torch.Tensor | None,
    ) -> AttackResult:
        deltas, shared = self.perturbations(model, x.device)
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
            cost=shared + Cost(forwards=x.shape[0] + int(moved.sum())),
            spent=torch.zeros(x.shape[0], dtype=torch.int64, device=x.device),
        )
