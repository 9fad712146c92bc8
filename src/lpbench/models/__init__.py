"""Models and their registry."""

from lpbench.models.lenet import LeNet
from lpbench.models.registry import MODELS, ModelSpec, build_model, register_model

__all__ = ["MODELS", "LeNet", "ModelSpec", "build_model", "register_model"]
