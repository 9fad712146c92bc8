"""Model registry: a name maps to a constructor and the inputs it expects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from lpbench.models.lenet import LeNet


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model is built from and what it consumes."""

    name: str
    build: Callable[[tuple[int, int, int], int], nn.Module]
    description: str


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (later models join here)."""
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build the registered model ``name`` for inputs of shape (C, H, W)."""
    if name not in MODELS:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; known models: {known}")
    return MODELS[name].build(tuple(input_shape), num_classes)


register_model(
    ModelSpec(
        name="lenet",
        build=lambda shape, classes: LeNet(shape[0], classes, shape[1]),
        description="LeNet of the logit-pairing MNIST code (2 conv, 2 dense, no batch norm)",
    )
)
