"""Per-restart losses from evaluation results: histograms and accuracy vs restarts.

All functions read the JSON form of an evaluation (``EvaluationResult.to_dict()`` or the
loaded results file). Per-restart entries that are ``None`` were not run: with early stop,
a point's restarts after the one that broke it are skipped. The accuracy-vs-restarts
curve is exact either way (restarts are tried in order); loss histograms and success
fractions need every restart run (``lpbench evaluate --no-early-stop``) and refuse
results that lack some.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from lpbench.diagnostics.surface import save_figure

#: A cross-entropy above -ln(0.1) means the true class has probability below 0.1, so the
#: point is misclassified whatever the other classes do.
LOSS_THRESHOLD = -math.log(0.1)


@dataclass
class PointHistogram:
    """Histogram of one point's final losses over the restarts of one attack."""

    index: int
    counts: np.ndarray
    edges: np.ndarray
    successes: int
    restarts: int


@dataclass
class RestartSummary:
    """Per-point success fractions and robust accuracy vs number of restarts."""

    label: str
    indices: np.ndarray
    fractions: np.ndarray
    counts: np.ndarray
    edges: np.ndarray
    curve: np.ndarray


def _attack_labels(results: dict[str, Any]) -> list[str]:
    return [a["label"] for a in results["attacks"]]


def _num_restarts(results: dict[str, Any], label: str) -> int:
    summary = next(a for a in results["attacks"] if a["label"] == label)
    if "restarts" in summary["config"]:
        return int(summary["config"]["restarts"])
    lengths = [
        len(p["attacks"][label]["restart_loss"]) for p in results["points"] if label in p["attacks"]
    ]
    return max(lengths, default=1)


def resolve_label(results: dict[str, Any], label: str | None = None) -> str:
    """``label`` checked against the results' attacks; by default the one with most restarts."""
    labels = _attack_labels(results)
    if not labels:
        raise ValueError("the results contain no attacks")
    if label is None:
        return max(labels, key=lambda lab: _num_restarts(results, lab))
    if label not in labels:
        raise ValueError(f"no attack {label!r} in the results; attacks: {', '.join(labels)}")
    return label


def _full_records(results: dict[str, Any], label: str) -> list[tuple[int, dict[str, list]]]:
    """(index, record) of every point attacked by ``label``; all restarts must have run."""
    restarts = _num_restarts(results, label)
    out, incomplete = [], 0
    for point in results["points"]:
        record = point["attacks"].get(label)
        if record is None:
            continue
        losses = record.get("restart_loss")
        if losses is None or len(losses) != restarts or any(v is None for v in losses):
            incomplete += 1
            continue
        out.append((int(point["index"]), record))
    if incomplete:
        raise ValueError(
            f"{incomplete} point(s) attacked by {label!r} lack records of some restarts (they "
            "were skipped by early stop after an earlier restart broke the point), so loss "
            "histograms and success fractions would be biased. Histograms need every restart "
            "run to the end: evaluate with `lpbench evaluate CHECKPOINT --restarts N "
            "--no-early-stop`"
        )
    return out


def restart_losses(
    results: dict[str, Any], label: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(data set indices, final losses [points, restarts]) of the points with all restarts run."""
    label = resolve_label(results, label)
    records = _full_records(results, label)
    restarts = _num_restarts(results, label)
    indices = np.array([i for i, _ in records], dtype=np.int64)
    losses = np.array([r["restart_loss"] for _, r in records], dtype=float)
    return indices, losses.reshape(len(records), restarts)


def success_fractions(
    results: dict[str, Any], label: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(data set indices, fraction of restarts that broke the point), all restarts run."""
    label = resolve_label(results, label)
    records = _full_records(results, label)
    indices = np.array([i for i, _ in records], dtype=np.int64)
    fractions = np.array(
        [np.mean([bool(s) for s in r["restart_success"]]) for _, r in records], dtype=float
    )
    return indices, fractions


def restarts_curve(results: dict[str, Any], label: str | None = None) -> np.ndarray:
    """Robust accuracy over all points when only the first k restarts of ``label`` count.

    Entry k-1 is for k restarts. Clean-wrong points and points broken by an attack that
    ran before ``label`` are never robust; later attacks are ignored. Non-increasing; the
    last entry is the robust accuracy right after ``label``. Exact with early stop too:
    restarts run in order, so every restart before a point's first success is recorded.
    """
    label = resolve_label(results, label)
    labels = _attack_labels(results)
    earlier = set(labels[: labels.index(label)])
    restarts = _num_restarts(results, label)
    points = results["points"]
    robust = np.zeros((len(points), restarts), dtype=bool)
    for row, point in enumerate(points):
        if point["clean_pred"] != point["label"] or point["broken_by"] in earlier:
            continue
        record = point["attacks"].get(label)
        if record is None:
            raise ValueError(
                f"point {point['index']} is robust before {label!r} but has no "
                "record of it (was the evaluation interrupted?)"
            )
        wins = record.get("restart_success") or []
        first_hit = wins.index(True) if True in wins else restarts
        if len(wins) != restarts or any(w is None for w in wins[:first_hit]):
            raise ValueError(
                f"point {point['index']} lacks records of restarts of {label!r} that ran "
                "before it was broken: the results are incomplete"
            )
        robust[row, :first_hit] = True
    return robust.mean(axis=0) if len(points) else np.zeros(restarts)


def pick_points(results: dict[str, Any], label: str | None = None, count: int = 6) -> list[int]:
    """Up to ``count`` points (data set indices) spread from rarely to always broken.

    One point per distinct success fraction first (evenly spread over them, the highest
    mean loss of each), then others, ordered by success fraction.
    """
    label = resolve_label(results, label)
    indices, losses = restart_losses(results, label)
    _, fractions = success_fractions(results, label)
    order = np.lexsort((losses.mean(axis=1), fractions))  # by fraction, then mean loss
    levels = np.unique(fractions)
    spread = np.unique(np.linspace(0, len(levels) - 1, min(count, len(levels))).round())
    chosen = [int(order[fractions[order] == levels[int(i)]][-1]) for i in spread]
    rest = [int(i) for i in order if i not in chosen]
    extra = min(count - len(chosen), len(rest))
    chosen += [rest[int(i)] for i in np.unique(np.linspace(0, len(rest) - 1, extra).round())]
    chosen.sort(key=lambda row: (fractions[row], losses[row].mean()))
    return [int(indices[row]) for row in chosen]


def point_histograms(
    results: dict[str, Any],
    label: str | None = None,
    points: Sequence[int] | None = None,
    *,
    bins: int = 20,
) -> list[PointHistogram]:
    """Loss histograms over restarts for ``points`` (data set indices; default: picked)."""
    label = resolve_label(results, label)
    indices, losses = restart_losses(results, label)
    _, fractions = success_fractions(results, label)
    points = pick_points(results, label) if points is None else list(points)
    row_of = {int(i): r for r, i in enumerate(indices)}
    missing = [p for p in points if p not in row_of]
    if missing:
        raise ValueError(f"points {missing} have no complete restart records for {label!r}")
    out = []
    for index in points:
        row = row_of[index]
        counts, edges = np.histogram(losses[row], bins=bins)
        out.append(
            PointHistogram(
                index=index,
                counts=counts,
                edges=edges,
                restarts=losses.shape[1],
                successes=round(fractions[row] * losses.shape[1]),
            )
        )
    return out


def restart_summary(results: dict[str, Any], label: str | None = None) -> RestartSummary:
    """Success-fraction histogram (one bin per possible fraction up to 50 restarts) and curve."""
    label = resolve_label(results, label)
    indices, fractions = success_fractions(results, label)
    restarts = _num_restarts(results, label)
    if restarts <= 50:
        edges = (np.arange(restarts + 2) - 0.5) / restarts
    else:
        edges = np.linspace(0.0, 1.0, 21)
    counts, edges = np.histogram(fractions, bins=edges)
    return RestartSummary(
        label=label,
        indices=indices,
        fractions=fractions,
        counts=counts,
        edges=edges,
        curve=restarts_curve(results, label),
    )


def _plain_log_ticks(axis: Axis) -> None:
    """Label a log axis 1, 2, 5, 10, 20, ... instead of powers of ten."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_point_histograms(
    results: dict[str, Any],
    label: str | None,
    points: Sequence[int] | None,
    path: str | Path,
    *,
    bins: int = 20,
    pdf: bool = False,
) -> tuple[list[PointHistogram], list[Path]]:
    """The original paper's histograms: per point, the final loss of each restart.

    Log count axis, red line at -ln(0.1); ``label`` None picks the attack with the most
    restarts, ``points`` None picks points (see :func:`pick_points`). Returns the
    histograms and the files written (.png, and .pdf when asked).
    """
    label = resolve_label(results, label)
    hists = point_histograms(results, label, points, bins=bins)
    if not hists:
        raise ValueError(f"no point has complete restart records for {label!r}")
    cols = min(3, len(hists))
    rows = -(-len(hists) // cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows))
    for n, hist in enumerate(hists, start=1):
        ax = fig.add_subplot(rows, cols, n)
        ax.bar(
            hist.edges[:-1],
            hist.counts,
            width=np.diff(hist.edges),
            align="edge",
            color="blue",
            linewidth=0,
            log=True,
        )
        ax.set_ylim(0.7, 1.6 * max(int(hist.counts.max()), 1))
        _plain_log_ticks(ax.yaxis)
        ax.axvline(LOSS_THRESHOLD, color="red", linewidth=1.5)
        low = min(hist.edges[0], LOSS_THRESHOLD)
        high = max(hist.edges[-1], LOSS_THRESHOLD)
        pad = 0.05 * (high - low)
        ax.set_xlim(low - pad, high + pad)
        ax.grid(alpha=0.4)
        ax.set_xlabel("loss value")
        ax.set_ylabel("number of restarts")
        ax.set_title(
            f"point {hist.index}: {hist.successes}/{hist.restarts} restarts succeed", fontsize=10
        )
    fig.suptitle(f"{label}: final cross-entropy per restart (red: -ln 0.1)")
    fig.tight_layout()
    return hists, save_figure(fig, path, pdf=pdf)


def plot_restart_summary(
    results: dict[str, Any], label: str | None, path: str | Path, *, pdf: bool = False
) -> tuple[RestartSummary, list[Path]]:
    """Two panels: how often restarts succeed per point, and robust accuracy vs restarts.

    Returns the numbers drawn and the files written (.png, and .pdf when asked).
    """
    summary = restart_summary(results, label)
    fig = Figure(figsize=(10, 3.8))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    left.bar(
        summary.edges[:-1],
        summary.counts,
        width=np.diff(summary.edges),
        align="edge",
        color="blue",
        edgecolor="white",
        linewidth=0.5,
    )
    left.set_xlabel("fraction of restarts that find an adversarial example")
    left.set_ylabel("number of points")
    left.set_title(f"{len(summary.indices)} points with all restarts recorded", fontsize=10)
    left.grid(alpha=0.4)
    ks = np.arange(1, len(summary.curve) + 1)
    right.step(ks, summary.curve, where="post", color="blue")
    right.set_xscale("log")
    _plain_log_ticks(right.xaxis)
    right.set_xlabel("number of restarts")
    right.set_ylabel("robust accuracy")
    right.set_title(
        f"{summary.label}: {summary.curve[0]:.1%} with 1 restart, "
        f"{summary.curve[-1]:.1%} with {len(ks)}",
        fontsize=10,
    )
    right.grid(alpha=0.4, which="both")
    fig.tight_layout()
    return summary, save_figure(fig, path, pdf=pdf)
