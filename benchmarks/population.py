"""A population of models, split once into tuning and held-out sides, to judge ``auto``.

``benchmarks/population/population.json`` names every model, how it is made (a training
run of lpbench's recipes, a zoo model, or a constructed masker on another member) and its
side. The split was committed before any tuning: constants of ``auto`` are chosen on
tuning models and points only; held-out models are measured once per frozen ladder, on
held-out points (the second half of a seeded permutation of each test split).

    python benchmarks/population.py train [--only RUN ...]   # train / export what is missing
    python benchmarks/population.py lock                      # hash the held-out files
    python benchmarks/population.py evaluate --side held-out --draw 2 --points 200
    python benchmarks/population.py table --side held-out-draw2   # markdown table of results

Held-out models come in draws: draw 1 was fixed with the split; draw 2 was added (and
trained and locked) after the ladder changed following draw 1's first look, and is
measured on held-out points never evaluated before (``points.draws`` in the spec).

Training runs go to ``runs/population/RUN`` (resumable after a kill: run the same command
again); each model is exported as float16 weights to ``benchmarks/population/models``
(outside the package, not in the wheel). ``evaluate`` runs, per model and in one process,
the data set's ``baseline``, ``aa-standard``, ``auto`` at its default budget and
``strong``, and writes robust accuracy, gradients, forward passes, queries and wall time
to ``benchmarks/population/results/SIDE/``. Randomised members (the ``input_noise``
masker), which ``auto`` and ``aa-standard`` refuse, get :data:`RANDOMISED_PRESETS`
instead: the baseline on single draws, the baseline with EOT, and ``aa-rand``. Forward
passes are all of them (those with a gradient included, clean passes and re-checks), so
gradients + forwards counts every forward and every backward pass.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lpbench.checkpoint import WEIGHTS_NAME, load_checkpoint, read_checkpoint_meta, zoo_path
from lpbench.data import load_dataset, sha256sum
from lpbench.evaluation import evaluate_model, universal_sources
from lpbench.evaluation.protocol import default_eps, get_protocol
from lpbench.io import write_json
from lpbench.machine import describe_machine, machine_facts
from lpbench.training import recipe_config, train
from lpbench.zoo.registry import export_to_zoo

HERE = Path(__file__).parent / "population"
SPEC = HERE / "population.json"
MODELS = HERE / "models"
LOCK = HERE / "held_out.sha256"
RESULTS = HERE / "results"
RUNS = Path("runs") / "population"
PRESETS = ("baseline", "aa-standard", "auto", "strong")
#: Draws per gradient of the baseline with EOT (those of ``aa-rand``, AutoAttack's).
EOT_DRAWS = 20
#: What a randomised member gets: the data set's baseline on single draws (as a user who
#: does not know the model is randomised would run it), the baseline with every gradient
#: averaged over EOT_DRAWS draws, and AutoAttack's version for randomised models.
RANDOMISED_PRESETS = ("baseline", f"baseline-eot{EOT_DRAWS}", "aa-rand")


def randomised(member: dict[str, Any]) -> bool:
    """Whether a member is randomised (behind the ``input_noise`` masker)."""
    return "input_noise" in member.get("masker", {})


def _preset_options(preset: str, dataset: str, eps: float, random: bool) -> dict[str, Any]:
    """The keywords of ``evaluate_model`` for one preset of a member."""
    if not random:
        return {"preset": preset}
    if preset == "baseline":  # single draws: its own attack, one draw per gradient
        base = get_protocol(dataset).presets["baseline"][0]
        return {"attacks": [base.build(eps, seed=0, max_batch=10_000)], "eot_iter": 1}
    if preset.startswith("baseline-eot"):
        return {"preset": "baseline", "eot_iter": EOT_DRAWS}
    return {"preset": preset}


def load_spec() -> dict[str, Any]:
    return json.loads(SPEC.read_text())


def model_dir(name: str) -> Path:
    return MODELS / name


def split_points(dataset: str, side: str, seed: int) -> np.ndarray:
    """Indices of the test split on ``side``: halves of a PCG64(seed) permutation."""
    size = len(load_dataset(dataset, "test", progress=False))
    order = np.random.Generator(np.random.PCG64(seed)).permutation(size)
    half = size // 2
    return order[:half] if side == "tuning" else order[half:]


def _export(run: str, out: Path, model: dict[str, Any], history: list[dict[str, Any]]) -> None:
    last = history[-1] if history else {}
    block = {
        "command": f"python benchmarks/population.py train --only {model['run']}",
        "epochs": model["epochs"],
        "side": model["side"],
        "family": model["family"],
        "clean_accuracy": last.get("test_accuracy"),
        "training_seconds_total": round(sum(h.get("seconds", 0.0) for h in history), 1),
        "machine": describe_machine(machine_facts("cpu")),
    }
    export_to_zoo(out, model["name"], block, root=MODELS)
    print(f"exported {model['name']} ({run}, epoch {model['epochs']})", flush=True)


def train_run(run: str, spec: dict[str, Any]) -> None:
    """Train run ``run`` through each epoch count its models need, exporting each."""
    settings = dict(spec["runs"][run])
    preset, dataset = settings.pop("preset"), settings.pop("dataset")
    settings.pop("epochs")
    wanted = sorted((m for m in spec["models"] if m.get("run") == run), key=lambda m: m["epochs"])
    out = RUNS / run
    for model in wanted:
        if (model_dir(model["name"]) / WEIGHTS_NAME).exists():
            continue
        config = recipe_config(preset, dataset, epochs=model["epochs"], **settings)
        resume = (out / "train_state.pt").exists() or (out / WEIGHTS_NAME).exists()
        _, history = train(config, out, resume=resume, show_progress=False)
        _export(run, out, model, history)


def make_masker(model: dict[str, Any], spec: dict[str, Any]) -> None:
    """A member built from another by adding masker options to its model options."""
    out = model_dir(model["name"])
    if (out / WEIGHTS_NAME).exists():
        return
    base = _weights(next(m for m in spec["models"] if m["name"] == model["base"]))
    meta = read_checkpoint_meta(base)
    meta["model_options"] = {**meta.get("model_options", {}), **model["masker"]}
    meta["zoo"] = {
        "command": f"python benchmarks/population.py train --only {model['name']}",
        "side": model["side"],
        "family": model["family"],
        "base": model["base"],
        "masker": model["masker"],
    }
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base, out / WEIGHTS_NAME)
    write_json(out / "model.json", meta)
    print(f"made {model['name']} from {model['base']}", flush=True)


def _weights(member: dict[str, Any]) -> Path:
    """The weights file of a population member."""
    if "zoo" in member:
        return zoo_path(member["zoo"])
    return model_dir(member["name"]) / WEIGHTS_NAME


def cmd_train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    spec = load_spec()
    maskers = {m["name"]: m for m in spec["models"] if "masker" in m}
    for name in args.only or [*spec["runs"], *maskers]:
        if name in maskers:
            make_masker(maskers[name], spec)
        elif name in spec["runs"]:
            train_run(name, spec)
        else:
            raise SystemExit(f"no run or masker member {name!r} in {SPEC}")


def held_out_files(spec: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of every held-out model's weights and metadata."""
    digests = {}
    for model in spec["models"]:
        if model["side"] != "held-out":
            continue
        weights = _weights(model)
        for path in (weights, weights.with_suffix(".json")):
            digests[str(path.relative_to(Path(__file__).parent.parent))] = sha256sum(path)
    return digests


def cmd_lock(_: argparse.Namespace) -> None:
    digests = held_out_files(load_spec())
    LOCK.write_text("".join(f"{digest}  {path}\n" for path, digest in sorted(digests.items())))
    print(f"wrote {LOCK} ({len(digests)} files)")


def draw_of(member: dict[str, Any]) -> int:
    """The held-out draw a member belongs to (1: drawn with the split; tuning members: 1)."""
    return int(member.get("draw", 1))


def evaluate_member(
    model: dict[str, Any],
    side: str,
    points: int,
    seed: int,
    sources_seed: int = 0,
    device: str = "cpu",
    first: int = 0,
) -> dict[str, Any]:
    """Every preset of :data:`PRESETS` (:data:`RANDOMISED_PRESETS` for a randomised member)
    on ``points`` points of ``side`` from its position ``first`` on, in one process."""
    net, meta = load_checkpoint(_weights(model), device=device)
    dataset = meta["dataset"]
    test = load_dataset(dataset, "test", progress=False)
    index = split_points(dataset, side, seed)[first : first + points]
    subset = test.subset(index)
    x, y = subset.images, subset.labels
    eps = default_eps(dataset)
    random = randomised(model)
    sources = None if random else universal_sources(dataset, seed=sources_seed)
    row: dict[str, Any] = {
        "model": model["name"],
        "family": model["family"],
        "side": side,
        "draw": draw_of(model),
        "dataset": dataset,
        "eps": eps,
        "points": len(index),
        "first_point": first,
        "randomised": random,
        "presets": {},
    }
    for preset in RANDOMISED_PRESETS if random else PRESETS:
        start = time.perf_counter()
        result = evaluate_model(
            net,
            x,
            y,
            eps=eps,
            dataset=dataset,
            sources=sources,
            device=device,
            show_progress=False,
            **_preset_options(preset, dataset, eps, random),
        )
        wall = time.perf_counter() - start
        row["clean_accuracy"] = result.clean_accuracy
        row["presets"][preset] = {
            "robust_accuracy": result.robust_accuracy,
            "gradients": result.gradients,
            "forwards": result.forwards,
            "queries": result.queries,
            "cost": result.cost(),
            "wall_s": round(wall, 2),
            "verification_mismatches": len(result.verification_mismatches),
            "lockstep": result.meta["manifest"]["lockstep"],  # the default: on CUDA only
        }
        print(
            f"{model['name']:40s} {preset:12s} robust {result.robust_accuracy:6.1%} "
            f"wall {wall:7.1f} s",
            flush=True,
        )
    return row


def results_folder(side: str, draw: int | None, device: str) -> str:
    """``tuning``, ``held-out`` (draw 1) or ``held-out-draw2``, with ``-cuda`` on a GPU."""
    name = side if side == "tuning" or draw in (None, 1) else f"{side}-draw{draw}"
    return name if device == "cpu" else f"{name}-{device}"


def cmd_evaluate(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    spec = load_spec()
    out = RESULTS / (args.results or results_folder(args.side, args.draw, args.device))
    out.mkdir(parents=True, exist_ok=True)
    first = 0
    if args.side == "held-out" and args.draw:
        first = spec["points"]["draws"][str(args.draw)]["first"]
    for model in spec["models"]:
        if model["side"] != args.side or (args.only and model["name"] not in args.only):
            continue
        if args.side == "held-out" and args.draw and draw_of(model) != args.draw:
            continue
        target = out / (model["name"].replace("/", "--") + ".json")
        if target.exists() and not args.force:
            continue
        row = evaluate_member(
            model,
            args.side,
            args.points,
            spec["points"]["seed"],
            device=args.device,
            first=first,
        )
        row["machine"] = machine_facts(args.device)
        row["torch"] = torch.__version__
        row["python"] = platform.python_version()
        row["date"] = time.strftime("%Y-%m-%d")
        write_json(target, row)


def goal(row: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``auto`` is at or below ``aa-standard`` with at most half of its wall time
    and half of its gradients + forward passes; the reason when not."""
    auto, aa = row["presets"]["auto"], row["presets"]["aa-standard"]
    misses = []
    if auto["robust_accuracy"] > aa["robust_accuracy"]:
        misses.append("accuracy")
    if auto["wall_s"] > aa["wall_s"] / 2:
        misses.append("wall time")
    if auto["gradients"] + auto["forwards"] > (aa["gradients"] + aa["forwards"]) / 2:
        misses.append("compute")
    return not misses, ", ".join(misses)


def _rows(side: str, random: bool) -> list[dict[str, Any]]:
    """The results in ``results/SIDE`` of randomised members or of the others."""
    rows = [json.loads(p.read_text()) for p in sorted((RESULTS / side).glob("*.json"))]
    return [row for row in rows if row.get("randomised", False) == random]


def table(side: str) -> str:
    """The markdown table of the results in ``results/SIDE`` (e.g. ``held-out-cuda``),
    followed by that of its randomised members, if any."""
    rows = _rows(side, random=False)
    head = (
        "| Model | Family | Points | Clean | Baseline | `aa-standard` | `auto` | `strong` | "
        "`auto` / `aa-standard` grad+fwd | wall | Goal |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n"
    )
    lines = []
    for row in rows:
        p = row["presets"]
        auto, aa = p["auto"], p["aa-standard"]
        work = (auto["gradients"] + auto["forwards"]) / max(1, aa["gradients"] + aa["forwards"])
        ok, why = goal(row)
        lines.append(
            f"| {row['model']} | {row['family']} | {row['points']} | {row['clean_accuracy']:.1%} | "
            + " | ".join(f"{p[k]['robust_accuracy']:.1%}" for k in PRESETS)
            + f" | {work:.2f} | {auto['wall_s'] / max(aa['wall_s'], 1e-9):.2f} | "
            + ("yes" if ok else f"no ({why})")
            + " |"
        )
    text = head + "\n".join(lines) + "\n" if lines else ""
    random = _rows(side, random=True)
    if random:
        text += "\n" if text else ""
        text += (
            "| Randomised model | Family | Points | Clean | "
            + " | ".join(f"`{k}`" for k in RANDOMISED_PRESETS)
            + " |\n| --- | --- | ---: | ---: | "
            + " | ".join("---:" for _ in RANDOMISED_PRESETS)
            + " |\n"
        )
        for row in random:
            p = row["presets"]
            text += (
                f"| {row['model']} | {row['family']} | {row['points']} | "
                f"{row['clean_accuracy']:.1%} | "
                + " | ".join(f"{p[k]['robust_accuracy']:.1%}" for k in RANDOMISED_PRESETS)
                + " |\n"
            )
    return text


def cost_table(side: str) -> str:
    """Markdown table of every preset's cost per model in ``results/SIDE``: gradients,
    forward passes (all of them), queries and wall time, in one process per model."""
    rows = [json.loads(p.read_text()) for p in sorted((RESULTS / side).glob("*.json"))]
    lines = [
        "| Model | Preset | Robust | Gradients | Forward passes | Queries | Wall (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        for preset, r in row["presets"].items():
            lines.append(
                f"| {row['model']} | `{preset}` | {r['robust_accuracy']:.1%} | "
                f"{r['gradients']:,} | {r['forwards']:,} | {r['queries']:,} | {r['wall_s']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def members() -> str:
    """Markdown table of every member: side, family, how it is made."""
    spec = load_spec()
    lines = ["| Model | Side | Family | Made by |", "| --- | --- | --- | --- |"]
    for m in spec["models"]:
        if "zoo" in m:
            made = f"zoo model `{m['zoo']}`"
        elif "base" in m:
            options = ", ".join(f"{k}={v:g}" for k, v in m["masker"].items())
            made = f"`{m['base']}` with {options}"
        else:
            run = spec["runs"][m["run"]]
            options = ", ".join(f"{k} {v}" for k, v in run["model_options"].items())
            extra = ", ".join(
                f"{k} {run[k]}" for k in ("adv_iters", "adv_step", "adv_target") if k in run
            )
            made = (
                f"`{run['preset']}` recipe, {m['epochs']} epochs, seed {run['seed']}, "
                f"{run['model']} ({options})" + (f", {extra}" if extra else "")
            )
        where = m["side"] + (f" (draw {draw_of(m)})" if m["side"] == "held-out" else "")
        lines.append(f"| {m['name']} | {where} | {m['family']} | {made} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train and export the members that are missing")
    p.add_argument("--only", nargs="*", help="runs or masker members to build")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("lock", help="write the held-out files' SHA-256 to held_out.sha256")
    p.set_defaults(func=cmd_lock)
    p = sub.add_parser("evaluate", help="run the presets on one side's models")
    p.add_argument("--side", choices=("tuning", "held-out"), required=True)
    p.add_argument("--points", type=int, default=200)
    p.add_argument("--only", nargs="*")
    p.add_argument("--force", action="store_true", help="re-evaluate models with results")
    p.add_argument("--device", default="cpu", help="cpu or cuda (results in SIDE-cuda/)")
    p.add_argument(
        "--draw", type=int, help="held-out models of this draw only, on the draw's points"
    )
    p.add_argument("--results", help="results folder under results/ (default from the side)")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("table", help="print the markdown table of one side's results")
    p.add_argument(
        "--side", required=True, help="a results folder: tuning, held-out, held-out-draw2, ..."
    )
    p.add_argument(
        "--costs", action="store_true", help="every preset's gradients, forwards, queries, wall"
    )
    p.set_defaults(func=lambda a: sys.stdout.write((cost_table if a.costs else table)(a.side)))
    p = sub.add_parser("members", help="print the markdown table of every member")
    p.set_defaults(func=lambda a: sys.stdout.write(members()))
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
