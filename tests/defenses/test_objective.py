"""The objective's terms equal their formulas on hand-made logits."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lpbench.defenses import (
    ObjectiveConfig,
    add_input_noise,
    adversarial_logit_pairing,
    clean_logit_pairing,
    logit_squeezing,
    objective_terms,
    weight_l2,
)

LOGITS = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0], [2.0, 2.0, 0.0], [3.0, 0.0, 4.0]])


def test_clean_logit_pairing_is_mse_between_halves() -> None:
    # pairs: row0-row2 diff (-1, 0, 3), row1-row3 diff (-3, -1, -3)
    expected = (1 + 0 + 9 + 9 + 1 + 9) / 6
    assert clean_logit_pairing(LOGITS).item() == pytest.approx(expected)


def test_clean_logit_pairing_drops_last_of_odd_batch() -> None:
    # one pair: row0 - row1 = (1, 3, 2); row2 is left out
    assert clean_logit_pairing(LOGITS[:3]).item() == pytest.approx((1 + 9 + 4) / 3)


def test_logit_squeezing_is_mean_l2_norm() -> None:
    norms = [math.sqrt(14), math.sqrt(2), math.sqrt(8), 5.0]
    assert logit_squeezing(LOGITS).item() == pytest.approx(sum(norms) / 4)


def test_adversarial_logit_pairing_is_mse() -> None:
    adv = LOGITS + torch.tensor([1.0, 0.0, -2.0])
    assert adversarial_logit_pairing(LOGITS, adv).item() == pytest.approx((1 + 0 + 4) / 3)


def test_weight_l2_counts_all_but_norm_shifts() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.fill_(2.0)
        model[1].weight.fill_(3.0)
        model[1].bias.fill_(100.0)  # excluded
    expected = 0.5 * (4 * 1 + 2 * 4 + 2 * 9)
    assert weight_l2(model).item() == pytest.approx(expected)


class FixedLogits(nn.Module):
    """Returns the first len(x) rows of a fixed table, so terms can be checked by hand."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[: x.shape[0]] + 0 * x.flatten(1).sum(1, keepdim=True)


def test_total_is_the_weighted_sum() -> None:
    model = FixedLogits(LOGITS)
    y = torch.tensor([2, 0, 1, 2])
    x = torch.zeros(4, 1)
    config = ObjectiveConfig(ce=0.7, clp=0.5, lsq=0.25, weight_decay=0.1)
    terms = objective_terms(model, x, y, config)
    ce = torch.nn.functional.cross_entropy(LOGITS, y).item()
    assert terms["ce"].item() == pytest.approx(ce)
    expected = (
        0.7 * ce
        + 0.5 * clean_logit_pairing(LOGITS).item()
        + 0.25 * logit_squeezing(LOGITS).item()
        + 0.1 * 0.5 * float(LOGITS.pow(2).sum())
    )
    assert terms["total"].item() == pytest.approx(expected, rel=1e-6)
    assert set(terms) == {"ce", "clp", "lsq", "weight_decay", "total"}


def test_adversarial_terms_need_adversarial_inputs() -> None:
    model = FixedLogits(LOGITS)
    with pytest.raises(ValueError, match="x_adv"):
        objective_terms(
            model, torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), ObjectiveConfig(at=1.0)
        )


def test_config_rejects_negative_weights_and_no_classifier() -> None:
    with pytest.raises(ValueError, match="clp"):
        ObjectiveConfig(clp=-1)
    with pytest.raises(ValueError, match="classification"):
        ObjectiveConfig(ce=0.0)


def test_input_noise_is_clipped_and_seeded() -> None:
    x = torch.full((3, 1, 4, 4), 0.5)
    a = add_input_noise(x, 0.5, torch.Generator().manual_seed(1))
    b = add_input_noise(x, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)
    assert add_input_noise(x, 0.0) is x
