"""Training presets named after the rows of the seed's tables."""

from __future__ import annotations

from lpbench.defenses import ObjectiveConfig

#: Hyper-parameters of the original MNIST code: CLP and LSQ weight 0.5 with Gaussian
#: input noise of std 0.5; adversarial training mixes clean and adversarial
#: cross-entropy; the ALP weight 0.5 is the original Tiny ImageNet code's.
TRAIN_PRESETS: dict[str, ObjectiveConfig] = {
    "plain": ObjectiveConfig(),
    "clp": ObjectiveConfig(clp=0.5, noise_std=0.5),
    "lsq": ObjectiveConfig(lsq=0.5, noise_std=0.5),
    "plain-alp": ObjectiveConfig(alp=0.5),
    "at50": ObjectiveConfig(ce=0.5, at=0.5),
    "at50-alp": ObjectiveConfig(ce=0.5, at=0.5, alp=0.5),
    "at100": ObjectiveConfig(ce=0.0, at=1.0),
    "at100-alp": ObjectiveConfig(ce=0.0, at=1.0, alp=0.5),
}


def get_train_preset(name: str) -> ObjectiveConfig:
    """The objective of preset ``name``."""
    if name not in TRAIN_PRESETS:
        raise ValueError(
            f"unknown training preset {name!r}; choose one of {', '.join(TRAIN_PRESETS)}"
        )
    return TRAIN_PRESETS[name]
