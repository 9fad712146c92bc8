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

__all__ = [
    "ObjectiveConfig",
    "add_input_noise",
    "adversarial_logit_pairing",
    "clean_logit_pairing",
    "logit_squeezing",
    "objective_terms",
    "weight_l2",
]
