"""The steps behind each ``lpbench`` command, as Python functions.

Each loads what it needs (checkpoints, data), calls the library and writes its files;
the command line and the demo call the same functions, and print what they return.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lpbench.data import dataset_eval_subset, load_dataset
from lpbench.data.subsets import DEFAULT_POINTS, subset_size
from lpbench.diagnostics import (
    GridData,
    SurfaceData,
    loss_surface,
    plot_grid,
    plot_point_histograms,
    plot_restart_summary,
    plot_surfaces,
    plot_sweep,
    resolve_label,
    step_iteration_grid,
    write_npz,
)
from lpbench.diagnostics.histogram import PointHistogram, RestartSummary
from lpbench.distributed import is_main_process
from lpbench.evaluation import (
    CustomPGD,
    EvaluationResult,
    NamedAttack,
    benchmark,
    parse_step,
    predict,
)
from lpbench.evaluation.check import CheckReport, check
from lpbench.evaluation.journal import MANIFEST
from lpbench.evaluation.protocol import resolve_eps
from lpbench.io import check_output_file, output_lock, write_json
from lpbench.reporting.collect import read_results
from lpbench.runtime import Interrupted, evaluation_mode, resolve_device
from lpbench.training import load_checkpoint
from lpbench.zoo import entry_name, is_zoo_ref


def beside(checkpoint: str | Path, name: str) -> Path:
    """A file next to a checkpoint (inside its run folder when given a folder).

    Zoo models live inside the installed package, so theirs go to ``runs/zoo/<name>/``.
    """
    if is_zoo_ref(checkpoint):
        return Path("runs") / "zoo" / entry_name(checkpoint).replace("/", "-") / name
    path = Path(checkpoint)
    return (path if path.is_dir() else path.parent) / name


def model_name(meta: dict[str, Any], checkpoint: str | Path) -> str:
    """The name a checkpoint goes by in tables: its preset, else its folder."""
    if is_zoo_ref(checkpoint):
        return str(checkpoint).rsplit("/", 1)[-1]
    path = Path(checkpoint)
    return meta.get("preset") or (path.name if path.is_dir() else path.parent.name)


def default_results_name(preset: str | None, *, custom: bool = False) -> str:
    """``results.json`` for the ``strong`` preset (what ``lpbench report`` and the demo read
    from a run folder), ``results-PRESET.json`` for the others and ``results-custom.json``
    for an attack list or a custom PGD, so that evaluating one checkpoint with several presets
    keeps each (``preset`` None: ``strong``)."""
    if custom:
        return "results-custom.json"
    return "results.json" if preset in (None, "strong") else f"results-{preset}.json"


def evaluate_checkpoint(
    checkpoint: str | Path,
    *,
    preset: str | None = None,
    custom: CustomPGD | None = None,
    attacks: Sequence[NamedAttack] | None = None,
    eps: float | None = None,
    dataset: str | None = None,
    points: int | None = None,
    subset_seed: int = 0,
    seed: int = 0,
    data_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    name: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
    budget: int | None = None,
    adapt: bool = False,
    exhaustive: bool = False,
    eot_iter: int | None = None,
    lockstep: bool | None = None,
) -> tuple[EvaluationResult, Path]:
    """Evaluate a checkpoint (read once) on its data set's fixed subset; save to ``out``
    (default: :func:`default_results_name` beside the checkpoint). ``preset`` (None:
    ``strong``), ``custom``, ``attacks``, ``eps`` (None: the data set's default),
    ``budget``, ``adapt``, ``exhaustive``, ``eot_iter`` and ``lockstep`` go to
    :func:`lpbench.benchmark` as given (its resolver checks them)."""
    model, meta = load_checkpoint(checkpoint, dataset=dataset)
    if out is None:
        given = attacks is not None or custom is not None
        out = beside(checkpoint, default_results_name(preset, custom=given))
    out = Path(out)
    journal = out.with_suffix(".journal")
    main = is_main_process()
    if main:  # before any attack: a folder or an unwritable place fails now, not at the end
        check_output_file(out)
    # only torchrun's rank 0 holds the lock (and writes the journal and results)
    held = output_lock(journal_lock(out), what=f"{out} (its journal {journal})")
    with held if main else nullcontext():
        try:
            result = benchmark(
                model,
                meta["dataset"],
                preset=preset,
                custom=custom,
                attacks=attacks,
                eps=eps,
                points=points,
                subset_seed=subset_seed,
                attack_seed=seed,
                data_dir=data_dir,
                device=device,
                batch_size=batch_size,
                show_progress=show_progress,
                out=out,
                resume=resume,
                budget=budget,
                adapt=adapt,
                exhaustive=exhaustive,
                eot_iter=eot_iter,
                lockstep=lockstep,
                meta={
                    "name": name or meta.get("preset") or Path(checkpoint).stem,
                    "checkpoint": str(checkpoint),
                    "model": meta["model"],
                    "train_preset": meta.get("preset"),
                    "train_epoch": meta.get("epoch"),
                },
            )
        except KeyboardInterrupt as err:
            if main and (journal / MANIFEST).exists():
                raise Interrupted(
                    f"rerun the same command with --resume to continue from {journal}"
                ) from err
            raise
    return result, out


def journal_lock(out: str | Path) -> Path:
    """The lock file of the evaluation that writes ``out`` (``OUT.journal.lock``)."""
    out = Path(out)
    return out.with_name(out.with_suffix("").name + ".journal.lock")


@dataclass
class SurfaceRun:
    """What :func:`surfaces_for_checkpoints` computed and wrote."""

    index: int
    label: int
    eps: float
    surfaces: list[tuple[str, SurfaceData, Path]]
    written: list[Path]


def _fixed_subset(
    dataset: str, available: int, points: int | None, default: int, seed: int
) -> np.ndarray:
    """Indices of a data set's fixed test subset of ``points`` points (None: ``default``,
    or the whole split when it is smaller); more than the split holds is refused
    (ValueError), as ``lpbench evaluate`` refuses it."""
    size = min(default, available) if points is None else points
    size = subset_size(size, available, f"the test split of {dataset}")
    return dataset_eval_subset(dataset, available, size, seed=seed)


def first_common_correct(
    models: Sequence[torch.nn.Module], test: Any, device: Any, dataset: str
) -> int:
    """The first point of the default evaluation subset that every model gets right."""
    indices = dataset_eval_subset(dataset, len(test), 1000)
    subset = test.subset(indices)
    correct = torch.ones(len(indices), dtype=torch.bool)
    for model in models:
        with evaluation_mode(model, device):
            correct &= predict(model, subset.images, 1000, device) == subset.labels
    if not correct.any():
        raise ValueError("no point of the evaluation subset is classified correctly by every model")
    return int(indices[int(correct.nonzero()[0])])


def surfaces_for_checkpoints(
    checkpoints: Sequence[str | Path],
    *,
    point: int | None = None,
    eps: float | None = None,
    resolution: int = 51,
    seed: int = 0,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    device: str | None = None,
    out: str | Path | None = None,
    pdf: bool = False,
    show_progress: bool = True,
) -> SurfaceRun:
    """Loss surfaces of one test point under each checkpoint, drawn side by side."""
    if not checkpoints:
        raise ValueError("give at least one checkpoint")
    device_t = resolve_device(device)
    models = []
    for checkpoint in checkpoints:
        model, meta = load_checkpoint(checkpoint, dataset=dataset, device=device_t)
        dataset = meta["dataset"]
        models.append((model_name(meta, checkpoint), model))
    eps = resolve_eps(eps, dataset)
    test = load_dataset(str(dataset), "test", data_dir=data_dir, progress=show_progress)
    if point is None:
        point = first_common_correct([m for _, m in models], test, device_t, str(dataset))
    index = point
    if not 0 <= index < len(test):
        raise ValueError(f"--point must be a test-set index in [0, {len(test) - 1}], got {index}")
    out = Path(out) if out is not None else beside(checkpoints[0], f"surface-point{index}.png")
    check_output_file(out)  # before any surface is computed
    surfaces = []
    for name, model in models:
        surface = loss_surface(
            model,
            test.images[index],
            int(test.labels[index]),
            eps,
            resolution=resolution,
            seed=seed,
            index=index,
        )
        raw = surface.save_npz(out.with_name(f"{out.stem}-{name}.npz"))
        surfaces.append((name, surface, raw))
    written = plot_surfaces([(name, s) for name, s, _ in surfaces], out, pdf=pdf)
    return SurfaceRun(index, int(test.labels[index]), eps, surfaces, written)


@dataclass
class GridRun:
    """What :func:`grid_for_checkpoint` computed and wrote."""

    name: str
    grid: GridData
    step_labels: list[str]
    written: list[Path]


def grid_for_checkpoint(
    checkpoint: str | Path,
    *,
    steps: Sequence[str],
    iters: Sequence[int],
    restarts: int = 1,
    loss: str = "ce",
    eps: float | None = None,
    points: int | None = None,
    subset_seed: int = 0,
    seed: int = 0,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    step_unit: str = "",
    out: str | Path | None = None,
    pdf: bool = False,
    show_progress: bool = True,
) -> GridRun:
    """Step size x iterations heatmap of a checkpoint on ``points`` points of its data set's
    fixed subset (None: 1000, or the whole split when it is smaller); ``.npz``, ``.json``
    and figure."""
    device_t = resolve_device(device)
    model, meta = load_checkpoint(checkpoint, dataset=dataset, device=device_t)
    dataset = meta["dataset"]
    out = Path(out) if out is not None else beside(checkpoint, "grid.png")
    check_output_file(out)  # before any attack
    eps = resolve_eps(eps, dataset)
    labels = list(steps)
    values = [parse_step(text, eps) for text in labels]
    test = load_dataset(dataset, "test", data_dir=data_dir, progress=show_progress)
    indices = _fixed_subset(dataset, len(test), points, DEFAULT_POINTS, subset_seed)
    subset = test.subset(indices)
    grid = step_iteration_grid(
        model,
        subset.images,
        subset.labels,
        eps,
        values,
        iters,
        restarts=restarts,
        seed=seed,
        loss=loss,
        indices=indices.tolist(),
        batch_size=batch_size,
        device=device_t,
        show_progress=show_progress,
    )
    name = model_name(meta, checkpoint)
    grid.save_npz(out.with_suffix(".npz"))
    write_json(
        out.with_suffix(".json"),
        {**grid.to_dict(), "step_labels": labels, "model": name, "indices": indices.tolist()},
    )
    written = plot_grid(
        grid,
        out,
        step_unit=step_unit,
        step_labels=labels,
        title=f"{name}: eps {eps:g}, {grid.restarts} restart(s), {grid.loss} loss",
        pdf=pdf,
    )
    return GridRun(name, grid, labels, written)


@dataclass
class HistogramRun:
    """What :func:`histograms_for_results` computed and wrote."""

    label: str
    histograms: list[PointHistogram]
    summary: RestartSummary
    written: list[Path]


def histograms_for_results(
    results_path: str | Path,
    *,
    attack: str | None = None,
    points: Sequence[int] | None = None,
    bins: int = 20,
    out: str | Path | None = None,
    pdf: bool = False,
) -> HistogramRun:
    """Per-restart loss histograms, success fractions and the restarts curve of a results file."""
    results = read_results(results_path)
    label = resolve_label(results, attack)
    out = Path(out) if out is not None else Path(results_path).with_name("histograms.png")
    check_output_file(out)
    hists, written = plot_point_histograms(results, label, points, out, bins=bins, pdf=pdf)
    summary, more = plot_restart_summary(
        results, label, out.with_name(out.stem + "-restarts.png"), pdf=pdf
    )
    raw = write_npz(
        out.with_suffix(".npz"),
        {
            "label": label,
            "points": [h.index for h in hists],
            "counts": np.stack([h.counts for h in hists]),
            "edges": np.stack([h.edges for h in hists]),
            "successes": [h.successes for h in hists],
            "restarts": hists[0].restarts,
            "summary_indices": summary.indices,
            "success_fractions": summary.fractions,
            "fraction_counts": summary.counts,
            "fraction_edges": summary.edges,
            "restarts_curve": summary.curve,
        },
    )
    return HistogramRun(label, hists, summary, [*written, *more, raw])


def check_checkpoint(
    checkpoint: str | Path,
    *,
    eps: float | None = None,
    points: int | None = None,
    subset_seed: int = 0,
    seed: int = 0,
    iters: int = 50,
    restarts: int = 5,
    queries: int = 1000,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    device: str | None = None,
    out: str | Path | None = None,
    show_progress: bool = True,
    surrogate: str | Path | None = None,
    eot_iter: int = 10,
    reevals: int = 10,
) -> CheckReport:
    """Masking probes of a checkpoint on its data set's fixed subset (``points`` points;
    None: 200, or the whole split when it is smaller);
    writes the eps sweep figure (``out``, default ``check.png`` beside the checkpoint)
    and the report as JSON beside it. ``surrogate``: a checkpoint of the same data set to
    transfer examples from (the transfer probe); ``eot_iter`` and ``reevals`` apply to
    randomised models only."""
    device_t = resolve_device(device)
    model, meta = load_checkpoint(checkpoint, dataset=dataset, device=device_t)
    dataset = meta["dataset"]
    out = Path(out) if out is not None else beside(checkpoint, "check.png")
    check_output_file(out.with_suffix(".png"))  # before any probe
    check_output_file(out.with_suffix(".json"))
    source = None
    if surrogate is not None:
        source, _ = load_checkpoint(surrogate, dataset=dataset, device=device_t)
    eps = resolve_eps(eps, dataset)
    test = load_dataset(dataset, "test", data_dir=data_dir, progress=show_progress)
    indices = _fixed_subset(dataset, len(test), points, 200, subset_seed)
    subset = test.subset(indices)
    report = check(
        model,
        subset.images,
        subset.labels,
        eps,
        dataset=dataset,
        iters=iters,
        restarts=restarts,
        queries=queries,
        seed=seed,
        device=device_t,
        surrogate=source,
        eot_iter=eot_iter,
        reevals=reevals,
        show_progress=show_progress,
    )
    report.figure = plot_sweep(report.sweep, out.with_suffix(".png"), eps=eps)
    write_json(
        out.with_suffix(".json"),
        {
            **report.to_dict(),
            "checkpoint": str(checkpoint),
            "dataset": dataset,
            "surrogate": None if surrogate is None else str(surrogate),
        },
    )
    return report
