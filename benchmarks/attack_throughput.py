"""Throughput of LeNet forward+backward, of PGD with 1 and 10 batched restarts, and of Square.

Prints images/s (one image-gradient = one image) and the overhead of PGD per gradient
relative to a bare forward+backward pass; then Square's queries/s against a bare forward
pass (eps so small that no point breaks, so every query runs).
Run: python benchmarks/attack_throughput.py
"""

from __future__ import annotations

import argparse
import time

import torch

from lpbench.attacks import PGD, Square
from lpbench.models import build_model
from lpbench.runtime import resolve_device


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--square-queries", type=int, default=200)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_model("lenet", (1, 28, 28), 10).to(device).eval()
    x = torch.rand(args.points, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.points,), device=device)

    def bare(batch: torch.Tensor) -> None:
        inp = batch.clone().requires_grad_(True)
        torch.autograd.grad(model(inp).sum(), inp)

    rows = []
    for restarts in (1, 10):
        batch = x.repeat(restarts, 1, 1, 1)
        bare_s = _time(lambda b=batch: bare(b), args.repeats * 3)
        attack = PGD(0.1, 0.01, args.iters, restarts=restarts, early_stop=False)
        pgd_s = _time(lambda a=attack: a(model, x, y), args.repeats)
        grads = args.points * restarts * args.iters
        rows.append((restarts, len(batch) / bare_s, grads / pgd_s))

    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{args.points} points, {args.iters} PGD iterations, LeNet 1x28x28"
    )
    print(f"{'batch':>24} | {'fwd+bwd img/s':>14} | {'PGD img-grad/s':>14} | overhead")
    for restarts, bare_ips, pgd_ips in rows:
        label = f"{args.points} x {restarts} restart(s)"
        print(f"{label:>24} | {bare_ips:14.0f} | {pgd_ips:14.0f} | {bare_ips / pgd_ips:7.2f}x")
    speedup = rows[1][2] / rows[0][2]
    print(f"10 batched restarts vs 1 restart: {speedup:.2f}x the gradients per second")

    def bare_forward() -> None:
        with torch.no_grad():
            model(x)

    forward_ips = args.points / _time(bare_forward, args.repeats * 3)
    with torch.no_grad():
        predicted = model(x).argmax(1)  # every point starts correct, so every query runs
    square = Square(1e-4, args.square_queries)
    square_s = _time(lambda: square(model, x, predicted), args.repeats)
    square_qps = args.points * args.square_queries / square_s
    print(
        f"Square, {args.points} points x {args.square_queries} queries: {square_qps:.0f} "
        f"queries/s, bare forward {forward_ips:.0f} img/s, overhead {forward_ips / square_qps:.2f}x"
    )


if __name__ == "__main__":
    main()
