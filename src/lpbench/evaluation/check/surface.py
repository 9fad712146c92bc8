"""Probes of ``lpbench check`` that read the model's gradients and losses directly, without
an attack: gradients and logits, PGD's traced loss and the loss surface."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lpbench.attacks._common import forward, zero_gradient
from lpbench.attacks.base import Cost, attack_mode
from lpbench.attacks.keyed import derive_key, keyed_uniform
from lpbench.evaluation.check.findings import Finding
from lpbench.evaluation.check.probe import Probe

#: Loss samples per direction of the loss-surface probe (the point and 32 steps to the
#: ball's boundary) and the median roughness above which it warns.
SURFACE_SAMPLES = 33
ROUGHNESS_LIMIT = 3.0


def surface_probe(probe: Probe, eps: float, points: int) -> Finding:
    """Cross-entropy sampled from each point to the ball's boundary along the gradient's
    sign and a keyed random sign; roughness = total variation / net change."""
    m = min(points, probe.x.shape[0])
    x, y, index = probe.x[:m], probe.y[:m], probe.index[:m]
    grad, _, _ = input_grad(probe.model, x, y, probe.eot)
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


def input_grad(
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


def gradient_and_logit_probes(probe: Probe, eps: float) -> list[Finding]:
    gen = torch.Generator().manual_seed(probe.seed)
    noise = (torch.rand(probe.x.shape, generator=gen) * 2 - 1).to(probe.x.device)
    starts = {"clean": probe.x, "random": (probe.x + eps * noise).clamp(0, 1)}
    zero, bad, ce_zero, logits = {}, {}, 0.0, None
    for name, xs in starts.items():
        grad, loss, out = input_grad(probe.model, xs, probe.y, probe.eot)
        flat = grad.flatten(1)
        bad[name] = float((~torch.isfinite(flat)).any(1).float().mean())
        zero[name] = float(zero_gradient(grad).float().mean())
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


def trace_probes(probe: Probe, eps: float, iters: int, tol: float) -> list[Finding]:
    """PGD on float32 cross-entropy from the clean point, its loss traced per iteration."""
    model, x, y = probe.model, probe.x, probe.y
    lower, upper = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    xa = x.clone()
    history, any_adv = [], torch.zeros(len(x), dtype=torch.bool, device=x.device)
    last_adv = any_adv
    for it in range(iters + 1):
        grad, loss, logits = input_grad(model, xa, y, probe.eot)
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
