"""Training objectives: cross-entropy, adversarial training and logit regularisers."""

from lpbench.defenses.objective import (
    ObjectiveConfig,
    add_input_noise,
    adversarial_logit_pairing,
    clean_logit_pairing,
    logit_squeezing,
    objective_terms,
    weight_l2,
)
from lpbench.defenses.targets import TARGETS, least_likely_targets, random_targets

__all__ = [
    "TARGETS",
    "ObjectiveConfig",
    "add_input_noise",
    "adversarial_logit_pairing",
    "clean_logit_pairing",
    "least_likely_targets",
    "logit_squeezing",
    "objective_terms",
    "random_targets",
    "weight_l2",
]
