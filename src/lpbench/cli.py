"""The ``lpbench`` command line: train, evaluate, demo, and the diagnostics figures."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lpbench.data import DATASETS, ChecksumError, DataFormatError, DatasetNotFoundError
from lpbench.defenses import ObjectiveConfig
from lpbench.evaluation import (
    PRESETS,
    NamedAttack,
    VerificationError,
    benchmark,
    default_eps,
)
from lpbench.training import (
    TRAIN_PRESETS,
    CheckpointError,
    TrainConfig,
    get_train_preset,
    load_checkpoint,
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
    parser.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    parser.add_argument(
        "--preset",
        default="plain",
        choices=sorted(TRAIN_PRESETS),
        help="objective named after the seed's table rows (default: plain)",
    )
    parser.add_argument("--epochs", type=_positive_int, default=100)
    parser.add_argument("--batch-size", type=_positive_int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
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
        help="log baseline-attack accuracy on this many test points per epoch",
    )
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
    adv.add_argument("--adv-step", type=_fraction("--adv-step"), default=0.01)
    adv.add_argument("--adv-iters", type=_positive_int, default=40)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    objective = get_train_preset(args.preset).to_dict()
    for key in objective:
        value = getattr(args, key, None)
        if value is not None:
            objective[key] = value
    return TrainConfig(
        dataset=args.dataset,
        model="lenet",
        objective=ObjectiveConfig(**objective),
        preset=args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        train_points=args.train_points,
        adv_eps=args.adv_eps,
        adv_step=args.adv_step,
        adv_iters=args.adv_iters,
        eval_adv_points=args.eval_adv_points,
    )


def cmd_train(args: argparse.Namespace) -> int:
    config = _train_config(args)
    out = args.out or Path("runs") / f"{config.dataset}-{config.preset}-seed{config.seed}"
    _, history = train(
        config,
        out,
        data_dir=args.data_dir,
        device=args.device,
        resume=args.resume,
        show_progress=not args.no_progress,
    )
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
    from lpbench.reporting import ResultRow, render_text, write_report

    run = args.out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    eps = args.eps if args.eps is not None else default_eps(args.dataset)
    started = time.perf_counter()
    rows, results = [], {}
    for preset in ("plain", "clp", "lsq"):
        print(f"== {preset}: training {args.epochs} epoch(s) on {args.dataset}", flush=True)
        config = TrainConfig(
            dataset=args.dataset,
            objective=get_train_preset(preset),
            preset=preset,
            epochs=args.epochs,
            seed=args.seed,
            train_points=args.train_points,
        )
        model, _ = train(
            config,
            run / preset,
            data_dir=args.data_dir,
            device=args.device,
            resume=True,
            show_progress=not args.no_progress,
        )
        print(f"== {preset}: baseline and strong attacks on {args.points} test points", flush=True)
        result = benchmark(
            model,
            args.dataset,
            preset="strong",
            eps=eps,
            points=args.points,
            data_dir=args.data_dir,
            device=args.device,
            show_progress=not args.no_progress,
            meta={
                "name": preset,
                "checkpoint": str(run / preset),
                "model": "lenet",
                "train_preset": preset,
                "train_epoch": args.epochs,
            },
        )
        result.save(run / preset / "results.json")
        results[preset] = result.to_dict()
        rows.append(ResultRow.from_results(results[preset], name=preset))
    title = (
        f"lpbench demo: LeNet on {args.dataset}, eps {eps}, {args.epochs} epoch(s), "
        f"{args.points} test points"
    )
    write_report(rows, run, title=title)
    print()
    print(render_text(rows))
    print(
        f"\ntotal time {time.perf_counter() - started:.0f} s; report: {run / 'report.md'}, "
        f"results: {run}/<model>/results.json"
    )
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
        help="train a model with a seed preset's objective",
        description="Train LeNet with the objective of a seed table row. "
        "Checkpoints and a JSON-lines log go to --out.",
    )
    _add_train_args(p)
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    _add_common(p)
    p.set_defaults(func=cmd_train)

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
    p.add_argument("--epochs", type=_positive_int, default=2)
    p.add_argument("--eps", type=_fraction("--eps"), default=None)
    p.add_argument("--points", type=_positive_int, default=1000)
    p.add_argument("--train-points", type=_positive_int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/demo-TIME)")
    _add_common(p)
    p.set_defaults(func=cmd_demo)
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
