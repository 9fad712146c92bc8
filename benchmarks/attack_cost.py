"""Robust accuracy against compute: every attack and preset of lpbench on the same models.

For each model it evaluates the data set's fixed evaluation subset with: the seed's
baseline; PGD-100 (step eps/4, cross-entropy) with R = 1, 2, 4, ... restarts, doubling
while the next run is predicted to fit ``--pgd-minutes`` (30 by default) for that model;
APGD-CE; APGD-T (9 targets); Square (5,000 queries); ``aa-standard``; and ``auto`` at each
of ``--budgets`` (default: its default budget, the budget from which ``--exhaustive``
contains ``aa-standard`` (7,372), and that plus the warm-started Square's 1,000 queries).

The models: without ``--models``, the Plain, CLP, LSQ and 50% AT LeNets of ``--dataset``
(Fashion-MNIST by default; ``mnist`` once its files are in ``--data-dir``), trained with
``lpbench train``'s recipes for the epochs of :data:`TRAINED` into ``--out/models`` (a
finished run is reused, a killed one resumed; about two hours on one CPU thread for
Fashion-MNIST). ``--models zoo`` takes the zoo's LeNets on the shipped MNIST digits
instead; any run folders or ``zoo:`` references can be given too.

Each row gives robust accuracy (worst case per point; clean mistakes count as broken),
gradients and queries per point (over all points), compute per point (every forward pass,
a gradient as three), and wall time. Per-point results go to
``--out`` (one JSON per row), the table to ``--out/attack_cost.md`` and ``.json``, the
figure (robust accuracy against gradients + queries) to ``--out/attack_cost.png``. The
goal lines say, per ``auto`` row, whether it is at or below ``aa-standard`` and the best
PGD row, its gradients + queries as a share of ``aa-standard``'s, its compute (every
forward pass, a gradient counted as three; the table's ``compute / pt``) as a share of
``aa-standard``'s, and its gradients + queries as a share of what
AutoAttack's reference code would spend on ``aa-standard``'s runs (it takes every APGD and
FAB-T run to its last iteration; lpbench stops a point at its first adversarial iterate).
``--reuse`` keeps rows of earlier tables (same model, label and points) instead of
running them again, e.g. to add ``auto`` budgets, except the labels ``--fresh`` names (or
starts, e.g. ``auto``);
``--plot-from`` redraws the figure from saved tables.

    python benchmarks/attack_cost.py [--dataset fashion-mnist | --models zoo | --models
        zoo:mnist-digits/clp runs/x] [--points 1000] [--device cuda]
        [--budgets 2000 7372 8372] [--reuse OLD/attack_cost.json [--fresh auto]]
        [--plot-from A.json B.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from lpbench.evaluation import (
    AUTO_CONTAINS_AA_BUDGET,
    DEFAULT_BUDGET,
    WARM_SQUARE_QUERIES,
    default_eps,
)
from lpbench.evaluation.protocol import AA_STANDARD, AttackSpec
from lpbench.pipelines.steps import evaluate_checkpoint
from lpbench.runtime import default_batch_rows, resolve_device
from lpbench.training import read_checkpoint_meta, recipe_config, train
from lpbench.zoo import list_entries

ZOO = ("plain", "clp", "lsq", "at50")
#: Recipe (``lpbench train --preset``) and epochs of each model trained without --models.
TRAINED = {"plain": 10, "clp": 40, "lsq": 40, "at50": 3}


def trained_models(dataset: str, folder: Path, data_dir: Path | None) -> list[str]:
    """Train the :data:`TRAINED` LeNets on ``dataset`` under ``folder`` (a finished run is
    kept as it is, a killed one resumed); their run folders."""
    runs = []
    for recipe, epochs in TRAINED.items():
        run = folder / f"{dataset}-{recipe}-e{epochs}"
        print(f"training {run} (lpbench train --preset {recipe} --epochs {epochs})", flush=True)
        train(recipe_config(recipe, dataset, epochs=epochs), run, data_dir=data_dir, resume=True)
        runs.append(str(run))
    return runs


def run_row(model: str, label: str, out: Path, points: int, **kwargs: Any) -> dict[str, Any]:
    """Evaluate one configuration; its robust accuracy, cost per point and wall time."""
    tic = time.perf_counter()
    result, _ = evaluate_checkpoint(
        model, points=points, out=out, show_progress=False, name=label, **kwargs
    )
    wall = time.perf_counter() - tic
    grads = sum(a.gradients for a in result.attacks)
    queries = sum(a.queries for a in result.attacks)
    saved = json.loads(out.read_text())
    reference = reference_spend(saved) if label == "aa-standard" else None
    return {
        "attack": label,
        "robust_accuracy": result.robust_accuracy,
        "clean_accuracy": result.clean_accuracy,
        "gradients_per_point": grads / result.num_points,
        "queries_per_point": queries / result.num_points,
        "cost_per_point": (grads + queries) / result.num_points,
        "compute_per_point": compute_per_point(saved),
        "wall_s": wall,
        "results": str(out),
        **({} if reference is None else {"reference_cost_per_point": reference}),
    }


def compute_per_point(results: dict[str, Any]) -> float:
    """Forward passes per point with a gradient counted as three (its forward and a
    backward of about two): every forward pass, charged to the budget or not (clean
    inputs, FAB-T's and FGSM's checks, the checks of each example, Square's queries)."""
    attacks = results["attacks"]
    forwards = sum(a["forward_evals"] for a in attacks)
    return (forwards + 2 * sum(a["grad_evals"] for a in attacks)) / results["num_points"]


def reference_spend(results: dict[str, Any]) -> float | None:
    """Gradients + queries per point that AutoAttack's reference code would spend on the
    runs of a results file: it takes every APGD and FAB-T run to its last iteration on
    every point the run starts on (APGD: a gradient at the start and one per iteration;
    FAB-T: one per iteration), where lpbench stops a point at its first adversarial iterate;
    Square stops per point in both. None when an attack has no reference counterpart."""
    total = 0
    for attack in results["attacks"]:
        config, label = attack["config"], attack["label"]
        if config["attack"] == "square":
            total += attack["queries"]
            continue
        iters = config.get("iters", config.get("n_iter"))  # n_iter: older results
        if config["attack"] in ("apgd", "apgd-t"):
            per_run = (iters + 1) * config["eot_iter"]
        elif config["attack"] == "fab-t":
            per_run = iters
        else:
            return None
        runs = sum(
            sum(ran is not None for ran in point["attacks"][label]["restart_success"])
            for point in results["points"]
            if label in point["attacks"]
        )
        total += runs * per_run
    return total / results["num_points"]


def model_rows(
    model: str, args: argparse.Namespace, reused: dict[tuple[str, str, int], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every row of the table for one model (rows found in ``reused`` are not run again)."""
    dataset = read_checkpoint_meta(model)["dataset"]
    eps = default_eps(dataset)
    rows_per_batch = default_batch_rows(resolve_device(args.device))
    stem = args.out / model.removeprefix("zoo:").replace("/", "-").strip("-.")
    rows = []

    def row(label: str, **kwargs: Any) -> dict[str, Any]:
        out = Path(f"{stem}-{label.replace(' ', '_')}.json")
        record = reused.get((model, label, args.points))
        if record is None:
            record = run_row(
                model, label, out, args.points, data_dir=args.data_dir, device=args.device, **kwargs
            )
        print(
            f"  {label:<22} {record['robust_accuracy']:>7.1%} {record['cost_per_point']:>10.1f}"
            f" {record['wall_s']:>7.1f} s",
            flush=True,
        )
        rows.append(record)
        return record

    row("baseline", preset="baseline")
    budget_s, restarts = args.pgd_minutes * 60, 1
    while True:
        spec = AttackSpec(f"pgd-100-r{restarts}", "eps/4", 100, restarts=restarts)
        last = row(
            f"PGD-100 x {restarts}", attacks=[spec.build(eps, seed=0, max_batch=rows_per_batch)]
        )
        spent = sum(r["wall_s"] for r in rows if r["attack"].startswith("PGD-100"))
        if spent + 2 * last["wall_s"] > budget_s or restarts >= args.max_restarts:
            break
        restarts *= 2
    for label, spec in (
        ("APGD-CE", AA_STANDARD[0]),
        ("APGD-T", AA_STANDARD[1]),
        ("Square 5000", AA_STANDARD[3]),
    ):
        row(label, attacks=[spec.build(eps, seed=0, max_batch=rows_per_batch)])
    row("aa-standard", preset="aa-standard")
    for budget in args.budgets:
        row(f"auto {budget}", preset="auto", budget=budget)
    return rows


def goal(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per auto row: at or below aa-standard and the best PGD row, and its cost share."""
    aa = next(r for r in rows if r["attack"] == "aa-standard")
    best_pgd = min(
        (r for r in rows if r["attack"].startswith("PGD-100")), key=lambda r: r["robust_accuracy"]
    )
    return {
        r["attack"]: {
            "le_aa": r["robust_accuracy"] <= aa["robust_accuracy"],
            "le_best_pgd": r["robust_accuracy"] <= best_pgd["robust_accuracy"],
            "cost_share_of_aa": r["cost_per_point"] / aa["cost_per_point"],
            "cost_le_half_aa": r["cost_per_point"] <= 0.5 * aa["cost_per_point"],
            "best_pgd": best_pgd["attack"],
            **(
                {"compute_share_of_aa": r["compute_per_point"] / aa["compute_per_point"]}
                if "compute_per_point" in r and "compute_per_point" in aa
                else {}
            ),
            **(
                {"cost_share_of_aa_reference": r["cost_per_point"] / reference}
                if (reference := aa.get("reference_cost_per_point"))
                else {}
            ),
        }
        for r in rows
        if r["attack"].startswith("auto")
    }


def markdown(table: dict[str, list[dict[str, Any]]], goals: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| model | attack | robust acc. | gradients / pt | queries / pt | compute / pt | wall s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model, rows in table.items():
        for r in rows:
            compute = f"{r['compute_per_point']:,.1f}" if "compute_per_point" in r else "n/a"
            lines.append(
                f"| {model} | {r['attack']} | {r['robust_accuracy']:.1%} | "
                f"{r['gradients_per_point']:,.1f} | {r['queries_per_point']:,.1f} | "
                f"{compute} | {r['wall_s']:.0f} |"
            )
    lines.append("")
    for model, by_auto in goals.items():
        for label, g in by_auto.items():
            lines.append(
                f"- {model}, {label}: <= aa-standard: {g['le_aa']}; <= best PGD "
                f"({g['best_pgd']}): {g['le_best_pgd']}; cost {g['cost_share_of_aa']:.0%} of "
                f"aa-standard's (at most half: {g['cost_le_half_aa']})"
                + (
                    f"; {g['cost_share_of_aa_reference']:.0%} of what AutoAttack's reference "
                    "code would spend on aa-standard's runs"
                    if "cost_share_of_aa_reference" in g
                    else ""
                )
                + (
                    f"; compute {g['compute_share_of_aa']:.0%} of aa-standard's"
                    if "compute_share_of_aa" in g
                    else ""
                )
            )
    return "\n".join(lines) + "\n"


def plot(table: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Robust accuracy against gradients + queries per point, one panel per model: PGD-100
    with doubling restarts as a line, auto's budgets as a line, the other attacks as points."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    def cost(r: dict[str, Any]) -> float:  # log axis: 0-cost rows drawn at 1
        return max(r["cost_per_point"], 1.0)

    cols = min(len(table), 2)
    grid_rows = -(-len(table) // cols)
    fig = Figure(figsize=(5.2 * cols, 3.8 * grid_rows), layout="constrained")
    axes = fig.subplots(grid_rows, cols, squeeze=False).flatten()
    for ax in axes[len(table) :]:
        ax.set_visible(False)
    for ax, (model, rows) in zip(axes, table.items(), strict=False):
        for prefix, style in (("PGD-100", "o-"), ("auto", "s-")):
            line = [r for r in rows if r["attack"].startswith(prefix)]
            if line:
                ax.plot(
                    [cost(r) for r in line],
                    [100 * r["robust_accuracy"] for r in line],
                    style,
                    label=f"{prefix}: {line[0]['attack'].split()[-1]} to "
                    f"{line[-1]['attack'].split()[-1]}"
                    + (" restarts" if prefix == "PGD-100" else " per point"),
                    markersize=4,
                )
        for r in rows:
            if not r["attack"].startswith(("PGD-100", "auto")):
                ax.plot(cost(r), 100 * r["robust_accuracy"], "x")
                ax.annotate(
                    r["attack"],
                    (cost(r), 100 * r["robust_accuracy"]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        top = max(100 * r["robust_accuracy"] for r in rows)
        ax.set_ylim(-2, max(5.0, 1.08 * top))
        aa = [r for r in rows if r["attack"] == "aa-standard"]
        if aa:
            ax.axvline(
                max(0.5 * aa[0]["cost_per_point"], 1.0),
                ls=":",
                color="grey",
                label="half of aa-standard's cost",
            )
        ax.set_title(model.removeprefix("zoo:"), fontsize=9)
        ax.set_xlabel("gradients + queries per point")
        ax.set_ylabel("robust accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.savefig(path, dpi=110)


def reused_rows(paths: list[Path], fresh: list[str]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Rows of earlier tables by (model, label, points), each marked with its source;
    rows whose label starts with one of ``fresh`` are left out (they run again)."""
    rows = {}
    for path in paths:
        table = json.loads(path.read_text())
        points = table["args"]["points"]
        for model, model_rows in table["rows"].items():
            for r in model_rows:
                if r["attack"].startswith(tuple(fresh)):
                    continue
                rows[(model, r["attack"], points)] = {**r, "reused_from": str(path)}
                own = Path(r["results"])  # rows of tables made before a field: fill it in
                if "compute_per_point" not in r and own.exists():
                    saved = json.loads(own.read_text())
                    rows[(model, r["attack"], points)]["compute_per_point"] = compute_per_point(
                        saved
                    )
                if (
                    r["attack"] == "aa-standard"
                    and "reference_cost_per_point" not in r
                    and own.exists()
                    and (spend := reference_spend(json.loads(own.read_text())))
                ):
                    rows[(model, r["attack"], points)]["reference_cost_per_point"] = spend
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="run folders or zoo:NAME; 'zoo' for the zoo's four MNIST-digit LeNets "
        "(default: train the four LeNets on --dataset)",
    )
    parser.add_argument(
        "--dataset",
        default="fashion-mnist",
        choices=["fashion-mnist", "mnist"],
        help="data set of the LeNets trained without --models",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="where the data set is")
    parser.add_argument(
        "--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'"
    )
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--pgd-minutes", type=float, default=30.0)
    parser.add_argument("--max-restarts", type=int, default=4096)
    parser.add_argument(
        "--budgets",
        type=int,
        nargs="+",
        default=[
            DEFAULT_BUDGET,
            AUTO_CONTAINS_AA_BUDGET,
            AUTO_CONTAINS_AA_BUDGET + WARM_SQUARE_QUERIES,
        ],
        help="auto's budgets, one row each (gradients + queries per point)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/attack-cost"))
    parser.add_argument(
        "--reuse",
        type=Path,
        nargs="*",
        default=[],
        help="earlier attack_cost.json files whose rows (same model, label, points) are kept",
    )
    parser.add_argument(
        "--fresh",
        nargs="*",
        default=[],
        help="labels, or their beginnings (e.g. auto), run again even when --reuse has them",
    )
    parser.add_argument(
        "--plot-from",
        type=Path,
        nargs="+",
        default=None,
        help="draw --out/attack_cost.png from saved attack_cost.json tables; run nothing",
    )
    args = parser.parse_args()
    if args.plot_from:
        tables = [json.loads(p.read_text())["rows"] for p in args.plot_from]
        args.out.mkdir(parents=True, exist_ok=True)
        plot({m: rows for t in tables for m, rows in t.items()}, args.out / "attack_cost.png")
        return
    reused = reused_rows(args.reuse, args.fresh)
    if args.models is None:
        args.models = trained_models(args.dataset, args.out / "models", args.data_dir)
    elif args.models == ["zoo"]:
        zoo = {e.name for e in list_entries()}
        args.models = [f"zoo:mnist-digits/{m}" for m in ZOO if f"mnist-digits/{m}" in zoo]
    args.out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    print(
        f"{where}, torch {torch.__version__}, {args.points} points, PGD restarts up to "
        f"{args.pgd_minutes} min per model"
    )
    table, goals = {}, {}
    for model in args.models:
        print(model, flush=True)
        table[model] = model_rows(model, args, reused)
        goals[model] = goal(table[model])
    text = markdown(table, goals)
    print(text)
    (args.out / "attack_cost.md").write_text(text)
    plot(table, args.out / "attack_cost.png")
    (args.out / "attack_cost.json").write_text(
        json.dumps(
            {
                "args": {
                    **vars(args),
                    "out": str(args.out),
                    "reuse": [str(p) for p in args.reuse],
                    "reused": len(reused),
                },
                "rows": table,
                "goals": goals,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
