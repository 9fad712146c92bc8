"""The ``lpbench`` command line: train, evaluate, demo, and the diagnostics figures."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lpbench.data import (
    DATASETS,
    ChecksumError,
    DataFormatError,
    DatasetNotFoundError,
    evaluation_subset,
    load_dataset,
)
from lpbench.evaluation import (
    PRESETS,
    NamedAttack,
    VerificationError,
    benchmark,
    default_eps,
)
from lpbench.models import MODELS
from lpbench.training import (
    TRAIN_PRESETS,
    CheckpointError,
    TrainConfig,
    describe_recipes,
    load_checkpoint,
    recipe_config,
    train,
)

USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    CheckpointError,
    DataFormatError,
    ChecksumError,
    DatasetNotFoundError,
    VerificationError,
)


def _fraction(name: str, *, allow_zero: bool = False) -> Any:
    """argparse type: a float in (0, 1] (or [0, 1])."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        low_ok = value >= 0 if allow_zero else value > 0
        if not (low_ok and value <= 1):
            bound = "[0, 1]" if allow_zero else "(0, 1]"
            raise argparse.ArgumentTypeError(
                f"{name} must be in {bound} (inputs are in [0, 1]), got {value}"
            )
        return value

    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with the data set's files (else $LPBENCH_DATA, the user "
        "cache, then Debian's Fashion-MNIST package)",
    )
    parser.add_argument(
        "--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        default=None,
        choices=sorted(DATASETS),
        help="data set (default: the preset's; fashion-mnist for the short names)",
    )
    parser.add_argument(
        "--preset",
        default="plain",
        metavar="NAME",
        help="recipe named after a seed table row, e.g. mnist/clp, cifar10/lsq, "
        "tiny-imagenet/100at-ll-alp-ll, or a short name (plain, clp, lsq, plain-alp, at50, "
        "at50-alp, at100, at100-alp) for MNIST/Fashion-MNIST; see --list-presets",
    )
    parser.add_argument(
        "--list-presets", action="store_true", help="print every recipe with its values and exit"
    )
    parser.add_argument("--epochs", type=_positive_int, default=None)
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="global batch, split evenly over torchrun's processes",
    )
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-points",
        type=_positive_int,
        default=None,
        help="train on a fixed random subset of this many training images",
    )
    parser.add_argument(
        "--eval-adv-points",
        type=int,
        default=0,
        help="log accuracy under the training attack on this many test points per epoch",
    )
    _add_model_args(parser)
    terms = parser.add_argument_group("objective weights (override the preset)")
    for flag, helptext in (
        ("ce", "clean cross-entropy"),
        ("at", "adversarial cross-entropy"),
        ("alp", "adversarial logit pairing"),
        ("clp", "clean logit pairing"),
        ("lsq", "logit squeezing"),
        ("weight-decay", "L2 on the weights"),
        ("noise-std", "Gaussian input noise std"),
    ):
        terms.add_argument(f"--{flag}", type=_non_negative, default=None, help=helptext)
    adv = parser.add_argument_group("adversarial examples for AT / ALP")
    adv.add_argument(
        "--adv-eps",
        type=_fraction("--adv-eps"),
        default=None,
        help="radius (default: the data set's evaluation eps)",
    )
    adv.add_argument("--adv-step", type=_fraction("--adv-step"), default=None)
    adv.add_argument("--adv-iters", type=_positive_int, default=None)
    adv.add_argument("--adv-target", choices=("none", "ll", "random"), default=None)


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    """Flags of the training engine: model, fine-tuning, precision, loading, checkpoints."""
    group = parser.add_argument_group("model and engine")
    group.add_argument("--model", choices=sorted(MODELS), default=None, help="override")
    group.add_argument(
        "--width", type=_positive_int, default=None, help="ResNet base width (64 is the real one)"
    )
    group.add_argument("--init-from", default=None, help="checkpoint to start (fine-tune) from")
    group.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA")
    group.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    group.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="also save a resumable state every N steps within an epoch",
    )


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return recipe_config(
        args.preset,
        args.dataset,
        model=args.model,
        model_options={"width": args.width} if args.width else None,
        init_from=args.init_from,
        amp=args.amp or None,
        checkpoint_every=args.checkpoint_every,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        train_points=args.train_points,
        adv_eps=args.adv_eps,
        adv_step=args.adv_step,
        adv_iters=args.adv_iters,
        adv_target=args.adv_target,
        eval_adv_points=args.eval_adv_points,
        **{key: getattr(args, key) for key in OBJECTIVE_FLAGS},
    )


OBJECTIVE_FLAGS = ("ce", "at", "alp", "clp", "lsq", "weight_decay", "noise_std")


def cmd_train(args: argparse.Namespace) -> int:
    if args.list_presets:
        print(describe_recipes())
        return 0
    config = _train_config(args)
    name = config.preset.replace("/", "-") if config.preset else "custom"
    out = args.out or Path("runs") / f"{config.dataset}-{name}-seed{config.seed}"
    _, history = train(
        config,
        out,
        data_dir=args.data_dir,
        device=args.device,
        resume=args.resume,
        show_progress=not args.no_progress,
        workers=args.workers,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    last = history[-1] if history else {}
    print(
        f"trained {config.preset} on {config.dataset}: epoch {last.get('epoch')}, "
        f"test accuracy {last.get('test_accuracy', float('nan')):.4f}"
    )
    print(f"checkpoint: {out / 'model.safetensors'}  log: {out / 'train_log.jsonl'}")
    return 0


def _attacks_from_flags(args: argparse.Namespace, eps: float) -> list[NamedAttack] | None:
    """A custom PGD when any free attack flag is given, else None (use the preset)."""
    free = [args.step, args.iters, args.restarts, args.loss]
    if all(v is None for v in free) and not args.no_early_stop:
        return None
    if args.preset is not None:
        raise ValueError(
            "give either --preset or the free attack flags "
            "(--step/--iters/--restarts/--loss), not both"
        )
    from lpbench.attacks import PGD

    attack = PGD(
        eps,
        step=args.step if args.step is not None else eps / 4,
        iters=args.iters if args.iters is not None else 100,
        restarts=args.restarts or 1,
        loss=args.loss or "ce",
        early_stop=not args.no_early_stop,
        seed=args.seed,
    )
    return [NamedAttack("pgd", attack)]


def cmd_evaluate(args: argparse.Namespace) -> int:
    model, meta = load_checkpoint(args.checkpoint, dataset=args.dataset)
    dataset = meta["dataset"]
    eps = args.eps if args.eps is not None else default_eps(dataset)
    attacks = _attacks_from_flags(args, eps)
    result = benchmark(
        model,
        dataset,
        preset=args.preset or "strong",
        attacks=attacks,
        eps=eps,
        points=args.points,
        subset_seed=args.subset_seed,
        attack_seed=args.seed,
        data_dir=args.data_dir,
        device=args.device,
        batch_size=args.batch_size,
        show_progress=not args.no_progress,
        meta={
            "name": args.name or meta.get("preset") or Path(args.checkpoint).stem,
            "checkpoint": str(args.checkpoint),
            "model": meta["model"],
            "train_preset": meta.get("preset"),
            "train_epoch": meta.get("epoch"),
        },
    )
    out = (
        args.out
        or Path(args.checkpoint if Path(args.checkpoint).is_dir() else Path(args.checkpoint).parent)
        / "results.json"
    )
    result.save(out)
    print(
        f"clean accuracy {result.clean_accuracy:.1%}, robust accuracy "
        f"{result.robust_accuracy:.1%} at eps {eps} over {result.num_points} points "
        f"({result.grad_evals:,} gradient evaluations, {result.wall_time_s:.1f} s)"
    )
    for summary in result.attacks:
        print(
            f"  after {summary.label:<20} {summary.robust_accuracy_after:6.1%}  "
            f"({summary.points_attacked} points attacked, {summary.grad_evals:,} grad evals)"
        )
    print(f"results: {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    run = args.out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    eps = args.eps if args.eps is not None else default_eps(args.dataset)
    started = time.perf_counter()
    q = shlex.quote
    shared = f"--device {q(args.device)}" + (" --no-progress" if args.no_progress else "")
    if args.data_dir:
        shared += f" --data-dir {q(str(args.data_dir))}"
    figures = run / "figures"
    for preset in DEMO_PRESETS:
        model = q(str(run / preset))
        subset = "" if args.train_points is None else f" --train-points {args.train_points}"
        print(f"== {preset}: training {args.epochs} epoch(s) on {args.dataset}", flush=True)
        _run_step(
            f"train --dataset {args.dataset} --preset {preset} --epochs {args.epochs} "
            f"--seed {args.seed}{subset} --out {model} --resume {shared}"
        )
        print(f"== {preset}: baseline and strong attacks on {args.points} test points", flush=True)
        _run_step(
            f"evaluate {model} --preset strong --eps {eps} --points {args.points} "
            f"--name {preset} {shared}"
        )
        print(f"== {preset}: restart study, histograms and step x iterations grid", flush=True)
        study = q(str(run / preset / "restarts.json"))
        _run_step(
            f"evaluate {model} --eps {eps} --step {eps / 4} --iters 40 --restarts {args.restarts} "
            f"--no-early-stop --points {args.restart_points} --name {preset} --out {study} "
            f"{shared}"
        )
        _run_step(f"histogram {study} --out {q(str(figures / f'histograms-{preset}.png'))}")
        _run_step(
            f"grid {model} --eps {eps} --points {args.grid_points} "
            "--steps eps/20 eps/10 eps/4 eps/2 eps --iters 5 10 20 50 "
            f"--out {q(str(figures / f'grid-{preset}.png'))} {shared}"
        )
    others = " ".join(q(str(run / preset)) for preset in DEMO_PRESETS[1:])
    _run_step(
        f"surface {q(str(run / DEMO_PRESETS[0]))} --compare {others} --eps {eps} "
        f"--out {q(str(figures / 'surface.png'))} {shared}"
    )
    title = (
        f"lpbench demo: LeNet on {args.dataset}, eps {eps}, {args.epochs} epoch(s), "
        f"{args.points} test points"
    )
    print()
    _run_step(f"report {q(str(run))} --title {q(title)}")
    print(f"\ntotal time {time.perf_counter() - started:.0f} s; report: {run / 'report.md'}")
    return 0


#: The seed's first three rows, trained and compared by ``lpbench demo``.
DEMO_PRESETS = ("plain", "clp", "lsq")


def _run_step(command: str) -> None:
    """Run one ``lpbench`` command as a step of the demo, echoing it so it can be re-run."""
    print(f"$ lpbench {command}", flush=True)
    args = build_parser().parse_args(shlex.split(command))
    args.func(args)


def _model_name(meta: dict[str, Any], checkpoint: str | Path) -> str:
    path = Path(checkpoint)
    return meta.get("preset") or (path.name if path.is_dir() else path.parent.name)


def _parse_step(text: str, eps: float) -> float:
    """A step size as a number, a fraction ``a/b`` or a multiple of eps (``eps/4``, ``2*eps``)."""
    expr = text.strip().replace(" ", "")
    factor = 1.0
    if "*" in expr:
        left, _, expr = expr.partition("*")
        factor = _number(left, text)
    if expr.startswith("eps"):
        value, rest = eps, expr[3:]
    else:
        head, _, rest = expr.partition("/")
        value, rest = _number(head, text), f"/{rest}" if rest else ""
    if rest:
        if not rest.startswith("/"):
            raise ValueError(f"cannot read step size {text!r}: use 0.01, 2.5/255 or eps/4")
        value /= _number(rest[1:], text)
    value *= factor
    if not 0 < value <= 1:
        raise ValueError(f"step size {text!r} = {value:g} must be in (0, 1]")
    return value


def _number(text: str, whole: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"cannot read step size {whole!r}: use 0.01, 2.5/255 or eps/4") from None
    if value <= 0:
        raise ValueError(f"step size {whole!r} must be positive")
    return value


def cmd_surface(args: argparse.Namespace) -> int:
    from lpbench.diagnostics import loss_surface, plot_surfaces
    from lpbench.runtime import resolve_device

    device = resolve_device(args.device)
    checkpoints = [args.checkpoint, *args.compare]
    models = []
    dataset = args.dataset
    for checkpoint in checkpoints:
        model, meta = load_checkpoint(checkpoint, dataset=dataset, device=device)
        dataset = meta["dataset"]
        models.append((_model_name(meta, checkpoint), model))
    eps = args.eps if args.eps is not None else default_eps(dataset)
    test = load_dataset(dataset, "test", data_dir=args.data_dir, progress=not args.no_progress)
    index = args.point if args.point is not None else _first_common_correct(models, test, device)
    if not 0 <= index < len(test):
        raise ValueError(f"--point must be a test-set index in [0, {len(test) - 1}], got {index}")
    out = args.out or _beside(args.checkpoint, f"surface-point{index}.png")
    surfaces = []
    for name, model in models:
        surface = loss_surface(
            model,
            test.images[index],
            int(test.labels[index]),
            eps,
            resolution=args.resolution,
            seed=args.seed,
            index=index,
        )
        raw = surface.save_npz(out.with_name(f"{out.stem}-{name}.npz"))
        surfaces.append((name, surface))
        print(
            f"{name}: clean loss {surface.clean_loss:.4g}, on the plane "
            f"{surface.loss.min():.4g} .. {surface.loss.max():.4g}  ({raw})"
        )
    written = plot_surfaces(surfaces, out, pdf=args.pdf)
    print(
        f"point {index} (label {int(test.labels[index])}), eps {eps}: "
        + ", ".join(map(str, written))
    )
    return 0


def _first_common_correct(models: list[tuple[str, Any]], test: Any, device: Any) -> int:
    """The first point of the default evaluation subset that every model gets right."""
    indices = evaluation_subset(len(test), 1000, seed=0)
    subset = test.subset(indices)
    correct = torch.ones(len(indices), dtype=torch.bool)
    with torch.no_grad():
        for _, model in models:
            correct &= model(subset.images.to(device)).argmax(1).cpu() == subset.labels
    if not correct.any():
        raise ValueError("no point of the evaluation subset is classified correctly by every model")
    return int(indices[int(correct.nonzero()[0])])


def _beside(checkpoint: str | Path, name: str) -> Path:
    path = Path(checkpoint)
    return (path if path.is_dir() else path.parent) / name


def cmd_grid(args: argparse.Namespace) -> int:
    from lpbench.diagnostics import plot_grid, step_iteration_grid
    from lpbench.io import write_json
    from lpbench.runtime import resolve_device

    device = resolve_device(args.device)
    model, meta = load_checkpoint(args.checkpoint, dataset=args.dataset, device=device)
    dataset = meta["dataset"]
    eps = args.eps if args.eps is not None else default_eps(dataset)
    labels = args.steps
    steps = [_parse_step(text, eps) for text in labels]
    test = load_dataset(dataset, "test", data_dir=args.data_dir, progress=not args.no_progress)
    indices = evaluation_subset(len(test), args.points, seed=args.subset_seed)
    subset = test.subset(indices)
    grid = step_iteration_grid(
        model,
        subset.images,
        subset.labels,
        eps,
        steps,
        args.iters,
        restarts=args.restarts,
        seed=args.seed,
        loss=args.loss,
        batch_size=args.batch_size,
        device=device,
        show_progress=not args.no_progress,
    )
    name = _model_name(meta, args.checkpoint)
    out = args.out or _beside(args.checkpoint, "grid.png")
    grid.save_npz(out.with_suffix(".npz"))
    order = sorted(set(args.iters))
    write_json(
        out.with_suffix(".json"),
        {**grid.to_dict(), "step_labels": labels, "model": name, "indices": indices.tolist()},
    )
    written = plot_grid(
        grid,
        out,
        step_unit=args.step_unit,
        step_labels=labels,
        title=f"{name}: eps {eps:g}, {grid.restarts} restart(s), {grid.loss} loss",
        pdf=args.pdf,
    )
    width = max(len(t) for t in labels)
    print(
        f"robust accuracy of {name} on {grid.num_points} points (rows: step, columns: iterations)"
    )
    print(" " * width + "".join(f"{k:>8}" for k in order))
    for label, row in zip(labels, grid.accuracy, strict=True):
        print(f"{label:>{width}}" + "".join(f"{v:8.1%}" for v in row))
    print(
        f"cost {grid.grad_evals:,} gradient evaluations (one run per cell would take "
        f"{grid.naive_grad_evals:,}), {grid.wall_time_s:.1f} s; " + ", ".join(map(str, written))
    )
    return 0


def cmd_histogram(args: argparse.Namespace) -> int:
    from lpbench.diagnostics import (
        plot_point_histograms,
        plot_restart_summary,
        resolve_label,
        write_npz,
    )

    results = _read_results(args.results)
    label = resolve_label(results, args.attack)
    out = args.out or Path(args.results).with_name("histograms.png")
    try:
        hists, written = plot_point_histograms(
            results, label, args.point, out, bins=args.bins, pdf=args.pdf
        )
    except ValueError as err:
        raise ValueError(
            f"{err}. Histograms need every restart run to the end: evaluate with "
            "`lpbench evaluate CHECKPOINT --restarts N --no-early-stop`"
        ) from err
    summary, more = plot_restart_summary(
        results, label, out.with_name(out.stem + "-restarts.png"), pdf=args.pdf
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
    for hist in hists:
        print(
            f"point {hist.index}: {hist.successes}/{hist.restarts} restarts succeed, final loss "
            f"{hist.edges[0]:.3g} .. {hist.edges[-1]:.3g}"
        )
    curve = summary.curve
    marks = sorted({1, 10, 100, 1000, len(curve)} & set(range(1, len(curve) + 1)))
    print(
        f"{label}: robust accuracy with k restarts: "
        + ", ".join(f"k={k}: {curve[k - 1]:.1%}" for k in marks)
    )
    print(", ".join(map(str, [*written, *more, raw])))
    return 0


def _read_results(path: Path) -> dict[str, Any]:
    """An evaluation results file, or ValueError naming what is wrong with it."""
    from lpbench.io import read_json

    data = read_json(path)
    missing = [key for key in ("attacks", "points", "robust_accuracy") if key not in data]
    if missing:
        raise ValueError(
            f"{path} is not an lpbench evaluation result (no {', '.join(missing)}); "
            "give the results.json written by `lpbench evaluate`"
        )
    return data


def _collect_results(inputs: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(results files, figures) from run folders and results JSON files."""
    results, figures = [], []
    for item in inputs:
        if item.is_dir():
            found = sorted(item.glob("*/results.json")) + sorted(item.glob("results.json"))
            if not found:
                raise FileNotFoundError(f"no results.json in {item} or its sub-folders")
            results += found
            figures += sorted((item / "figures").glob("*.png"))
        elif item.is_file():
            results.append(item)
        else:
            raise FileNotFoundError(f"no run folder or results file {item}")
    return results, figures


def figure_sections(figures: Sequence[Path]) -> dict[str, list[Path]]:
    """Group figure files into report sections by the command that made them."""
    sections: dict[str, list[Path]] = {}
    for path in figures:
        stem = path.stem
        if stem.startswith("surface"):
            section = "Loss surfaces"
        elif stem.startswith("grid"):
            section = "Step size x iterations"
        elif stem.endswith("restarts"):
            section = "How many restarts are needed"
        elif stem.startswith("histograms"):
            section = "Final loss per restart"
        else:
            section = "Figures"
        sections.setdefault(section, []).append(path)
    return sections


def cmd_report(args: argparse.Namespace) -> int:
    from lpbench.reporting import ResultRow, render_text, write_report

    files, figures = _collect_results(args.inputs)
    figures += args.figure
    rows = [ResultRow.from_results(_read_results(path)) for path in files]
    rank = {name: i for i, name in enumerate(TRAIN_PRESETS)}
    rows.sort(key=lambda row: (rank.get(row.name, len(rank)), row.name))
    out = args.out or (args.inputs[0] if args.inputs[0].is_dir() else Path("."))
    written = write_report(rows, out, figures=figure_sections(figures), title=args.title)
    print(render_text(rows))
    print("\n" + ", ".join(str(p) for p in written.values()))
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from lpbench.data import prepare_tiny_imagenet
    from lpbench.data.datasets import cache_dir

    root = args.data_dir or os.environ.get("LPBENCH_DATA") or cache_dir()
    out = prepare_tiny_imagenet(
        Path(root) / args.dataset,
        args.source,
        download_archive=not args.no_download,
        progress=not args.no_progress,
    )
    print(f"{args.dataset} is ready in {out}")
    return 0


def cmd_plot_training(args: argparse.Namespace) -> int:
    from lpbench.training import plot_training, read_log

    run = Path(args.run)
    records = read_log(run)
    out = args.out or (run if run.is_dir() else run.parent) / "training.png"
    print(plot_training(records, out, title=args.title or run.name))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lpbench", description="Train logit-pairing defenses and evaluate them honestly."
    )
    parser.add_argument(
        "--version", action="version", version=f"lpbench {__import__('lpbench').__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train a model with the recipe of a seed table row",
        description="Train the model of a seed table row with its recipe (--list-presets). "
        "Checkpoints and a JSON-lines log go to --out. Several processes: "
        "torchrun --nproc_per_node=N -m lpbench train ...",
    )
    _add_train_args(p)
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "data",
        help="prepare a data set that needs a one-time conversion (Tiny ImageNet)",
        description="`lpbench data prepare tiny-imagenet` converts the official archive "
        "(downloaded, or --source: the zip or its unpacked folder) into a uint8 cache; "
        "resumable.",
    )
    p.add_argument("action", choices=("prepare",))
    p.add_argument("dataset", choices=("tiny-imagenet",))
    p.add_argument("--source", type=Path, default=None, help="tiny-imagenet-200.zip or folder")
    p.add_argument("--no-download", action="store_true", help="never download the archive")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="root (default $LPBENCH_DATA or cache)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_data_prepare)

    p = sub.add_parser(
        "plot-training",
        help="training curve of a run (accuracies, loss terms per epoch) as a PNG",
    )
    p.add_argument("run", help="run folder or its train_log.jsonl")
    p.add_argument("--out", type=Path, default=None, help="PNG (default RUN/training.png)")
    p.add_argument("--title", default=None)
    p.set_defaults(func=cmd_plot_training)

    p = sub.add_parser(
        "evaluate",
        help="attack a checkpoint on the fixed test subset",
        description="Clean and worst-case robust accuracy of a checkpoint under "
        "an attack preset or a custom PGD; writes per-point JSON.",
    )
    p.add_argument("checkpoint", help="run folder or model.safetensors from `lpbench train`")
    p.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help="attack preset (default: strong, which includes the baseline)",
    )
    p.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default=None,
        help="must match the checkpoint's data set (default: the checkpoint's)",
    )
    p.add_argument(
        "--eps",
        type=_fraction("--eps"),
        default=None,
        help="L-inf radius (default: 0.3 MNIST, 0.1 Fashion-MNIST)",
    )
    p.add_argument("--step", type=_fraction("--step"), default=None, help="custom PGD step")
    p.add_argument("--iters", type=_positive_int, default=None, help="custom PGD iterations")
    p.add_argument("--restarts", type=_positive_int, default=None, help="custom PGD restarts")
    p.add_argument("--loss", choices=("ce", "margin", "dlr"), default=None, help="custom PGD loss")
    p.add_argument(
        "--no-early-stop",
        action="store_true",
        help="run every restart to the end (exact per-restart losses)",
    )
    p.add_argument(
        "--points", type=_positive_int, default=1000, help="size of the fixed evaluation subset"
    )
    p.add_argument("--subset-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="attack seed")
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="rows (points x restarts) per forward pass (default: 256 CPU, 8192 GPU)",
    )
    p.add_argument("--name", default=None, help="model name in reports")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON (default: results.json beside the checkpoint)",
    )
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "demo",
        help="train Plain, CLP and LSQ and compare baseline vs strong",
        description="Train Plain, CLP and LSQ LeNets, evaluate each with the "
        "baseline and the strong attack, write report.md.",
    )
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=1,
        help="training epochs per model (default 1: the demo stays under 10 min on 2 CPU cores)",
    )
    p.add_argument("--eps", type=_fraction("--eps"), default=None, help="default: data set's")
    p.add_argument("--points", type=_positive_int, default=1000, help="evaluation subset size")
    p.add_argument(
        "--train-points", type=_positive_int, default=None, help="train on a fixed subset"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--restarts", type=_positive_int, default=32, help="restarts of the histogram study"
    )
    p.add_argument(
        "--restart-points", type=_positive_int, default=20, help="points of the histogram study"
    )
    p.add_argument(
        "--grid-points", type=_positive_int, default=100, help="points of the step x iters grid"
    )
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/demo-TIME)")
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "surface",
        help="loss surface around one test point, several models side by side",
        description="Cross-entropy on the plane x + a*sign(grad) + b*random_sign, "
        "a, b in [-eps, eps], drawn in 3D with contours; raw grids saved as .npz.",
    )
    p.add_argument("checkpoint", help="run folder or model.safetensors")
    p.add_argument(
        "--compare", nargs="+", default=[], metavar="CHECKPOINT", help="more models to draw"
    )
    p.add_argument(
        "--point",
        type=int,
        default=None,
        help="test-set index (default: the first point of the evaluation subset that "
        "every model classifies correctly)",
    )
    p.add_argument("--eps", type=_fraction("--eps"), default=None)
    p.add_argument("--resolution", type=_positive_int, default=51, help="grid points per axis")
    p.add_argument("--seed", type=int, default=0, help="seed of the random direction")
    p.add_argument("--dataset", choices=sorted(DATASETS), default=None)
    p.add_argument(
        "--out", type=Path, default=None, help="PNG path (default: beside the checkpoint)"
    )
    p.add_argument("--pdf", action="store_true", help="also write a PDF")
    _add_common(p)
    p.set_defaults(func=cmd_surface)

    p = sub.add_parser(
        "grid",
        help="robust accuracy over step sizes x iteration counts (heatmap)",
        description="One PGD run of max(--iters) iterations per step size, read off at "
        "every smaller count: the grid costs max(iters) x steps gradient evaluations.",
    )
    p.add_argument("checkpoint", help="run folder or model.safetensors")
    p.add_argument(
        "--steps",
        nargs="+",
        default=["eps/40", "eps/20", "eps/10", "eps/4", "eps/2", "eps"],
        help="step sizes as numbers, fractions (2.5/255) or multiples of eps (eps/4); "
        "shown on the axis as written",
    )
    p.add_argument("--iters", nargs="+", type=_positive_int, default=[10, 20, 50, 100, 200])
    p.add_argument("--step-unit", default="", help="unit named on the step axis, e.g. 1/255")
    p.add_argument("--restarts", type=_positive_int, default=1)
    p.add_argument("--loss", choices=("ce", "margin", "dlr"), default="ce")
    p.add_argument("--eps", type=_fraction("--eps"), default=None)
    p.add_argument("--points", type=_positive_int, default=1000)
    p.add_argument("--subset-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="attack seed (same start for every step)")
    p.add_argument("--batch-size", type=_positive_int, default=None)
    p.add_argument("--dataset", choices=sorted(DATASETS), default=None)
    p.add_argument("--out", type=Path, default=None, help="PNG path; .npz and .json beside it")
    p.add_argument("--pdf", action="store_true", help="also write a PDF")
    _add_common(p)
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser(
        "histogram",
        help="per-restart loss histograms and the restarts curve from a results file",
        description="From an evaluation run with every restart recorded "
        "(`lpbench evaluate --restarts N --no-early-stop`): final loss per restart for "
        "chosen points, success fraction per point, robust accuracy vs restarts.",
    )
    p.add_argument("results", type=Path, help="results.json written by `lpbench evaluate`")
    p.add_argument("--attack", default=None, help="attack label (default: most restarts)")
    p.add_argument(
        "--point", nargs="+", type=int, default=None, help="test-set indices (default: picked)"
    )
    p.add_argument("--bins", type=_positive_int, default=20)
    p.add_argument(
        "--out", type=Path, default=None, help="PNG path (default: histograms.png beside results)"
    )
    p.add_argument("--pdf", action="store_true", help="also write PDFs")
    p.set_defaults(func=cmd_histogram)

    p = sub.add_parser(
        "report",
        help="seed-style table (Markdown, CSV, JSON) with figures",
        description="Collect results.json files (or run folders holding them and a "
        "figures/ folder) into report.md, report.csv and report.json.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="RUN_OR_RESULTS")
    p.add_argument("--figure", nargs="+", type=Path, default=[], help="more images to embed")
    p.add_argument("--title", default="lpbench report")
    p.add_argument(
        "--out", type=Path, default=None, help="folder (default: the first run folder, else .)"
    )
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"lpbench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
