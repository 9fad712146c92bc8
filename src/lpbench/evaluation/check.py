"""``lpbench check``: cheap probes for gradient masking and failed attacks, with evidence.

Every probe runs on the points the model classifies correctly and either passes or
raises a warning that carries its numbers. The probes follow the sanity checks of
Carlini et al. (2019, "On Evaluating Adversarial Robustness") and the indicators of
attack failure of Pintor et al. (2022):

- ``gap``: the data set's baseline leaves far more points robust than stronger white-box
  attacks (APGD-CE, APGD-T): the baseline is overestimating robustness;
- ``black-box``: Square (gradient-free) breaks points no white-box attack broke;
- ``relu-masking``: APGD on the DLR loss through a smoothed ReLU backward pass (the
  forward pass exact; :class:`~lpbench.attacks.smooth.SmoothReLUBackward`) breaks points
  the plain white-box attacks did not: ReLUs the model keeps off hide the way (skipped
  for a model that computes no ReLU);
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
  points that stayed robust;
- ``loss-surface``: the cross-entropy sampled along the segment from the point to the
  eps-ball's boundary (gradient-sign and keyed random sign directions) is rough: its total
  variation is many times its net change (a smooth monotone curve gives 1);
- ``transfer`` (transfer failure): examples crafted on a surrogate model break points the
  white-box attacks on the model left robust (skipped without a surrogate);
- ``convergence``: APGD-CE with twice the iterations, or PGD with twice the restarts,
  lowers robust accuracy: the probe's own attacks had not converged;
- ``randomness``: a randomised model (two identical calls differ) is attacked with
  expectation over transformation (EOT) in every gradient attack, and each final example
  is evaluated several times; a point counts as broken only when misclassified in every
  evaluation. Warns when verdicts flip between evaluations on many points.

A clean report is no proof of robustness; a warning is a reason to distrust a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from lpbench.attacks import APGD, APGDT, FGSM, PGD, Square
from lpbench.attacks._common import forward
from lpbench.attacks.base import Attack, AttackResult, Cost, attack_mode
from lpbench.attacks.keyed import derive_key, keyed_uniform
from lpbench.attacks.smooth import computes_relu
from lpbench.evaluation.contract import check_inputs, randomised
from lpbench.evaluation.evaluate import predict
from lpbench.evaluation.protocol import get_protocol, parse_step
from lpbench.evaluation.schedule import AUTO_SMOOTH_BETAS
from lpbench.runtime import evaluation_mode, resolve_device

#: Exit codes of ``lpbench check``: no warning, warnings (masking suspected).
CLEAN, SUSPECT = 0, 1

#: Multiples of eps of the sweep (capped at 1; eps = 1 is always added).
SWEEP = (0.25, 0.5, 1.0, 2.0, 4.0)

#: Loss samples per direction of the loss-surface probe (the point and 32 steps to the
#: ball's boundary) and the median roughness above which it warns.
SURFACE_SAMPLES = 33
ROUGHNESS_LIMIT = 3.0

#: Fraction of points whose verdict may flip between re-evaluations of a randomised model.
FLIP_LIMIT = 0.1


class NothingToCheck(ValueError):
    """The model classifies none of the points correctly: no probe can run."""


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
    cost: dict[str, dict[str, int]] = field(default_factory=dict)
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
            "cost": self.cost,
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
    surrogate: nn.Module | None = None,
    eot_iter: int = 10,
    reevals: int = 10,
    surface_points: int = 20,
) -> CheckReport:
    """Probe ``model`` on ``(x, y)`` at radius ``eps`` for gradient masking; see the module.

    ``dataset`` picks the baseline attack of the gap probe (None: PGD-40, step eps/10).
    ``iters``: iterations of the APGD probes and of the traced PGD; ``restarts``: PGD
    restarts of the restart probe; ``queries``: Square's queries. ``plot``: where to draw
    robust accuracy against eps (PNG). ``surrogate``: a model to transfer APGD-CE examples
    from (the transfer probe is skipped without one). A randomised model gets ``eot_iter``
    draws per gradient in every gradient attack and ``reevals`` evaluations of each final
    example. ``surface_points``: points of the loss-surface probe. The model's (and the
    surrogate's) mode and device are restored.
    """
    check_inputs(x, y)
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    if min(eot_iter, reevals, surface_points) < 1:
        raise ValueError("eot_iter, reevals and surface_points must be >= 1")
    device_t = resolve_device(device) if not isinstance(device, torch.device) else device
    x, y = x.detach().cpu(), y.detach().cpu()
    with ExitStack() as stack:
        stack.enter_context(evaluation_mode(model, device_t))
        if surrogate is not None:
            stack.enter_context(evaluation_mode(surrogate, device_t))
        pred = predict(model, x, 1000, device_t)
        keep = pred == y
        xc, yc = x[keep].to(device_t), y[keep].to(device_t)
        n = int(keep.sum())
        if n == 0:
            raise NothingToCheck(
                "the model classifies none of the points correctly: nothing to check"
            )
        index = torch.nonzero(keep).squeeze(1).to(device_t)
        random = randomised(model, xc[:8])
        probe = _Probe(
            model,
            xc,
            yc,
            index,
            seed,
            random=random,
            eot=eot_iter if random else 1,
            reevals=reevals if random else 1,
        )
        findings, accuracy, sweep = _run_probes(
            probe,
            eps,
            dataset,
            iters=iters,
            restarts=restarts,
            queries=queries,
            surrogate=surrogate,
            surface_points=surface_points,
        )
    cost = {name: c.to_dict() for name, c in probe.cost.items()}
    report = CheckReport(eps, len(x), n, findings, accuracy, sweep, cost)
    if plot is not None:
        report.figure = plot_sweep(sweep, plot, eps=eps)
    return report


class _Probe:
    """The model and the correctly classified points the probes share, whether the model is
    randomised, the EOT draws per gradient and evaluations per final example (both 1 for
    a deterministic model), what each probe's attacks spent and, per attack, how often
    re-evaluated verdicts flipped."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        seed: int,
        *,
        random: bool,
        eot: int,
        reevals: int,
    ) -> None:
        self.model, self.x, self.y, self.index, self.seed = model, x, y, index, seed
        self.random, self.eot, self.reevals = random, eot, reevals
        self.cost: dict[str, Cost] = {}
        self.flips: dict[str, float] = {}

    def spend(self, name: str, cost: Cost) -> None:
        self.cost[name] = self.cost.get(name, Cost()) + cost

    def run(self, name: str, attack: Attack, model: nn.Module | None = None) -> AttackResult:
        """``attack`` on every point (against ``model``, default the probed one), counted."""
        result = attack(model or self.model, self.x, self.y, index=self.index)
        self.spend(name, result.cost)
        return result

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


def _acc(broken: torch.Tensor) -> float:
    return 1.0 - float(broken.float().mean())


def _relu_probe(
    probe: _Probe,
    eps: float,
    iters: int,
    white: torch.Tensor,
    accuracy: dict[str, float],
    tol: float,
    classes: int,
) -> Finding:
    """APGD-DLR through each smoothed ReLU backward pass of ``auto`` against the plain
    white-box attacks (``accuracy["smooth-relu"]``: what the smoothed runs leave)."""
    relu = computes_relu(probe.model, probe.x[:1])
    if not relu or classes < 3:
        why = "the model computes no ReLU" if not relu else "the DLR loss needs 3 classes"
        return Finding("relu-masking", True, f"skipped: {why}")
    smoothed = torch.zeros_like(white)
    for beta in AUTO_SMOOTH_BETAS:
        attack = APGD(
            eps,
            iters,
            loss="dlr",
            smooth_relu=beta,
            eot_iter=probe.eot,
            seed=probe.seed,
            stream=f"check-smooth{beta:g}",
        )
        smoothed |= probe.broken("relu-masking", attack)
    accuracy["smooth-relu"] = _acc(smoothed)
    only = float((smoothed & ~white).float().mean())
    return Finding(
        "relu-masking",
        only <= tol,
        f"APGD-DLR through a smoothed ReLU backward pass breaks {only:.1%} of points the "
        f"plain white-box attacks did not (it leaves {accuracy['smooth-relu']:.1%})",
        {"smooth_only": only, "smooth_relu": accuracy["smooth-relu"]},
    )


def _run_probes(
    probe: _Probe,
    eps: float,
    dataset: str | None,
    *,
    iters: int,
    restarts: int,
    queries: int,
    surrogate: nn.Module | None,
    surface_points: int,
) -> tuple[list[Finding], dict[str, float], list[tuple[float, float]]]:
    seed, n, eot = probe.seed, probe.x.shape[0], probe.eot
    tol = max(0.02, 1.5 / n)  # differences below this are noise on n points
    findings: list[Finding] = []
    spec = get_protocol(dataset).presets["baseline"][0]
    base = probe.broken(
        "baseline", spec.build(eps, seed=seed, max_batch=10_000, eot_iter=eot).attack
    )
    ce = probe.broken(
        "apgd-ce", APGD(eps, iters, loss="ce", eot_iter=eot, seed=seed, stream="check-apgd-ce")
    )
    with torch.no_grad():
        classes = probe.model(probe.x[:1]).shape[1]
    tgt = torch.zeros_like(ce)
    if classes >= 4:  # the targeted DLR loss needs four classes
        apgd_t = APGDT(
            eps, iters, targets=3, eot_iter=eot, seed=seed, stream="check-apgd-t"
        )
        tgt = probe.broken("apgd-t", apgd_t)
    white = base | ce | tgt
    fgsm = probe.broken("fgsm", FGSM(eps, eot_iter=eot, seed=seed, stream="check-fgsm"))
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
        square = probe.broken("square", Square(eps, queries, seed=seed, stream="check-square"))
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

    findings.append(_relu_probe(probe, eps, iters, white, accuracy, tol, classes))

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

    # Twice the restarts, each run to the end: the first half is the restart probe's run
    # (restarts are keyed, so the first ``restarts`` are those of a shorter run).
    pgd = PGD(
        eps,
        parse_step(spec.step, eps),
        spec.iters,
        2 * restarts,
        score="any",
        early_stop=False,
        eot_iter=eot,
        seed=seed,
        stream="check-restarts",
    )
    rec = probe.run("restarts", pgd).restarts
    assert rec is not None
    ran = rec.ran.cpu()
    wins = rec.success.cpu() & ran
    first, first_ran = wins[:, :restarts], ran[:, :restarts]
    mixed = first.any(1) & (first.sum(1) < first_ran.sum(1))
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
    ce_long = probe.broken(
        "convergence",
        APGD(eps, 2 * iters, loss="ce", eot_iter=eot, seed=seed, stream="check-apgd-ce"),
    )
    findings.append(
        _convergence(
            (accuracy["apgd-ce"], _acc(ce_long), iters),
            (_acc(first.any(1)), _acc(wins.any(1)), restarts),
            tol,
        )
    )

    findings += _gradient_and_logit_probes(probe, eps)

    sweep = []
    for e in sorted({min(f * eps, 1.0) for f in SWEEP} | {1.0}):
        if abs(e - eps) < 1e-12:
            sweep.append((e, accuracy["apgd-ce"]))
            continue
        attack = APGD(e, iters, loss="ce", eot_iter=eot, seed=seed, stream="check-apgd-ce")
        sweep.append((e, _acc(probe.broken("eps-sweep", attack))))
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
    findings.append(_surface_probe(probe, eps, surface_points))
    findings.append(_transfer_probe(probe, eps, surrogate, white, iters, tol))
    findings.append(_randomness(probe))
    return findings, accuracy, sweep


def _convergence(
    apgd: tuple[float, float, int], pgd_runs: tuple[float, float, int], tol: float
) -> Finding:
    """Robust accuracy (APGD-CE, PGD) with the probe's budget and with twice its
    iterations (APGD-CE) or restarts (PGD): (accuracy, accuracy doubled, iterations)."""
    (ce, ce_long, iters), (pgd, pgd_long, runs) = apgd, pgd_runs
    drop = max(ce - ce_long, pgd - pgd_long)
    return Finding(
        "convergence",
        drop <= tol,
        f"APGD-CE leaves {ce:.1%} robust with {iters} iterations, {ce_long:.1%} with "
        f"{2 * iters}; PGD {pgd:.1%} with {runs} restarts, {pgd_long:.1%} with {2 * runs}",
        {
            "apgd_ce": ce,
            "apgd_ce_2x_iters": ce_long,
            "iters": iters,
            "pgd": pgd,
            "pgd_2x_restarts": pgd_long,
            "restarts": runs,
            "largest_drop": drop,
        },
    )


def _surface_probe(probe: _Probe, eps: float, points: int) -> Finding:
    """Cross-entropy sampled from each point to the ball's boundary along the gradient's
    sign and a keyed random sign; roughness = total variation / net change."""
    m = min(points, probe.x.shape[0])
    x, y, index = probe.x[:m], probe.y[:m], probe.index[:m]
    grad, _, _ = _input_grad(probe.model, x, y, probe.eot)
    key = derive_key(probe.seed, "check-surface")
    unit = keyed_uniform(key, index, 0, tuple(x.shape[1:]), dtype=x.dtype)
    directions = {"gradient": grad.sign(), "random": torch.where(unit < 0.5, -1.0, 1.0)}
    t = torch.linspace(0.0, eps, SURFACE_SAMPLES, dtype=x.dtype, device=x.device)
    steps = t.view(1, -1, *([1] * (x.dim() - 1)))
    labels = y.repeat_interleave(SURFACE_SAMPLES)
    roughness, forwards = {}, 0
    for name, d in directions.items():
        path = (x[:, None] + steps * d[:, None]).clamp(0, 1).flatten(0, 1)
        loss = torch.stack(
            [
                F.cross_entropy(
                    forward(probe.model, path, 10_000).double(), labels, reduction="none"
                )
                for _ in range(probe.eot)
            ]
        ).mean(0)
        forwards += len(path) * probe.eot
        curve = loss.view(m, SURFACE_SAMPLES)
        variation = curve.diff(dim=1).abs().sum(1)
        net = (curve[:, -1] - curve[:, 0]).abs().clamp_min(1e-12)
        roughness[name] = float((variation / net).median())
    gradients = m * probe.eot  # the gradient-sign direction
    probe.spend("loss-surface", Cost(gradients=gradients, forwards=forwards + gradients))
    worst = max(roughness.values())
    return Finding(
        "loss-surface",
        worst <= ROUGHNESS_LIMIT,
        f"along {SURFACE_SAMPLES} samples to the ball's boundary the loss varies "
        f"{roughness['gradient']:.3g}x its net change in the gradient-sign direction and "
        f"{roughness['random']:.3g}x in a random one (median of {m} points; smooth "
        f"monotone: 1, warns above {ROUGHNESS_LIMIT:g})",
        {
            "roughness": roughness,
            "limit": ROUGHNESS_LIMIT,
            "points": m,
            "samples": SURFACE_SAMPLES,
            "forwards": forwards,
            "gradients": gradients,
        },
    )


def _transfer_probe(
    probe: _Probe,
    eps: float,
    surrogate: nn.Module | None,
    white: torch.Tensor,
    iters: int,
    tol: float,
) -> Finding:
    """APGD-CE examples crafted on ``surrogate`` for the points the white-box attacks left
    robust, evaluated on the model."""
    if surrogate is None:
        return Finding(
            "transfer",
            True,
            "skipped: no surrogate model given (--surrogate), transfer failure not probed",
            {"skipped": True},
        )
    left = (~white).nonzero().squeeze(1).to(probe.x.device)
    if left.numel() == 0:
        return Finding(
            "transfer",
            True,
            "the white-box attacks broke every point: none left to transfer to",
            {"skipped": False, "points_tried": 0, "transfer_only": 0.0},
        )
    attack = APGD(eps, iters, loss="ce", seed=probe.seed, stream="check-transfer")
    crafted = attack(surrogate, probe.x[left], probe.y[left], index=probe.index[left])
    probe.spend("transfer", crafted.cost)
    broken = probe.misclassified("transfer", crafted.x_adv, probe.y[left])
    only = float(broken.sum()) / probe.x.shape[0]
    return Finding(
        "transfer",
        only <= tol,
        f"APGD-CE examples crafted on the surrogate break {only:.1%} of points the "
        f"white-box attacks on the model left robust ({left.numel()} tried; they break "
        f"{float(crafted.success.float().mean()):.1%} of those on the surrogate)",
        {
            "skipped": False,
            "points_tried": int(left.numel()),
            "transfer_only": only,
            "surrogate_broken": float(crafted.success.float().mean()),
        },
    )


def _randomness(probe: _Probe) -> Finding:
    """Whether the model is randomised and how stable the final verdicts were."""
    if not probe.random:
        return Finding(
            "randomness",
            True,
            "deterministic: two identical calls give the same logits (no EOT needed)",
            {"randomised": False, "eot_iter": 1, "reevals": 1},
        )
    worst = max(probe.flips.values())
    return Finding(
        "randomness",
        worst <= FLIP_LIMIT,
        f"randomised model: every gradient attack averaged {probe.eot} draws (EOT) and each "
        f"final example was evaluated {probe.reevals} times; verdicts flip on "
        f"{probe.flips['apgd-ce']:.1%} of APGD-CE's examples, at most {worst:.1%} for any "
        "attack (broken = misclassified in every evaluation)",
        {
            "randomised": True,
            "eot_iter": probe.eot,
            "reevals": probe.reevals,
            "flips": dict(probe.flips),
        },
    )


def _input_grad(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eot: int = 1
) -> tuple[torch.Tensor, ...]:
    """Input gradient, loss and logits of the cross-entropy, each averaged over ``eot``
    draws (float32, as a naive attack computes them)."""
    grads, losses, outs = [], [], []
    with attack_mode(model, eval_mode=True):
        xg = x.clone().requires_grad_(True)
        for _ in range(eot):
            logits = model(xg)
            loss = F.cross_entropy(logits, y, reduction="none")
            (grad,) = torch.autograd.grad(loss.sum(), xg)
            grads.append(grad.detach())
            losses.append(loss.detach())
            outs.append(logits.detach())
    return tuple(torch.stack(v).mean(dim=0) for v in (grads, losses, outs))


def _gradient_and_logit_probes(probe: _Probe, eps: float) -> list[Finding]:
    gen = torch.Generator().manual_seed(probe.seed)
    noise = (torch.rand(probe.x.shape, generator=gen) * 2 - 1).to(probe.x.device)
    starts = {"clean": probe.x, "random": (probe.x + eps * noise).clamp(0, 1)}
    zero, bad, ce_zero, logits = {}, {}, 0.0, None
    for name, xs in starts.items():
        grad, loss, out = _input_grad(probe.model, xs, probe.y, probe.eot)
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
        grad, loss, logits = _input_grad(model, xa, y, probe.eot)
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
