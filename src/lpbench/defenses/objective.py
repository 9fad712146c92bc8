"""The training objective of the logit-pairing paper and its terms.

total = ce * CE(clean) + at * CE(adversarial) + weight_decay * L2(weights)
        + alp * MSE(logits(clean), logits(adversarial))
        + clp * MSE(logits(first half of batch), logits(second half))
        + lsq * mean_i ||logits_i||_2

Options of the Tiny ImageNet code: label smoothing on both cross-entropies, weight decay on
every parameter (the MNIST/CIFAR-10 code skipped batch norm's shift), Gaussian input noise
without clipping, and clean and adversarial inputs run through the model as one batch
(so batch norm sees both; logit squeezing then covers both halves' logits). Option of the
MNIST/CIFAR-10 code: ``clp_halves`` runs the two halves of CLP through the model as two
separate batches (with batch norm in training mode each half has its own statistics).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ObjectiveConfig:
    """Weights of the objective's terms and the input noise used with them."""

    ce: float = 1.0
    at: float = 0.0
    alp: float = 0.0
    clp: float = 0.0
    lsq: float = 0.0
    weight_decay: float = 0.0
    noise_std: float = 0.0
    label_smoothing: float = 0.0
    decay_all: bool = False
    noise_clip: bool = True
    joint_batch: bool = False
    clp_halves: bool = False

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 0:
                raise ValueError(f"objective weight {name} must be >= 0, got {value}")
        if self.ce == 0 and self.at == 0:
            raise ValueError("the objective needs a classification term: ce or at must be > 0")

    @property
    def needs_adversarial(self) -> bool:
        """Whether a training step must craft adversarial examples."""
        return self.at > 0 or self.alp > 0

    def to_dict(self) -> dict[str, float | bool]:
        return asdict(self)


def clean_logit_pairing(logits: torch.Tensor) -> torch.Tensor:
    """MSE between the logits of the batch's first half and its second half.

    With an odd batch the last example is left out of the pairing.
    """
    half = logits.shape[0] // 2
    if half == 0:
        return logits.new_zeros(())
    return F.mse_loss(logits[:half], logits[half : 2 * half])


def logit_squeezing(logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the L2 norm of each logit vector."""
    return logits.norm(p=2, dim=1).mean()


def adversarial_logit_pairing(clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
    """MSE between the logits of clean inputs and of their adversarial versions."""
    return F.mse_loss(clean_logits, adv_logits)


_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


def weight_l2(model: nn.Module, include_norm_shift: bool = False) -> torch.Tensor:
    """Half the squared L2 norm of all parameters except normalisation-layer shifts.

    As TensorFlow's ``l2_loss`` summed over the variables in the MNIST/CIFAR-10 code, which
    skipped only batch norm's beta; ``include_norm_shift`` keeps it (Tiny ImageNet code).
    """
    terms = [
        0.5 * param.pow(2).sum()
        for module in model.modules()
        for name, param in module.named_parameters(recurse=False)
        if include_norm_shift or not (isinstance(module, _NORM_LAYERS) and name == "bias")
    ]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def add_input_noise(
    x: torch.Tensor,
    std: float,
    generator: torch.Generator | None = None,
    *,
    clip: bool = True,
    rows: slice | None = None,
    total: int | None = None,
) -> torch.Tensor:
    """Gaussian noise of standard deviation ``std``, clipped back to [0, 1] if ``clip``.

    ``rows``/``total``: ``x`` is rows ``rows`` of a batch of ``total``; the noise is drawn
    for the whole batch and sliced, so a batch split over processes gets the same noise.
    """
    if std == 0:
        return x
    shape = (total if total is not None else x.shape[0], *x.shape[1:])
    noise = torch.randn(shape, generator=generator, dtype=x.dtype)
    noise = noise[rows if rows is not None else slice(None)].to(x.device)
    noisy = x + std * noise
    return noisy.clamp(0.0, 1.0) if clip else noisy


def objective_terms(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: ObjectiveConfig,
    x_adv: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every active term (unweighted) and the weighted ``total``.

    ``x`` is the (already noised) clean batch; ``x_adv`` its adversarial version, required
    when the configuration has an ``at`` or ``alp`` term.
    """
    if config.needs_adversarial and x_adv is None:
        raise ValueError("this objective has an adversarial term: pass x_adv")
    terms: dict[str, torch.Tensor] = {}
    needs_clean = config.ce > 0 or config.clp > 0 or config.lsq > 0 or config.alp > 0
    squeezed: torch.Tensor | None
    if config.joint_batch and x_adv is not None:
        clean_logits, adv_logits = model(torch.cat([x, x_adv])).chunk(2)
        squeezed = torch.cat([clean_logits, adv_logits])
    else:
        clean_logits = model(x) if needs_clean else None
        adv_logits = model(x_adv) if config.needs_adversarial else None
        squeezed = clean_logits
    total = x.new_zeros(())
    smooth = config.label_smoothing
    if config.ce > 0:
        terms["ce"] = F.cross_entropy(clean_logits, y, label_smoothing=smooth)
        total = total + config.ce * terms["ce"]
    if config.at > 0:
        terms["at"] = F.cross_entropy(adv_logits, y, label_smoothing=smooth)
        total = total + config.at * terms["at"]
    if config.alp > 0:
        terms["alp"] = adversarial_logit_pairing(clean_logits, adv_logits)
        total = total + config.alp * terms["alp"]
    if config.clp > 0:
        if config.clp_halves:
            half = x.shape[0] // 2
            paired = torch.cat([model(x[:half]), model(x[half : 2 * half])])
        else:
            paired = clean_logits
        terms["clp"] = clean_logit_pairing(paired)
        total = total + config.clp * terms["clp"]
    if config.lsq > 0:
        assert squeezed is not None  # lsq > 0 means needs_clean: the clean logits exist
        terms["lsq"] = logit_squeezing(squeezed)
        total = total + config.lsq * terms["lsq"]
    if config.weight_decay > 0:
        terms["weight_decay"] = weight_l2(model, include_norm_shift=config.decay_all)
        total = total + config.weight_decay * terms["weight_decay"]
    terms["total"] = total
    return terms
