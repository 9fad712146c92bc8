"""Model registry: a name maps to a constructor and the inputs it expects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from lpbench.models.lenet import LeNet
from lpbench.models.maskers import MASKER_OPTIONS, add_masker
from lpbench.models.resnet_v2 import ResNet20V2, ResNet50V2
from lpbench.models.small import MLP, BatchNormCNN


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model is built from and what it consumes.

    ``build(input_shape, num_classes, **options)``; ``options`` names the keyword options
    the model accepts (e.g. ``width``), which checkpoints record beside the model name.
    Every model also takes the masker options of :mod:`lpbench.models.maskers`.
    """

    name: str
    build: Callable[..., nn.Module]
    description: str
    options: tuple[str, ...] = ()


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (later models join here)."""
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, **options: Any
) -> nn.Module:
    """Build the registered model ``name`` for inputs of shape (C, H, W)."""
    if name not in MODELS:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; known models: {known}")
    spec = MODELS[name]
    masker = {key: options.pop(key) for key in MASKER_OPTIONS if key in options}
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ValueError(
            f"model {name!r} has no option {', '.join(unknown)} "
            f"(its options: {', '.join(spec.options) or 'none'})"
        )
    return add_masker(spec.build(tuple(input_shape), num_classes, **options), **masker)


register_model(
    ModelSpec(
        name="lenet",
        build=lambda shape, classes, **opts: LeNet(shape[0], classes, shape[1], **opts),
        description="LeNet of the logit-pairing MNIST code (2 conv, 2 dense, no batch norm)",
        options=("width", "hidden", "activation"),
    )
)
register_model(
    ModelSpec(
        name="resnet20-v2",
        build=lambda shape, classes, **opts: ResNet20V2(shape[0], classes, **opts),
        description="pre-activation ResNet-20 of the logit-pairing CIFAR-10 code (64/128/256)",
        options=("width", "signed_inputs"),
    )
)
register_model(
    ModelSpec(
        name="resnet50-v2",
        build=lambda shape, classes, **opts: ResNet50V2(shape[0], classes, **opts),
        description="slim's ResNet-50 v2, as the ALP Tiny ImageNet code trained it",
        options=("width", "signed_inputs"),
    )
)
register_model(
    ModelSpec(
        name="mlp",
        build=lambda shape, classes, **opts: MLP(shape, classes, **opts),
        description="multilayer perceptron (depth dense layers of hidden units)",
        options=("hidden", "depth", "activation"),
    )
)
register_model(
    ModelSpec(
        name="cnn-bn",
        build=lambda shape, classes, **opts: BatchNormCNN(shape, classes, **opts),
        description="two conv-batch-norm blocks and two dense layers",
        options=("width", "hidden", "activation"),
    )
)
