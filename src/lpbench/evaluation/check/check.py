"""The :func:`check` entry point: the pre-flight, the correctly classified points, the
probes (:mod:`lpbench.evaluation.check.probes`) and the report."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from lpbench.evaluation.check.findings import CheckReport, NothingToCheck
from lpbench.evaluation.check.probe import Probe
from lpbench.evaluation.check.probes import run_probes
from lpbench.evaluation.contract import randomised
from lpbench.evaluation.preflight import ModelFacts, prepared
from lpbench.evaluation.verify import predict
from lpbench.runtime import evaluation_mode, resolve_device


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
    surrogate: nn.Module | None = None,
    eot_iter: int = 10,
    reevals: int = 10,
    surface_points: int = 20,
    facts: ModelFacts | None = None,
    show_progress: bool = False,
) -> CheckReport:
    """Probe ``model`` on ``(x, y)`` at radius ``eps`` for gradient masking; see the module.

    ``dataset`` picks the baseline attack of the gap probe (None: PGD-40, step eps/10).
    ``iters``: iterations of the APGD probes and of the traced PGD; ``restarts``: PGD
    restarts of the restart probe; ``queries``: Square's queries (``report.sweep``: robust
    accuracy against eps, drawn by :func:`lpbench.diagnostics.plot_sweep`). ``surrogate``:
    a model to transfer APGD-CE examples from (the transfer probe is skipped without one).
    A randomised model gets ``eot_iter`` draws per gradient in every gradient attack and
    ``reevals`` evaluations of each final example. ``surface_points``: points of the
    loss-surface probe. The model's (and the surrogate's) mode and device are restored.
    ``facts``: the model's pre-flight
    (:func:`~lpbench.evaluation.preflight.prepared`), run by a caller that holds the model
    in eval mode on ``facts.device`` (which then replaces ``device``); without, it runs
    here (without the model contract: a randomised model is probed with EOT).
    ``show_progress``: a line on stderr as each probe's attack starts and ends.
    """
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    if min(eot_iter, reevals, surface_points) < 1:
        raise ValueError("eot_iter, reevals and surface_points must be >= 1")
    settings = Settings(
        dataset, iters, restarts, queries, seed, eot_iter, reevals, surface_points, show_progress
    )
    if facts is not None:
        return _check(model, x, y, eps, settings, facts, surrogate)
    device_t = resolve_device(device) if not isinstance(device, torch.device) else device
    with prepared(model, x, y, device_t, contract=False) as found:
        return _check(model, x, y, eps, settings, found, surrogate)


@dataclass(frozen=True)
class Settings:
    """The probes' settings of one :func:`check` (see there)."""

    dataset: str | None
    iters: int
    restarts: int
    queries: int
    seed: int
    eot_iter: int
    reevals: int
    surface_points: int
    show_progress: bool = False


def _check(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    s: Settings,
    facts: ModelFacts,
    surrogate: nn.Module | None,
) -> CheckReport:
    """:func:`check` on a model the pre-flight has put in eval mode on ``facts.device``."""
    device_t = facts.device
    x, y = x.detach().cpu(), y.detach().cpu()
    held = nullcontext() if surrogate is None else evaluation_mode(surrogate, device_t)
    with held:
        pred = predict(model, x, 1000, device_t)
        keep = pred == y
        xc, yc = x[keep].to(device_t), y[keep].to(device_t)
        n = int(keep.sum())
        if n == 0:
            raise NothingToCheck(
                "the model classifies none of the points correctly: nothing to check"
            )
        index = torch.nonzero(keep).squeeze(1).to(device_t)
        assert facts.num_classes is not None  # there are points
        random = randomised(model, xc[:8])
        probe = Probe(
            model,
            xc,
            yc,
            index,
            s.seed,
            classes=facts.num_classes,
            relu=facts.computes_relu,
            no_relu=facts.smooth_skipped(),
            random=random,
            eot=s.eot_iter if random else 1,
            reevals=s.reevals if random else 1,
            show_progress=s.show_progress,
        )
        findings, accuracy, sweep = run_probes(
            probe,
            eps,
            s.dataset,
            iters=s.iters,
            restarts=s.restarts,
            queries=s.queries,
            surrogate=surrogate,
            surface_points=s.surface_points,
        )
    cost = {name: c.to_dict() for name, c in probe.cost.items()}
    return CheckReport(eps, len(x), n, findings, accuracy, sweep, cost)
