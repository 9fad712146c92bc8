"""Robust accuracy and cost of PGD, APGD-CE, APGD-T and Square on a briefly trained LeNet.

Trains a LeNet for ``--steps`` Adam steps on Fashion-MNIST with a training preset's
objective (``plain``, ``clp`` or ``lsq``: the presets without an adversarial term), then
attacks the first ``--points`` test points and prints, per attack: robust accuracy (a
point counts as broken when misclassified, clean mistakes included), gradients and
queries per point, and wall time. Run: python benchmarks/attack_cost.py [--preset clp]
"""

from __future__ import annotations

import argparse
import time

import torch

from lpbench.attacks import APGD, APGDT, PGD, Attack, Square
from lpbench.data import load_dataset
from lpbench.defenses.objective import add_input_noise, objective_terms
from lpbench.models import build_model
from lpbench.training.presets import get_train_preset


def train_lenet(preset: str, steps: int, batch: int, seed: int) -> torch.nn.Module:
    """A LeNet trained for ``steps`` mini-batches of the Fashion-MNIST training set."""
    objective = get_train_preset(preset)
    if objective.needs_adversarial:
        raise ValueError(f"preset {preset!r} needs adversarial training: use plain, clp or lsq")
    data = load_dataset("fashion-mnist", "train", progress=False)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model("lenet", (1, 28, 28), data.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-6)
    model.train()
    for _ in range(steps):
        pick = torch.randint(0, len(data), (batch,), generator=gen)
        x = add_input_noise(data.images[pick], objective.noise_std, gen)
        opt.zero_grad()
        objective_terms(model, x, data.labels[pick], objective)["total"].backward()
        opt.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="plain", choices=["plain", "clp", "lsq"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--queries", type=int, default=1000, help="Square's query budget")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    model = train_lenet(args.preset, args.steps, args.batch, args.seed)
    train_s = time.perf_counter() - start
    test = load_dataset("fashion-mnist", "test", progress=False)
    x, y = test.images[: args.points], test.labels[: args.points]
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    eps = args.eps
    attacks: list[tuple[str, Attack]] = [
        ("PGD-40 step 0.01", PGD(eps, 0.01, 40, max_batch=256)),
        ("APGD-CE 100", APGD(eps, 100, max_batch=256)),
        ("APGD-T 100 x 9", APGDT(eps, 100, max_batch=256)),
        (f"Square {args.queries}", Square(eps, n_queries=args.queries, max_batch=256)),
    ]
    print(
        f"LeNet, preset {args.preset}, {args.steps} steps of {args.batch} ({train_s:.0f} s), "
        f"clean accuracy {clean:.1%} on {args.points} Fashion-MNIST test points, eps {eps}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'attack':>18} | robust acc | grads/pt | queries/pt | grads+queries/pt | wall s")
    for name, attack in attacks:
        tic = time.perf_counter()
        out = attack(model, x, y)
        wall = time.perf_counter() - tic
        robust = 1.0 - out.success.float().mean().item()
        grads = out.cost.gradients / args.points
        queries = out.cost.queries / args.points
        print(
            f"{name:>18} | {robust:>10.1%} | {grads:>8.1f} | {queries:>10.1f} | "
            f"{grads + queries:>16.1f} | {wall:>6.1f}"
        )


if __name__ == "__main__":
    main()
