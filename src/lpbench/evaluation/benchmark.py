"""One call from a checkpoint or model to a verified, recorded evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lpbench
from lpbench.data import evaluation_subset, load_dataset
from lpbench.evaluation.evaluate import EvaluationResult, evaluate
from lpbench.evaluation.protocol import NamedAttack, default_eps, preset_attacks
from lpbench.runtime import resolve_device


def benchmark(
    model: nn.Module,
    dataset: str = "fashion-mnist",
    *,
    preset: str = "strong",
    attacks: Sequence[NamedAttack] | None = None,
    eps: float | None = None,
    points: int = 1000,
    subset_seed: int = 0,
    attack_seed: int = 0,
    data_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    show_progress: bool = True,
    meta: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` on the fixed, seeded test subset of ``dataset``.

    Runs the named ``preset`` (or the given ``attacks``), keeps the worst case per point
    over every attack and restart, re-checks the adversarial examples, and records the
    subset and settings in ``result.meta``. Clean accuracy on the whole test set is added.
    """
    eps = default_eps(dataset) if eps is None else eps
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    if attacks is None:
        attacks = preset_attacks(preset, dataset, eps, seed=attack_seed)
    else:
        preset = "custom"
    device = resolve_device(device)
    test = load_dataset(dataset, "test", data_dir=data_dir, progress=show_progress)
    indices = evaluation_subset(len(test), points, seed=subset_seed)
    subset = test.subset(indices)
    result = evaluate(
        model,
        subset.images,
        subset.labels,
        attacks,
        indices=indices.tolist(),
        device=device,
        batch_size=batch_size,
        show_progress=show_progress,
    )
    with torch.no_grad():
        full_correct = sum(
            int(
                (
                    model(test.images[i : i + 1000].to(device)).argmax(1).cpu()
                    == test.labels[i : i + 1000]
                ).sum()
            )
            for i in range(0, len(test), 1000)
        )
    result.meta = {
        "lpbench_version": lpbench.__version__,
        **(meta or {}),
        "dataset": dataset,
        "split": "test",
        "preset": preset,
        "subset": {"seed": subset_seed, "size": len(indices), "test_set_size": len(test)},
        "clean_accuracy_full_test": full_correct / len(test),
        "device": str(device),
    }
    return result
