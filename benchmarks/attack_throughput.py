"""Throughput of every gradient attack against a bare forward + backward pass, and of Square
against a bare forward pass, at 100 and at 1,000 points.

On the zoo's CLP LeNet (``mnist-digits/clp``) and test points it classifies correctly, with
eps so small that no point breaks (every iteration runs on every point), each attack runs
as lpbench runs it: PGD, APGD-CE, APGD-DLR, APGD-DLR through ``auto``'s smoothed ReLU
backward pass, APGD-T, FAB-T and iterated FGSM. Right before each attack, bare passes over
the same rows are timed: forward + backward (cross-entropy, ``loss.backward()`` to the
input, weights frozen as an attack freezes them; under the same smoothing for the smoothed
run) and a forward pass without gradients. Per attack it prints

- ``grad`` : gradient rows per second over the bare forward + backward rows per second;
- ``work`` : the time the bare passes take for the model work the attack counts (its
  gradients as forward + backward rows, its other forward passes as forward rows) over the
  attack's time. 1.00 means no cost beyond the model's; FAB-T and FGSM judge each step
  with a forward pass of its own, so their ``grad`` stays below ``work``.

Attacks, sizes and bare passes are interleaved; each figure is the median over
``--repeats`` repetitions. The machine's load moves absolute rates a lot, ratios less;
give ``uptime`` with the figures.

``--model tiny`` swaps in a 784-16-10 network that costs next to nothing, so that
``ms/step`` (the attack's time per gradient of every point; Square's per query) is the
attack's own cost per step, what few remaining points and GPUs feel.

Figures (a shared 2-core CPU, one thread, load average 5 to 10; CPU clock), before and
after the attacks kept the points still iterating packed in one batch instead of indexing
every state tensor each iteration (docs/results/throughput.md has them all):

```
                   work, CLP LeNet               ms/step, --model tiny
                   100 pts         1,000 pts     100 pts         1,000 pts
pgd                0.98 -> 0.98    0.92 -> 1.02  1.24 -> 0.98    11.08 ->  6.92
apgd-ce            0.96 -> 0.94    0.92 -> 1.09  2.11 -> 1.30    16.59 -> 10.07
apgd-dlr           0.94 -> 0.96    1.01 -> 1.03  2.40 -> 1.47    14.49 -> 10.56
apgd-dlr-smooth3   0.95 -> 0.96    1.13 -> 1.08  2.94 -> 1.66    15.87 -> 10.68
apgd-t             0.96 -> 0.99    0.94 -> 1.05  2.41 -> 1.54    15.50 -> 10.35
fab-t              0.88 -> 0.87    0.90 -> 1.00  8.68 -> 8.54    75.55 -> 76.75
fgsm               0.97 -> 0.97    1.00 -> 0.93  1.39 -> 0.92     8.85 ->  4.74
square             0.91 -> 0.90    0.88 -> 0.93  1.51 -> 1.41    13.46 -> 12.41
```

Run: python benchmarks/attack_throughput.py [--points 100 1000] [--threads 1] [--model tiny]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from lpbench.attacks import APGD, APGDT, FAB, FGSM, PGD, Attack, Square
from lpbench.attacks.smooth import SmoothReLUBackward
from lpbench.data.datasets import load_dataset
from lpbench.evaluation.schedule import AUTO_SMOOTH_BETAS
from lpbench.runtime import resolve_device
from lpbench.zoo import load

MODEL = "mnist-digits/clp"


def _attacks(eps: float, iters: int, targets: int, queries: int) -> dict[str, Attack]:
    beta = AUTO_SMOOTH_BETAS[0]
    return {
        "pgd": PGD(eps, eps / 4, iters),
        "apgd-ce": APGD(eps, iters - 1),
        "apgd-dlr": APGD(eps, iters - 1, loss="dlr"),
        f"apgd-dlr-smooth{beta:g}": APGD(eps, iters - 1, loss="dlr", smooth_relu=beta),
        "apgd-t": APGDT(eps, iters - 1, targets=targets),
        "fab-t": FAB(eps, iters, targets=targets),
        "fgsm": FGSM(eps, iters=iters),
        "square": Square(eps, queries),
    }


def _tiny_model() -> nn.Module:
    """A model that costs next to nothing (784-16-10 with one ReLU): an attack's time on
    it is its own cost per step."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))


def _points(
    model: nn.Module, n: int, device: torch.device, own_labels: bool
) -> tuple[torch.Tensor, ...]:
    """``n`` test points the model classifies correctly (repeated when too few), labels and
    data-set indices (distinct, so that repeated points draw other random numbers); with
    ``own_labels`` the model's predictions are the labels."""
    data = load_dataset("mnist-digits", "test", download=False, progress=False)
    x, y = data.images.to(device), data.labels.to(device)
    with torch.no_grad():
        if own_labels:
            y = model(x).argmax(1)
        correct = (model(x).argmax(1) == y).nonzero().squeeze(1)
    rows = correct[torch.arange(n, device=device) % correct.numel()]
    return x[rows].contiguous(), y[rows], torch.arange(n, device=device)


class _Bench:
    """Times attacks and the bare passes over the same rows, one model and batch."""

    def __init__(
        self, model: nn.Module, n: int, device: torch.device, passes: int, clock: str, tiny: bool
    ) -> None:
        self.model, self.device, self.passes = model, device, passes
        self.clock = time.process_time if clock == "cpu" else time.perf_counter
        self.x, self.y, self.index = _points(model, n, device, tiny)

    def _seconds(self, fn: Callable[[], object]) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = self.clock()
        fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return self.clock() - start

    def bare_rows_per_second(self, smooth: AbstractContextManager[object]) -> tuple[float, float]:
        """Rows per second of a forward + backward pass and of a forward pass."""

        def backward() -> None:
            for _ in range(self.passes):
                inp = self.x.clone().requires_grad_(True)
                with smooth:
                    loss = F.cross_entropy(self.model(inp), self.y, reduction="sum")
                loss.backward()

        def forward() -> None:
            with torch.no_grad():
                for _ in range(self.passes):
                    self.model(self.x)

        rows = self.passes * self.x.shape[0]
        return rows / self._seconds(backward), rows / self._seconds(forward)

    def ratios(self, attack: Attack) -> tuple[float, float, float]:
        """``grad``, ``work`` and ``ms/step`` (see the module's docstring) of one run of
        ``attack``."""
        beta = getattr(attack, "smooth_relu", None)
        smooth = nullcontext() if beta is None else SmoothReLUBackward(beta)
        backward_rate, forward_rate = self.bare_rows_per_second(smooth)
        result: list[object] = []
        seconds = self._seconds(
            lambda: result.append(attack(self.model, self.x, self.y, index=self.index))
        )
        cost = result[0].cost  # type: ignore[attr-defined]
        if cost.gradients == 0:  # Square: every forward pass is a query
            ratio = cost.forwards / forward_rate / seconds
            return ratio, ratio, 1000 * seconds * len(self.x) / cost.forwards
        grad = cost.gradients / backward_rate / seconds
        work = grad + (cost.forwards - cost.gradients) / forward_rate / seconds
        return grad, work, 1000 * seconds * len(self.x) / cost.gradients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, nargs="+", default=[100, 1000])
    parser.add_argument(
        "--model",
        default=MODEL,
        help=f"a zoo model of mnist-digits (default {MODEL}), or 'tiny': a 784-16-10 network "
        "that costs next to nothing, so that ms/step is the attack's own cost per step",
    )
    parser.add_argument("--iters", type=int, default=20, help="gradients per point and run")
    parser.add_argument("--targets", type=int, default=2, help="APGD-T's and FAB-T's")
    parser.add_argument("--square-queries", type=int, default=100)
    parser.add_argument("--eps", type=float, default=1e-3)
    parser.add_argument("--attacks", nargs="+", help="only these rows (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--passes", type=int, default=3, help="bare passes per timing")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        help="cpu (default on a CPU): this process's CPU time, which other jobs' load "
        "barely moves (one thread); wall (default on a GPU): elapsed time",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.clock is None:
        args.clock = "wall" if device.type == "cuda" else "cpu"
    if device.type == "cuda" and args.clock == "cpu":
        parser.error("--clock cpu times the CPU only: use --clock wall on a GPU")
    tiny = args.model == "tiny"
    model = (_tiny_model() if tiny else load(args.model)).to(device)
    model.requires_grad_(False)  # as every attack runs it: gradients to the input only
    attacks = _attacks(args.eps, args.iters, args.targets, args.square_queries)
    if args.attacks:
        unknown = sorted(set(args.attacks) - set(attacks))
        if unknown:
            parser.error(f"unknown attacks {unknown}; choose from {', '.join(attacks)}")
        attacks = {name: attacks[name] for name in args.attacks}
    benches = {n: _Bench(model, n, device, args.passes, args.clock, tiny) for n in args.points}
    for bench in benches.values():  # warm-up: every shape and attack once
        bench.bare_rows_per_second(nullcontext())
        for attack in attacks.values():
            attack(model, bench.x[:8], bench.y[:8])
    figures: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
    for _ in range(args.repeats):
        for n, bench in benches.items():
            for name, attack in attacks.items():
                figures.setdefault((n, name), []).append(bench.ratios(attack))
    print(
        f"{args.model} on {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), "
        f"eps {args.eps:g}, {args.iters} gradients per point and run, {args.targets} targets, "
        f"Square {args.square_queries} queries; {args.clock} clock, medians of {args.repeats} "
        "repetitions"
    )
    header = "".join(f" | {f'{n} pts grad':>13} {'work':>5} {'ms/step':>7}" for n in args.points)
    print(f"{'attack':<16}{header}")
    for name in attacks:
        cells = ""
        for n in args.points:
            grad, work, ms = (statistics.median(f[i] for f in figures[n, name]) for i in range(3))
            cells += f" | {grad:13.2f} {work:5.2f} {ms:7.2f}"
        print(f"{name:<16}{cells}")
    print("grad: gradient rows/s over bare fwd+bwd rows/s (Square: queries/s over bare forward")
    print("rows/s); work: bare time of the counted passes over the attack's time; ms/step:")
    print("the attack's time per gradient (Square: query) of every point")


if __name__ == "__main__":
    main()
