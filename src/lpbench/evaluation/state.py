"""Per-point state of an evaluation: outcomes so far, built from journal parts and fresh
ones alike, what a budget pool leaves each point, and the shares processes exchange."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from lpbench.evaluation.journal import Part
from lpbench.evaluation.specs import NamedAttack


class State:
    """Per-point outcome so far, built from journal parts and fresh ones alike."""

    def __init__(self, x: torch.Tensor, attacks: Sequence[NamedAttack]) -> None:
        n = len(x)
        self.labels = [a.label for a in attacks]
        self.clean_pred: list[int | None] = [None] * n
        self.robust = [False] * n
        self.broken_by: list[str | None] = [None] * n
        self.records: list[dict[str, dict[str, Any]]] = [{} for _ in range(n)]
        self.mismatch: list[list[str]] = [[] for _ in range(n)]
        self.x_adv = x.detach().cpu().clone()
        self.costs: dict[str, dict[str, Any]] = {}  # part name -> label, cost, time
        # Warm starts: per point, the not-adversarial example with the largest margin so far,
        # kept from the stages before the last warm-started one.
        self.last_warm = max((k + 1 for k, a in enumerate(attacks) if a.warm_start), default=0)
        self.start = x.detach().cpu().clone() if self.last_warm else None
        self.start_margin = [-math.inf] * n

    def apply(self, part: Part, y: list[int]) -> None:
        if part.name in self.costs:
            return
        self.costs[part.name] = {
            "label": part.label,
            "cost": part.cost,
            "wall_time_s": part.wall_time_s,
        }
        if part.stage == 0:
            for pos, pred in zip(part.positions, part.clean_pred, strict=True):
                self.clean_pred[pos] = pred
                self.robust[pos] = pred == y[pos]
                self.broken_by[pos] = None if pred == y[pos] else "clean"
            return
        adv: Iterator[torch.Tensor] = iter(part.x_adv if part.x_adv is not None else [])
        best: Iterator[torch.Tensor] = iter(part.x_best if part.x_best is not None else [])
        for pos, hit, bad, record in zip(
            part.positions, part.hit, part.mismatch, part.records, strict=True
        ):
            self.records[pos][part.label] = record
            if bad:
                self.mismatch[pos].append(part.label)
            if hit:
                self.robust[pos] = False
                self.broken_by[pos] = part.label
                self.x_adv[pos] = next(adv)
            elif part.x_best is not None:
                self._offer_start(pos, next(best), record["margin"])

    def _offer_start(self, pos: int, example: torch.Tensor, margin_: float | None) -> None:
        """Keep ``example`` as the point's warm start if its margin is the largest yet."""
        if self.start is not None and margin_ is not None and margin_ > self.start_margin[pos]:
            self.start[pos] = example
            self.start_margin[pos] = margin_

    def pending(self, stage: int, positions: list[int]) -> list[int]:
        """Positions of ``positions`` still to be run through ``stage``."""
        if stage == 0:
            return [p for p in positions if self.clean_pred[p] is None]
        label = self.labels[stage - 1]
        return [p for p in positions if self.robust[p] and label not in self.records[p]]


def pool_limit(
    state: State, attacks: Sequence[NamedAttack], stage: int, block: list[int]
) -> torch.Tensor:
    """Per position of ``block``: what stage ``stage``'s attack may spend, its own cap plus
    what the earlier pooled attacks left of theirs on the point, net of what those that
    take limits spent beyond their own caps (an attack that did not count its spend per
    point, or did not run on it, left nothing)."""
    earlier = [a for a in attacks[: stage - 1] if a.pooled]
    caps = [a.attack.max_spend_per_point() for a in earlier]
    own = attacks[stage - 1].attack.max_spend_per_point()
    limits = []
    for pos in block:
        left = 0
        for named, cap in zip(earlier, caps, strict=True):
            spent = state.records[pos].get(named.label, {}).get("spent", cap)
            left += cap - spent
        limits.append(own + max(0, left))
    return torch.tensor(limits, dtype=torch.int64)


def share(state: State, positions: list[int]) -> dict[str, Any]:
    """This process's part of the outcome: only the positions it owns (not its warm
    starts: every attack has run by the time the shares are merged)."""
    return {
        "positions": positions,
        "clean_pred": [state.clean_pred[p] for p in positions],
        "robust": [state.robust[p] for p in positions],
        "broken_by": [state.broken_by[p] for p in positions],
        "records": [state.records[p] for p in positions],
        "mismatch": [state.mismatch[p] for p in positions],
        "x_adv": state.x_adv[positions],
        "costs": state.costs,
    }


def merge(into: State, share: dict[str, Any]) -> None:
    """Overwrite the positions another process owns with its outcome for them."""
    for i, pos in enumerate(share["positions"]):
        for key in ("clean_pred", "robust", "broken_by", "records", "mismatch"):
            getattr(into, key)[pos] = share[key][i]
        into.x_adv[pos] = share["x_adv"][i]
    for name, entry in share["costs"].items():
        into.costs.setdefault(name, entry)
