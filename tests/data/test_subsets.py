"""How many points an evaluation subset draws: the default, and sizes beyond the split."""

from __future__ import annotations

import pytest

from lpbench.data.subsets import DEFAULT_POINTS, subset_size


def test_a_size_beyond_the_split_is_refused_not_cut() -> None:
    assert subset_size(None, 10_000) == DEFAULT_POINTS == 1000
    assert subset_size(None, 128) == 128  # the default takes a smaller split whole
    assert subset_size(1000, 1000) == 1000 and subset_size(5, 1000) == 5
    with pytest.raises(ValueError, match=r"^1,000,000 points asked for, but the test split of "):
        subset_size(1_000_000, 1000, "the test split of mnist-digits")
    with pytest.raises(ValueError, match=r"holds 1,000: the largest allowed is 1000$"):
        subset_size(1001, 1000, "the test split of mnist-digits")
    with pytest.raises(ValueError, match="must be positive"):
        subset_size(0, 1000)
