"""Lock step: a point's targets and restarts in one batch, against one run after another.

APGD (its restarts), APGD-T and FAB-T (their targets and restarts) can run a point's runs
in lock step (``lockstep=True``; by default on CUDA devices only): the same results as
the runs one after another, in fewer passes through the model, for more gradients on the
points broken before their last run (the later ones go on until then). On a GPU a pass
over a few rows takes about as long as one over thousands, so wall time follows the
number of passes; on a CPU it follows the rows. This script runs ``auto`` and
``aa-standard`` both ways on the zoo's LeNets (the first ``--points`` test digits) and
prints, per model, preset and mode: robust accuracy, gradients, forward passes (rows),
passes through the model (calls) and wall time, and whether the robust points and stored
examples agree between the modes.

Run: python benchmarks/lockstep.py [--device cuda] [--points 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from lpbench.checkpoint import load_checkpoint, zoo_path
from lpbench.data.datasets import load_dataset
from lpbench.evaluation import evaluate_model, universal_sources

MODELS = ("mnist-digits/clp", "mnist-digits/lsq", "mnist-digits/at50")


class Calls(nn.Module):
    """``model`` that counts its calls (passes through it, whatever their rows)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--presets", nargs="+", default=["auto", "aa-standard"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    test = load_dataset("mnist-digits", split="test")
    x, y = test.images[: args.points], test.labels[: args.points]
    sources = universal_sources("mnist-digits")
    print(f"{args.points} points on {device}, torch {torch.__version__}")
    print("| Model | Preset | Lock step | Robust | Gradients | Forwards | Calls | Wall (s) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in args.models:
        model, _ = load_checkpoint(zoo_path(name), device=device)
        counted = Calls(model)
        for preset in args.presets:
            runs = {}
            for lockstep in (False, True):
                counted.calls = 0
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                result = evaluate_model(
                    counted,
                    x,
                    y,
                    eps=0.3,
                    preset=preset,
                    sources=sources,
                    lockstep=lockstep,
                    device=device,
                    show_progress=False,
                    dataset="mnist-digits",
                )
                if device.type == "cuda":
                    torch.cuda.synchronize()
                wall = time.perf_counter() - start
                runs[lockstep] = result
                print(
                    f"| {name} | {preset} | {'yes' if lockstep else 'no'} "
                    f"| {100 * result.robust_accuracy:.1f}% | {result.gradients:,} "
                    f"| {result.forwards:,} | {counted.calls:,} | {wall:.1f} |"
                )
            same = runs[False].robust == runs[True].robust
            print(f"<!-- {name} {preset}: same robust points both ways: {same} -->")


if __name__ == "__main__":
    main()
