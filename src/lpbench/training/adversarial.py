"""Adversarial examples during training: the model's mode while crafting, targets, PGD."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from lpbench.attacks import PGD
from lpbench.defenses import least_likely_targets, random_targets
from lpbench.training.config import TrainConfig


@contextmanager
def crafting_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Put the model in ``mode`` for crafting; in train mode keep batch-norm statistics.

    Crafting forwards in train mode normalise with the batch's statistics, as the
    MNIST/CIFAR-10 code did, but do not move the running averages.
    """
    buffers = {k: v.clone() for k, v in model.named_buffers()} if mode == "train" else {}
    model.train(mode == "train")
    try:
        yield
    finally:
        with torch.no_grad():
            for key, value in model.named_buffers():
                if key in buffers:
                    value.copy_(buffers[key])


def craft_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    index: torch.Tensor,
    target: torch.Tensor | None,
    config: TrainConfig,
    eps: float,
    seed: int,
) -> torch.Tensor:
    """The one place training calls an attack: PGD's last iterate, in the caller's mode.

    Random starts are keyed by ``seed`` and each image's position ``index`` in the
    training set, so they are the same on 1 or N processes and after a resume.
    """
    attack = PGD(
        eps,
        config.adv_step,
        config.adv_iters,
        keep_last=True,
        seed=seed,
        stream="train-adversarial",
        model_mode="caller",
    )
    return attack(model, x, y, index=index, target=target).x_adv


def adversarial_targets(
    model: nn.Module, x: torch.Tensor, config: TrainConfig, classes: int, gen: torch.Generator
) -> torch.Tensor | None:
    """The classes targeted adversarial examples aim at (``config.adv_target``); None when
    they are untargeted."""
    if config.adv_target == "ll":
        return least_likely_targets(model, x)
    if config.adv_target == "random":
        return random_targets(len(x), classes, gen, x.device)
    return None
