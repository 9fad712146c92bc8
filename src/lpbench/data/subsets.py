"""Fixed, seeded evaluation subsets, identical on every run, process and platform."""

from __future__ import annotations

import numpy as np

from lpbench.data.datasets import get_dataset_info

#: Points of an evaluation subset when none are asked for (fewer when the split is smaller).
DEFAULT_POINTS = 1000


def subset_size(size: int | None, available: int, where: str = "the split") -> int:
    """How many points to draw from ``where``, a split of ``available`` points: ``size``
    as asked, else :data:`DEFAULT_POINTS` or the whole split when it is smaller.

    A ``size`` beyond the split is refused (ValueError naming the largest allowed),
    never cut silently: a reader of the results would take it for the size asked.
    """
    if size is None:
        return min(DEFAULT_POINTS, available)
    if size <= 0:
        raise ValueError(f"subset size must be positive, got {size}")
    if size > available:
        raise ValueError(
            f"{size:,} points asked for, but {where} holds {available:,}: "
            f"the largest allowed is {available}"
        )
    return size


def evaluation_subset(num_points: int, size: int = 1000, seed: int = 0) -> np.ndarray:
    """Sorted, distinct int64 indices of ``size`` items drawn from ``range(num_points)``.

    The draw is the first ``size`` entries of a PCG64(``seed``) permutation, so a given
    (num_points, size, seed) always gives the same indices. When ``size >= num_points``
    every index is returned. ValueError for ``size <= 0`` or ``num_points < 0``.
    """
    if size <= 0:
        raise ValueError(f"subset size must be positive, got {size}")
    if num_points < 0:
        raise ValueError(f"num_points must be >= 0, got {num_points}")
    if size >= num_points:
        return np.arange(num_points, dtype=np.int64)
    permutation = np.random.Generator(np.random.PCG64(seed)).permutation(num_points)
    return np.sort(permutation[:size]).astype(np.int64)


def dataset_eval_subset(
    dataset: str, num_points: int, size: int = 1000, seed: int = 0
) -> np.ndarray:
    """The original paper's evaluation subset of a registered data set's test split.

    The first ``size`` images where the original paper used them (Tiny ImageNet's validation set),
    else :func:`evaluation_subset`.
    """
    if get_dataset_info(dataset).eval_first:
        if size <= 0:
            raise ValueError(f"subset size must be positive, got {size}")
        return np.arange(min(size, num_points), dtype=np.int64)
    return evaluation_subset(num_points, size, seed)


def per_class_subset(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted int64 indices of up to ``per_class`` items of each label: the first of each
    label in a PCG64(``seed``) permutation of ``range(len(labels))``."""
    if per_class <= 0:
        raise ValueError(f"per_class must be positive, got {per_class}")
    labels = np.asarray(labels)
    order = np.random.Generator(np.random.PCG64(seed)).permutation(len(labels))
    ranked = labels[order]
    chosen = [order[ranked == label][:per_class] for label in np.unique(labels)]
    return np.sort(np.concatenate(chosen or [order[:0]])).astype(np.int64)
