"""lpbench's attacks against a peer: torchattacks' APGD, APGD-T, FAB and Square.

The peer is a benchmark-only dependency (``pip install --no-deps torchattacks==3.5.1 scipy
requests``); lpbench never imports it. For each model (default: the zoo's MNIST-digit
LeNets) it takes the same 1,000-point evaluation subset as lpbench, attacks the points
the model classifies correctly and prints, per stage, robust accuracy (over all points;
clean mistakes count as broken), rows through the model with a gradient and without one,
and wall time:

- ``reference``: AutoAttack's standard version with the reference's budgets, built from
  torchattacks' parts: APGD-CE (100 steps), APGD-T (100 steps, 9 targets), FAB-T (100
  steps, 9 targets), Square (5,000 queries), each on the points still robust;
- ``as shipped``: ``torchattacks.AutoAttack(version="standard")`` as it comes.

Every adversarial example is re-checked here: inside the eps-ball and [0, 1] and
misclassified by the model. Put the lpbench rows beside it from
``benchmarks/attack_cost.py`` (same points, eps and models).

    python benchmarks/peer_torchattacks.py [--models zoo:mnist-digits/clp] [--points 1000]
        [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lpbench.data import dataset_eval_subset, load_dataset
from lpbench.evaluation import default_eps
from lpbench.runtime import resolve_device
from lpbench.training import load_checkpoint

DEFAULT_MODELS = tuple(f"zoo:mnist-digits/{m}" for m in ("plain", "clp", "lsq", "at50"))


class Counting(nn.Module):
    """The model, counting the rows it sees with and without an input gradient."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.gradient_rows = 0
        self.forward_rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            self.gradient_rows += x.shape[0]
        else:
            self.forward_rows += x.shape[0]
        return self.model(x)


def stages(
    model: nn.Module, eps: float, classes: int, seed: int
) -> dict[str, list[tuple[str, Any]]]:
    """The peer's attack sequences: the reference budgets, and AutoAttack as shipped."""
    import torchattacks as ta

    return {
        "reference": [
            ("APGD-CE", ta.APGD(model, eps=eps, steps=100, loss="ce", seed=seed)),
            ("APGD-T", ta.APGDT(model, eps=eps, steps=100, n_classes=classes, seed=seed)),
            (
                "FAB-T",
                ta.FAB(
                    model, eps=eps, steps=100, multi_targeted=True, n_classes=classes, seed=seed
                ),
            ),
            ("Square", ta.Square(model, eps=eps, n_queries=5000, seed=seed)),
        ],
        "as shipped": [
            (
                "AutoAttack",
                ta.AutoAttack(model, eps=eps, version="standard", n_classes=classes, seed=seed),
            )
        ],
    }


def run_model(name: str, points: int, seed: int, device: torch.device) -> list[dict[str, Any]]:
    """Every stage of both sequences on one model, with re-checked robust accuracy."""
    model, meta = load_checkpoint(name)
    model.to(device).eval()
    counted = Counting(model).eval()
    eps = default_eps(meta["dataset"])
    test = load_dataset(meta["dataset"], "test")
    subset = test.subset(dataset_eval_subset(meta["dataset"], len(test), points))
    x, y = subset.images.to(device), subset.labels.to(device)
    with torch.no_grad():
        robust = model(x).argmax(1) == y
    rows = []
    for sequence, attacks in stages(counted, eps, meta["num_classes"], seed).items():
        alive = robust.clone()
        for label, attack in attacks:
            counted.gradient_rows = counted.forward_rows = 0
            idx = alive.nonzero().squeeze(1)
            tic = time.perf_counter()
            adv = attack(x[idx], y[idx]).detach() if idx.numel() else x[idx]
            wall = time.perf_counter() - tic
            gradients, forwards = counted.gradient_rows, counted.forward_rows
            outside = ((adv - x[idx]).abs().flatten(1).amax(1) > eps + 1e-6) | (
                (adv < 0) | (adv > 1)
            ).flatten(1).any(1)
            with torch.no_grad():
                broken = (model(adv).argmax(1) != y[idx]) & ~outside
            alive[idx[broken]] = False
            rows.append(
                {
                    "model": name,
                    "sequence": sequence,
                    "attack": label,
                    "points_attacked": int(idx.numel()),
                    "robust_accuracy_after": float(alive.float().mean()),
                    "gradient_rows_per_point": gradients / len(x),
                    "forward_rows_per_point": forwards / len(x),
                    "outside_ball": int(outside.sum()),
                    "wall_s": wall,
                }
            )
            print(
                f"  {sequence:<10} {label:<10} {rows[-1]['robust_accuracy_after']:>6.1%} "
                f"grad rows/pt {rows[-1]['gradient_rows_per_point']:>8.1f} "
                f"fwd rows/pt {rows[-1]['forward_rows_per_point']:>8.1f} {wall:>6.0f} s",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/peer-torchattacks.json"))
    args = parser.parse_args()
    import torchattacks

    device = resolve_device(args.device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{torch.get_num_threads()} threads"
    )
    print(
        f"torchattacks {torchattacks.__version__}, torch {torch.__version__}, {where}, "
        f"{args.points} points"
    )
    rows = []
    for name in args.models:
        print(name, flush=True)
        rows += run_model(name, args.points, args.seed, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "torchattacks": torchattacks.__version__,
                "args": {**vars(args), "out": str(args.out)},
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
