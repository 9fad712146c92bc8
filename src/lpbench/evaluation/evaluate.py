"""Run attacks on a fixed set of points, keep the worst case per point, verify, record."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lpbench.evaluation.protocol import NamedAttack
from lpbench.io import atomic_write, write_json
from lpbench.runtime import default_batch_rows, progress


class VerificationError(RuntimeError):
    """A stored adversarial example does not do what the evaluation claimed."""


@dataclass
class AttackSummary:
    """What one attack of an evaluation did."""

    label: str
    config: dict[str, Any]
    points_attacked: int
    points_broken: int
    robust_accuracy_after: float
    mean_over_restarts_accuracy: float | None
    grad_evals: int
    forward_evals: int
    wall_time_s: float


@dataclass
class EvaluationResult:
    """Clean and worst-case robust accuracy on a fixed set of points, with per-point records."""

    indices: list[int]
    labels: list[int]
    clean_pred: list[int]
    adv_pred: list[int]
    robust: list[bool]
    broken_by: list[str | None]
    restart_records: list[dict[str, dict[str, list]]]
    attacks: list[AttackSummary]
    eps: float
    x_adv: torch.Tensor
    clean_time_s: float
    verified_points: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return len(self.indices)

    @property
    def clean_accuracy(self) -> float:
        correct = sum(p == y for p, y in zip(self.clean_pred, self.labels, strict=True))
        return correct / self.num_points

    @property
    def robust_accuracy(self) -> float:
        return sum(self.robust) / self.num_points

    @property
    def grad_evals(self) -> int:
        return sum(a.grad_evals for a in self.attacks)

    @property
    def wall_time_s(self) -> float:
        return self.clean_time_s + sum(a.wall_time_s for a in self.attacks)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: summary first, then one record per point."""
        first = self.attacks[0] if self.attacks else None
        points = [
            {
                "index": i,
                "label": y,
                "clean_pred": c,
                "adv_pred": a,
                "robust": r,
                "broken_by": b,
                "attacks": rec,
            }
            for i, y, c, a, r, b, rec in zip(
                self.indices,
                self.labels,
                self.clean_pred,
                self.adv_pred,
                self.robust,
                self.broken_by,
                self.restart_records,
                strict=True,
            )
        ]
        return {
            **self.meta,
            "eps": self.eps,
            "num_points": self.num_points,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "mean_over_restarts_accuracy": first.mean_over_restarts_accuracy if first else None,
            "grad_evals": self.grad_evals,
            "wall_time_s": self.wall_time_s,
            "verification": {
                "adversarial_points_rechecked": self.verified_points,
                "all_misclassified_in_ball": True,
            },
            "attacks": [vars(a) for a in self.attacks],
            "subset_indices": self.indices,
            "points": points,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (JSON) and, beside it, the adversarial examples (safetensors)."""
        path = Path(path)
        adv_path = path.with_suffix(".adv.safetensors")
        broken = torch.tensor([not r for r in self.robust], dtype=torch.bool)
        tensors = {
            "indices": torch.tensor(self.indices, dtype=torch.int64)[broken],
            "x_adv": self.x_adv[broken].contiguous().cpu(),
        }
        atomic_write(adv_path, lambda tmp: save_file(tensors, str(tmp)))
        data = self.to_dict()
        data["adversarial_examples"] = adv_path.name
        return write_json(path, data)


def _predict(
    model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device
) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [
                model(x[i : i + batch_size].to(device)).argmax(1).cpu()
                for i in range(0, len(x), batch_size)
            ]
        )


def verify_adversarial(
    model: nn.Module,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
    tol: float = 1e-6,
) -> int:
    """Re-run ``model`` on ``x_adv`` and check each is in the eps-ball, in [0, 1], misclassified.

    Returns the number of examples checked; raises VerificationError on any mismatch.
    """
    if len(x_adv) == 0:
        return 0
    device = torch.device(device)
    dist = (x_adv - x).flatten(1).abs().max(dim=1).values
    if (dist > eps + tol).any():
        raise VerificationError(
            f"{int((dist > eps + tol).sum())} adversarial examples lie "
            f"outside the eps-ball (max distance {dist.max():.6f} > {eps})"
        )
    if x_adv.min() < 0 or x_adv.max() > 1:
        raise VerificationError("adversarial examples leave the [0, 1] input range")
    pred = _predict(model, x_adv, batch_size, device)
    wrong = pred == y.cpu()
    if wrong.any():
        raise VerificationError(
            f"{int(wrong.sum())} stored adversarial examples are classified "
            "correctly when the model is re-run on them"
        )
    return len(x_adv)


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Sequence[NamedAttack],
    *,
    indices: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    show_progress: bool = True,
) -> EvaluationResult:
    """Attack the points ``(x, y)`` with each attack in turn, on the points still robust.

    A point is robust only if it is classified correctly and survives every restart of
    every attack. The stored adversarial examples are re-checked with the model before the
    result is returned. ``batch_size`` is the number of rows (points x restarts) per
    forward pass; by default what runs fastest on the device.
    """
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels")
    if x.min() < 0 or x.max() > 1:
        raise ValueError("inputs must lie in [0, 1]")
    device = torch.device(device)
    batch_size = batch_size or default_batch_rows(device)
    eps_values = {a.attack.eps for a in attacks}
    if len(eps_values) > 1:
        raise ValueError(f"all attacks of one evaluation must share eps, got {sorted(eps_values)}")
    labels = [a.label for a in attacks]
    if len(set(labels)) != len(labels):
        raise ValueError(f"attack labels must be distinct, got {labels}")
    eps = eps_values.pop() if eps_values else 0.0
    model = model.to(device).eval()
    n = len(x)
    indices = list(range(n)) if indices is None else [int(i) for i in indices]

    start = time.perf_counter()
    clean_pred = _predict(model, x, batch_size, device)
    clean_time = time.perf_counter() - start
    robust = clean_pred == y
    x_adv = x.clone()  # misclassified clean points are their own adversarial example
    broken_by: list[str | None] = [None if r else "clean" for r in robust.tolist()]
    records: list[dict[str, dict[str, list]]] = [{} for _ in range(n)]
    summaries: list[AttackSummary] = []

    for named in attacks:
        attack = named.attack
        todo = robust.nonzero().squeeze(1)
        restarts = getattr(attack, "restarts", 1)
        full_restarts = restarts == 1 or not getattr(attack, "early_stop", False)
        runs_on_all = len(summaries) == 0
        kept = torch.zeros(n)
        grad_evals = forward_evals = 0
        t0 = time.perf_counter()
        per_call = max(1, batch_size // restarts)
        chunks = [todo[i : i + per_call] for i in range(0, len(todo), per_call)]
        for chunk in progress(chunks, desc=named.label, enabled=show_progress, unit="batch"):
            out = attack(model, x[chunk].to(device), y[chunk].to(device))
            grad_evals += out.grad_evals
            forward_evals += out.forward_evals
            hit = out.success.cpu()
            x_adv[chunk[hit]] = out.x_adv.cpu()[hit]
            robust[chunk[hit]] = False
            ran = out.restart_ran.cpu()
            losses, successes = out.restart_loss.cpu(), out.restart_success.cpu()
            kept[chunk] = 1 - successes.float().mean(1)
            for row, point in enumerate(chunk.tolist()):
                if hit[row]:
                    broken_by[point] = named.label
                records[point][named.label] = {
                    "restart_loss": [
                        round(v, 6) if r else None
                        for v, r in zip(losses[row].tolist(), ran[row].tolist(), strict=True)
                    ],
                    "restart_success": [
                        bool(s) if r else None
                        for s, r in zip(successes[row].tolist(), ran[row].tolist(), strict=True)
                    ],
                }
        summaries.append(
            AttackSummary(
                label=named.label,
                config=attack.config(),
                points_attacked=len(todo),
                points_broken=int(len(todo) - robust[todo].sum()),
                robust_accuracy_after=int(robust.sum()) / n,
                mean_over_restarts_accuracy=float(kept.sum()) / n
                if full_restarts and runs_on_all
                else None,
                grad_evals=grad_evals,
                forward_evals=forward_evals,
                wall_time_s=time.perf_counter() - t0,
            )
        )

    broken = ~robust
    verified = verify_adversarial(
        model, x[broken], x_adv[broken], y[broken], eps, batch_size=batch_size, device=device
    )
    adv_pred = _predict(model, x_adv, batch_size, device)
    return EvaluationResult(
        indices=indices,
        labels=y.tolist(),
        clean_pred=clean_pred.tolist(),
        adv_pred=adv_pred.tolist(),
        robust=robust.tolist(),
        broken_by=broken_by,
        restart_records=records,
        attacks=summaries,
        eps=eps,
        x_adv=x_adv,
        clean_time_s=clean_time,
        verified_points=verified,
    )


def load_adversarial(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The (indices, x_adv) stored beside a results file."""
    tensors = load_file(str(path))
    return tensors["indices"], tensors["x_adv"]
