"""Add a trained run to lpbench's model zoo (a maintainer's tool, not part of the package).

    python scripts/zoo_add.py RUN DATASET/NAME --command "lpbench train ..." \\
        [--presets baseline strong auto] [--results docs/results/zoo]

Writes float16 weights and metadata into ``src/lpbench/zoo/files/DATASET/NAME/``, measures
the clean accuracy of those float16 weights on the data set's 1,000-point evaluation
subset, evaluates the zoo entry itself with each preset (per-point results JSON under
``--results``), and stores the accuracies, training images and training time (summed from
the run's ``train_log.jsonl``) and the command in the entry's ``zoo`` block.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lpbench.checkpoint import read_checkpoint_meta
from lpbench.data import dataset_eval_subset, load_dataset
from lpbench.evaluation import predict
from lpbench.pipelines.steps import evaluate_checkpoint
from lpbench.zoo import export_to_zoo, load

POINTS = 1000


def training_totals(run: Path) -> tuple[int, float]:
    """Images seen and seconds spent, summed over the run's epochs."""
    records = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    epochs = [r for r in records if "epoch" in r and "images" in r]
    return sum(r["images"] for r in epochs), sum(r["seconds"] for r in epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("name", help="DATASET/NAME")
    parser.add_argument("--command", required=True, help="the exact command that trained it")
    parser.add_argument("--note", default="", help="how it was run (stages, machine)")
    parser.add_argument("--presets", nargs="+", default=["strong", "auto"])
    parser.add_argument("--results", type=Path, default=Path("docs/results/zoo"))
    args = parser.parse_args()

    dataset = read_checkpoint_meta(args.run)["dataset"]
    images, seconds = training_totals(args.run)
    block = {
        "command": args.command,
        "note": args.note,
        "training_images": images,
        "training_seconds": round(seconds, 1),
        "eval_points": POINTS,
    }
    export_to_zoo(args.run, args.name, {**block, "clean_accuracy": None})
    test = load_dataset(dataset, "test")
    subset = test.subset(dataset_eval_subset(dataset, len(test), POINTS))
    correct = predict(load(args.name), subset.images, 500, "cpu") == subset.labels
    block["clean_accuracy"] = int(correct.sum()) / len(correct)

    robust, cost, files = {}, {}, {}
    for preset in args.presets:
        out = args.results / f"{args.name.replace('/', '-')}-{preset}.json"
        result, _ = evaluate_checkpoint(
            f"zoo:{args.name}", preset=preset, points=POINTS, out=out, show_progress=False
        )
        assert abs(result.clean_accuracy - block["clean_accuracy"]) < 1e-9, "clean mismatch"
        if preset == "strong":
            robust["baseline"] = result.attacks[0].robust_accuracy_after
        robust[preset] = result.robust_accuracy
        spent = sum(a.gradients + a.queries for a in result.attacks)
        cost[preset] = round(spent / POINTS, 1)
        files[preset] = str(out)
        print(f"{args.name} {preset}: robust {result.robust_accuracy:.1%}, {cost[preset]}/point")
    block.update(robust_accuracy=robust, gradients_and_queries_per_point=cost, results=files)
    export_to_zoo(args.run, args.name, block)
    print(json.dumps(block, indent=2))


if __name__ == "__main__":
    main()
