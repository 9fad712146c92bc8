"""What the probes of ``lpbench check`` share: the model, its correctly classified points
and the costs and verdict flips of their attacks."""

from __future__ import annotations

import sys
import time

import torch
from torch import nn

from lpbench.attacks._common import forward
from lpbench.attacks.base import Attack, AttackResult, Cost


class Probe:
    """The model and the correctly classified points the probes share, the model's class
    count and whether it computes ReLUs (from the pre-flight), whether it is randomised,
    the EOT draws per gradient and evaluations per final example (both 1 for a
    deterministic model), what each probe's attacks spent and, per attack, how often
    re-evaluated verdicts flipped."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        seed: int,
        *,
        classes: int,
        relu: bool,
        random: bool,
        no_relu: str,
        eot: int,
        reevals: int,
        show_progress: bool = False,
    ) -> None:
        self.model, self.x, self.y, self.index, self.seed = model, x, y, index, seed
        self.classes, self.relu, self.no_relu = classes, relu, no_relu
        self.random, self.eot, self.reevals = random, eot, reevals
        self.cost: dict[str, Cost] = {}
        self.flips: dict[str, float] = {}
        self.show_progress = show_progress

    def spend(self, name: str, cost: Cost) -> None:
        self.cost[name] = self.cost.get(name, Cost()) + cost

    def run(self, name: str, attack: Attack, model: nn.Module | None = None) -> AttackResult:
        """``attack`` on every point (against ``model``, default the probed one), counted;
        with ``show_progress``, a line on stderr as it starts and as it ends."""
        started = time.perf_counter()
        self.say(f"{name}: {type(attack).__name__} on {len(self.x)} points ...")
        result = attack(model or self.model, self.x, self.y, index=self.index)
        self.spend(name, result.cost)
        self.say(f"{name}: done in {time.perf_counter() - started:.1f} s")
        return result

    def say(self, text: str) -> None:
        """A progress line on stderr (``check: TEXT``) when progress is shown."""
        if self.show_progress:
            print(f"check: {text}", file=sys.stderr, flush=True)

    def broken(self, name: str, attack: Attack) -> torch.Tensor:
        """Per point (CPU): broken by ``attack``; on a randomised model, misclassified in
        every re-evaluation of the final example."""
        result = self.run(name, attack)
        if not self.random:
            return result.success.cpu()
        return self.misclassified(name, result.x_adv, self.y)

    def misclassified(self, name: str, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Whether the model misclassifies ``x_adv`` in all ``reevals`` evaluations (CPU);
        records the fraction of points whose verdict flips between them."""
        wrong = torch.stack(
            [forward(self.model, x_adv, 10_000).argmax(1) != y for _ in range(self.reevals)]
        )
        self.spend(name, Cost(forwards=len(x_adv) * self.reevals))
        if self.random:  # the largest over the attack's runs (the sweep's radii)
            flips = float((wrong.any(0) & ~wrong.all(0)).float().mean())
            self.flips[name] = max(flips, self.flips.get(name, 0.0))
        return wrong.all(0).cpu()
