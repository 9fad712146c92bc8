"""The attack probes of ``lpbench check`` (see :mod:`lpbench.evaluation.check`) and
:func:`run_probes`, which runs every probe on a :class:`Probe`."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from lpbench.attacks import APGD, APGDT, FGSM, PGD, Square
from lpbench.evaluation.check.findings import Finding
from lpbench.evaluation.check.probe import Probe
from lpbench.evaluation.check.surface import (
    gradient_and_logit_probes,
    surface_probe,
    trace_probes,
)
from lpbench.evaluation.protocol import get_protocol
from lpbench.evaluation.schedule import AUTO_SMOOTH_BETAS
from lpbench.evaluation.specs import AttackSpec, parse_step

#: Multiples of eps of the sweep (capped at 1; eps = 1 is always added).
SWEEP = (0.25, 0.5, 1.0, 2.0, 4.0)

#: Fraction of points whose verdict may flip between re-evaluations of a randomised model.
FLIP_LIMIT = 0.1


def _acc(broken: torch.Tensor) -> float:
    return 1.0 - float(broken.float().mean())


def _relu_probe(
    probe: Probe,
    eps: float,
    iters: int,
    white: torch.Tensor,
    accuracy: dict[str, float],
    tol: float,
    classes: int,
) -> Finding:
    """APGD-DLR through each smoothed ReLU backward pass of ``auto`` against the plain
    white-box attacks (``accuracy["smooth-relu"]``: what the smoothed runs leave)."""
    relu = probe.relu
    if not relu or classes < 3:
        why = probe.no_relu if not relu else "the DLR loss needs 3 classes"
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


def run_probes(
    probe: Probe,
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
    assert isinstance(spec, AttackSpec)  # every protocol's baseline is a PGD AttackSpec
    base = probe.broken(
        "baseline", spec.build(eps, seed=seed, max_batch=10_000, eot_iter=eot).attack
    )
    ce = probe.broken(
        "apgd-ce", APGD(eps, iters, loss="ce", eot_iter=eot, seed=seed, stream="check-apgd-ce")
    )
    classes = probe.classes
    tgt = torch.zeros_like(ce)
    if classes >= 4:  # the targeted DLR loss needs four classes
        apgd_t = APGDT(eps, iters, targets=3, eot_iter=eot, seed=seed, stream="check-apgd-t")
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

    probe.say("input gradients and logits ...")
    findings += gradient_and_logit_probes(probe, eps)

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

    probe.say("attack traces ...")
    findings += trace_probes(probe, eps, max(iters, 8), tol)
    probe.say("loss surfaces ...")
    findings.append(surface_probe(probe, eps, surface_points))
    if surrogate is not None:
        probe.say("transfer from the surrogate ...")
    findings.append(_transfer_probe(probe, eps, surrogate, white, iters, tol))
    findings.append(_randomness(probe))
    probe.say(f"{len(findings)} probes done")
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


def _transfer_probe(
    probe: Probe,
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


def _randomness(probe: Probe) -> Finding:
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
        "attack (broken = misclassified in every evaluation); evaluate it as randomised: "
        "--preset aa-rand or --eot-iter N",
        {
            "randomised": True,
            "eot_iter": probe.eot,
            "reevals": probe.reevals,
            "flips": dict(probe.flips),
        },
    )
