"""The training curve of a run: accuracies and loss terms per epoch, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lpbench.io import atomic_write


def plot_training(records: list[dict[str, Any]], out: str | Path, title: str = "") -> Path:
    """Draw test accuracy, adversarial accuracy and every loss term against the epoch."""
    if not records:
        raise ValueError("the training log has no records: train at least one epoch")
    epochs = [r["epoch"] for r in records]
    fig = Figure(figsize=(10, 4), layout="constrained")
    acc, loss = fig.subplots(1, 2)
    for key, label in (
        ("test_accuracy", "test accuracy"),
        ("adv_accuracy_baseline", "adversarial accuracy (training attack)"),
    ):
        if any(key in r for r in records):
            acc.plot(epochs, [r.get(key, float("nan")) for r in records], marker="o", label=label)
    acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="accuracy")
    acc.grid(alpha=0.3)
    acc.legend(loc="lower right", fontsize=8)
    terms = sorted({k for r in records for k in r if k.startswith("loss_")})
    for key in terms:
        loss.plot(epochs, [r.get(key, float("nan")) for r in records], marker=".", label=key[5:])
    loss.set(xlabel="epoch", ylabel="mean over the epoch", title="loss terms")
    values = [r[k] for r in records for k in terms if k in r]
    if values and min(values) > 0:
        loss.set_yscale("log")
    for axes in (acc, loss):  # whole epochs, also when there is only one
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    loss.grid(alpha=0.3)
    loss.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    out = Path(out)
    return atomic_write(
        out, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    )
