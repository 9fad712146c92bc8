"""``lpbench check``: cheap probes for gradient masking and failed attacks, with evidence.

Every probe runs on the points the model classifies correctly and either passes or
raises a warning that carries its numbers. The probes follow the sanity checks of
Carlini et al. (2019, "On Evaluating Adversarial Robustness") and the indicators of
attack failure of Pintor et al. (2022):

- ``gap``: the data set's baseline leaves far more points robust than stronger white-box
  attacks (APGD-CE, APGD-T): the baseline is overestimating robustness;
- ``black-box``: Square (gradient-free) breaks points no white-box attack broke;
- ``restarts``: PGD's verdict on a point changes from one random restart to another;
- ``gradients`` (unavailable gradients): input gradients that are zero or not finite;
- ``logits``: logits so large that float32 softmax saturates (cross-entropy 0), or so
  small that the classes are barely separated;
- ``unbounded`` (unconstrained attack failure): at eps = 1 an attack must break every point;
- ``single-step``: FGSM breaks points the iterative attacks did not;
- ``eps-sweep``: robust accuracy must not rise as eps grows (drawn as a curve);
- ``silent-success``: an iterate was adversarial but the last one is not;
- ``incomplete``: the attack loss is still rising at the last iterations;
- ``no-progress`` (non-converging loss): the attack loss never rose above its start on
  points that stayed robust.

A clean report is no proof of robustness; a warning is a reason to distrust a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from lpbench.attacks import APGD, APGDT, FGSM, PGD, Square
from lpbench.attacks.base import COMPLETE, attack_mode
from lpbench.evaluation.contract import check_inputs
from lpbench.evaluation.evaluate import predict
from lpbench.evaluation.protocol import get_protocol, parse_step
from lpbench.runtime import evaluation_mode, resolve_device

#: Exit codes of ``lpbench check``: no warning, warnings (masking suspected).
CLEAN, SUSPECT = 0, 1

#: Multiples of eps of the sweep (capped at 1; eps = 1 is always added).
SWEEP = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass
class Finding:
    """One probe's outcome: ``ok`` or a warning, a sentence and the numbers behind it."""

    probe: str
    ok: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'WARN'} {self.probe:<15} {self.message}"


@dataclass
class CheckReport:
    """All findings, the accuracies each attack left and the eps sweep."""

    eps: float
    points: int
    correct: int
    findings: list[Finding]
    accuracy: dict[str, float]
    sweep: list[tuple[float, float]]
    figure: Path | None = None

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    @property
    def exit_code(self) -> int:
        """0 when every probe passed, 1 when any warned (masking or a failed attack)."""
        return SUSPECT if self.warnings else CLEAN

    @property
    def verdict(self) -> str:
        if not self.warnings:
            return (
                f"verdict: clean: {len(self.findings)} probes found no sign of gradient "
                "masking or attack failure (no proof of robustness)"
            )
        names = ", ".join(f.probe for f in self.warnings)
        return (
            f"verdict: MASKING SUSPECTED: {len(self.warnings)} of {len(self.findings)} "
            f"probes warn ({names}); do not trust robust accuracies from gradient attacks "
            "on this model without stronger attacks (try --preset auto or aa-standard)"
        )

    def lines(self) -> list[str]:
        head = (
            f"check at eps {self.eps:g}: {self.correct} of {self.points} points classified "
            "correctly; accuracies below are over those"
        )
        accs = "  ".join(f"{k} {v:.1%}" for k, v in self.accuracy.items())
        return [head, f"robust accuracy: {accs}", *(f.line() for f in self.findings), self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "eps": self.eps,
            "points": self.points,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "sweep": [{"eps": e, "robust_accuracy": a} for e, a in self.sweep],
            "findings": [vars(f) for f in self.findings],
            "warnings": len(self.warnings),
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "figure": None if self.figure is None else str(self.figure),
        }


def check(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    dataset: str | None = None,
    iters: int = 50,
    restarts: int = 5,
    queries: int = 1000,
    seed: int = 0,
    device: str | torch.device | None = None,
    plot: str | Path | None = None,
) -> CheckReport:
    """Probe ``model`` on ``(x, y)`` at radius ``eps`` for gradient masking; see the module.

    ``dataset`` picks the baseline attack of the gap probe (None: PGD-40, step eps/10).
    ``iters``: iterations of the APGD probes and of the traced PGD; ``restarts``: PGD
    restarts of the restart probe; ``queries``: Square's queries. ``plot``: where to draw
    robust accuracy against eps (PNG). The model's mode and device are restored.
    """
    check_inputs(x, y)
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    device_t = resolve_device(device) if not isinstance(device, torch.device) else device
    x, y = x.detach().cpu(), y.detach().cpu()
    with evaluation_mode(model, device_t):
        pred = predict(model, x, 1000, device_t)
        keep = pred == y
        xc, yc = x[keep].to(device_t), y[keep].to(device_t)
        n = int(keep.sum())
        if n == 0:
            raise ValueError("the model classifies none of the points correctly: nothing to check")
        index = torch.nonzero(keep).squeeze(1).to(device_t)
        probe = _Probe(model, xc, yc, index, seed)
        findings, accuracy, sweep = _run_probes(
            probe, eps, dataset, iters=iters, restarts=restarts, queries=queries
        )
    report = CheckReport(eps, len(x), n, findings, accuracy, sweep)
    if plot is not None:
        report.figure = plot_sweep(sweep, plot, eps=eps)
    return report


class _Probe:
    """The model and the correctly classified points the probes share."""

    def __init__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, seed: int
    ) -> None:
        self.model, self.x, self.y, self.index, self.seed = model, x, y, index, seed

    def broken(self, attack: Any) -> torch.Tensor:
        return attack(self.model, self.x, self.y, index=self.index).success.cpu()


def _acc(broken: torch.Tensor) -> float:
    return 1.0 - float(broken.float().mean())


def _run_probes(
    probe: _Probe, eps: float, dataset: str | None, *, iters: int, restarts: int, queries: int
) -> tuple[list[Finding], dict[str, float], list[tuple[float, float]]]:
    seed, n = probe.seed, probe.x.shape[0]
    tol = max(0.02, 1.5 / n)  # differences below this are noise on n points
    findings: list[Finding] = []
    spec = get_protocol(dataset).presets["baseline"][0]
    base_attack = spec.build(eps, seed=seed, max_batch=10_000).attack
    base = probe.broken(base_attack)
    ce = probe.broken(APGD(eps, iters, loss="ce", seed=seed, stream="check-apgd-ce"))
    with torch.no_grad():
        classes = probe.model(probe.x[:1]).shape[1]
    tgt = torch.zeros_like(ce)
    if classes >= 4:  # the targeted DLR loss needs four classes
        tgt = probe.broken(APGDT(eps, iters, n_target_classes=3, seed=seed, stream="check-apgd-t"))
    white = base | ce | tgt
    fgsm = probe.broken(FGSM(eps, seed=seed, stream="check-fgsm"))
    accuracy = {
        "fgsm": _acc(fgsm),
        "baseline": _acc(base),
        "apgd-ce": _acc(ce),
        "apgd-t": _acc(tgt),
        "white-box": _acc(white),
    }
    if classes < 4:
        del accuracy["apgd-t"]

    gap = accuracy["baseline"] - accuracy["white-box"]
    findings.append(
        Finding(
            "gap",
            gap <= tol,
            f"baseline leaves {accuracy['baseline']:.1%} robust, APGD-CE + APGD-T "
            f"{accuracy['white-box']:.1%} (gap {gap:.1%})",
            {"baseline": accuracy["baseline"], "white_box": accuracy["white-box"]},
        )
    )

    if probe.x.dim() == 4 and min(probe.x.shape[2:]) >= 2:
        square = probe.broken(Square(eps, queries, seed=seed, stream="check-square"))
        accuracy["square"] = _acc(square)
        only = float((square & ~white).float().mean())
        findings.append(
            Finding(
                "black-box",
                only <= tol,
                f"Square ({queries} queries) breaks {only:.1%} of points no white-box "
                f"attack broke (Square leaves {accuracy['square']:.1%})",
                {"square_only": only, "square": accuracy["square"]},
            )
        )

    only = float((fgsm & ~white).float().mean())
    findings.append(
        Finding(
            "single-step",
            only <= tol,
            f"FGSM breaks {only:.1%} of points the iterative attacks did not "
            f"(FGSM leaves {accuracy['fgsm']:.1%})",
            {"fgsm_only": only, "fgsm": accuracy["fgsm"]},
        )
    )

    pgd = PGD(
        eps,
        parse_step(spec.step, eps),
        spec.iters,
        restarts,
        score="any",
        early_stop=False,
        seed=seed,
        stream="check-restarts",
    )
    rec = pgd(probe.model, probe.x, probe.y, index=probe.index).restarts
    assert rec is not None
    ran = rec.status.cpu() == COMPLETE
    wins = rec.success.cpu() & ran
    mixed = wins.any(1) & (wins.sum(1) < ran.sum(1))
    frac = float(mixed.float().mean())
    findings.append(
        Finding(
            "restarts",
            frac <= 0.1,
            f"{frac:.1%} of points are broken by some but not all of {restarts} restarts of "
            f"the baseline PGD",
            {"mixed": frac, "restarts": restarts},
        )
    )

    findings += _gradient_and_logit_probes(probe, eps)

    sweep = []
    for e in sorted({min(f * eps, 1.0) for f in SWEEP} | {1.0}):
        if abs(e - eps) < 1e-12:
            sweep.append((e, accuracy["apgd-ce"]))
            continue
        attack = APGD(e, iters, loss="ce", seed=seed, stream="check-apgd-ce")
        sweep.append((e, _acc(probe.broken(attack))))
    sweep = [(0.0, 1.0), *sweep]
    unbounded = sweep[-1][1]
    accuracy["eps=1"] = unbounded
    findings.append(
        Finding(
            "unbounded",
            unbounded <= tol,
            f"at eps 1 APGD-CE leaves {unbounded:.1%} robust (must be ~0%)",
            {"robust_at_eps_1": unbounded},
        )
    )
    rises = [
        (a, b, acc_b - acc_a) for (a, acc_a), (b, acc_b) in pairwise(sweep) if acc_b > acc_a + tol
    ]
    findings.append(
        Finding(
            "eps-sweep",
            not rises,
            "robust accuracy falls as eps grows"
            if not rises
            else "robust accuracy rises with eps: "
            + ", ".join(f"{a:g} -> {b:g} by {d:.1%}" for a, b, d in rises),
            {"sweep": [[e, a] for e, a in sweep]},
        )
    )

    findings += _trace_probes(probe, eps, max(iters, 8), tol)
    return findings, accuracy, sweep


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with attack_mode(model, eval_mode=True):
        xg = x.clone().requires_grad_(True)
        logits = model(xg)
        loss = F.cross_entropy(logits, y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), xg)
    return grad.detach(), loss.detach(), logits.detach()


def _gradient_and_logit_probes(probe: _Probe, eps: float) -> list[Finding]:
    gen = torch.Generator().manual_seed(probe.seed)
    noise = (torch.rand(probe.x.shape, generator=gen) * 2 - 1).to(probe.x.device)
    starts = {"clean": probe.x, "random": (probe.x + eps * noise).clamp(0, 1)}
    zero, bad, ce_zero, logits = {}, {}, 0.0, None
    for name, xs in starts.items():
        grad, loss, out = _input_grad(probe.model, xs, probe.y)
        flat = grad.flatten(1)
        bad[name] = float((~torch.isfinite(flat)).any(1).float().mean())
        zero[name] = float((flat.abs().amax(1) == 0).float().mean())
        if name == "clean":
            ce_zero, logits = float((loss == 0).float().mean()), out
    assert logits is not None
    worst_zero = max(zero.values())
    findings = [
        Finding(
            "gradients",
            worst_zero <= 0.1 and max(bad.values()) == 0,
            f"input gradient of the cross-entropy is exactly 0 on {zero['clean']:.1%} of "
            f"clean points and {zero['random']:.1%} of random points in the ball; "
            f"not finite on {max(bad.values()):.1%}",
            {"zero": zero, "non_finite": bad},
        )
    ]
    top2 = logits.topk(2, dim=1).values
    gaps = (top2[:, 0] - top2[:, 1]).cpu()
    size = float(logits.abs().amax(1).median())
    gap_median = float(gaps.median())
    ok = size <= 1e3 and ce_zero <= 0.1 and gap_median >= 1e-4
    findings.append(
        Finding(
            "logits",
            ok,
            f"median largest |logit| {size:.3g}, median top-2 gap {gap_median:.3g}; "
            f"float32 cross-entropy is 0 on {ce_zero:.1%} of points",
            {"median_max_abs_logit": size, "median_top2_gap": gap_median, "ce_zero": ce_zero},
        )
    )
    return findings


def _trace_probes(probe: _Probe, eps: float, iters: int, tol: float) -> list[Finding]:
    """PGD on float32 cross-entropy from the clean point, its loss traced per iteration."""
    model, x, y = probe.model, probe.x, probe.y
    lower, upper = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    xa = x.clone()
    history, any_adv = [], torch.zeros(len(x), dtype=torch.bool, device=x.device)
    last_adv = any_adv
    for it in range(iters + 1):
        grad, loss, logits = _input_grad(model, xa, y)
        history.append(loss)
        last_adv = logits.argmax(1) != y
        any_adv = any_adv | last_adv
        if it == iters:
            break
        step = eps / 4 if it < iters // 2 else eps / 8 if it < 3 * iters // 4 else eps / 16
        xa = torch.min(torch.max(xa + step * torch.nan_to_num(grad).sign(), lower), upper)
    hist = torch.stack(history, 1).cpu().double()  # (n, iters + 1)
    any_adv, last_adv = any_adv.cpu(), last_adv.cpu()
    silent = float((any_adv & ~last_adv).float().mean())
    robust = ~any_adv
    findings = [
        Finding(
            "silent-success",
            silent <= tol,
            f"on {silent:.1%} of points an iterate was adversarial but the last is not "
            "(last-iterate scoring misses them)",
            {"silent": silent},
        )
    ]
    if not robust.any():
        for name in ("incomplete", "no-progress"):
            findings.append(
                Finding(name, True, "every point was broken by the traced PGD", {"robust": 0})
            )
        return findings
    h = hist[robust]
    window = max(iters // 10, 1)
    start, best = h[:, 0], h.max(1).values
    span = (best - start).clamp_min(1e-12)
    rising = (h[:, -window:].mean(1) - h[:, -2 * window : -window].mean(1)) > 0.05 * span
    stuck = (best - start) <= 1e-6 * (1 + start.abs())
    frac_rising = float(rising.float().mean())
    frac_stuck = float(stuck.float().mean())
    findings.append(
        Finding(
            "incomplete",
            frac_rising <= 0.1,
            f"the loss still rises over the last {window} of {iters} iterations on "
            f"{frac_rising:.1%} of the points left robust (more iterations needed)",
            {"rising": frac_rising, "robust_points": int(robust.sum())},
        )
    )
    findings.append(
        Finding(
            "no-progress",
            frac_stuck <= 0.1,
            f"the loss never rose above its start on {frac_stuck:.1%} of the points left "
            "robust (the attack did not move them)",
            {"stuck": frac_stuck, "robust_points": int(robust.sum())},
        )
    )
    return findings


def plot_sweep(sweep: Sequence[tuple[float, float]], path: str | Path, *, eps: float) -> Path:
    """Robust accuracy against eps (PNG), the checked radius marked."""
    from lpbench.diagnostics.surface import save_figure

    fig = Figure(figsize=(5.0, 3.5))
    ax = fig.add_subplot()
    ax.plot([e for e, _ in sweep], [a for _, a in sweep], marker="o")
    ax.axvline(eps, color="grey", linestyle="--", linewidth=1, label=f"eps {eps:g}")
    ax.set_xlabel("eps (L-infinity)")
    ax.set_ylabel("robust accuracy (APGD-CE)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("robust accuracy must fall as eps grows")
    ax.legend()
    return save_figure(fig, path)[0]
