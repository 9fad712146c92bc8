"""One call from any torch model to a verified, recorded, resumable evaluation."""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from lpbench import distributed
from lpbench.attacks import APGD, FAB
from lpbench.attacks._common import lockstep_on
from lpbench.data import (
    dataset_eval_subset,
    load_arrays,
    load_dataset,
    per_class_subset,
)
from lpbench.data.subsets import subset_size
from lpbench.evaluation.check import NothingToCheck, check
from lpbench.evaluation.evaluate import evaluate
from lpbench.evaluation.journal import discard_journal
from lpbench.evaluation.preflight import ModelFacts, prepared
from lpbench.evaluation.protocol import AttackRequest, CustomPGD, Sources, resolve_attacks
from lpbench.evaluation.result import EvaluationResult
from lpbench.evaluation.schedule import UNIVERSAL_SOURCES_PER_CLASS
from lpbench.evaluation.specs import NamedAttack
from lpbench.evaluation.verify import RANDOMISED_RECHECKS, keyed_noise, predict
from lpbench.machine import machine_facts
from lpbench.runtime import default_batch_rows
from lpbench.version import __version__


class _CheckSettings(TypedDict):
    """Keywords of :func:`lpbench.check` that ``adapt`` sets."""

    iters: int
    restarts: int
    queries: int
    reevals: int


#: Settings of the check ``adapt`` runs before building ``auto`` (cheaper than the CLI's).
ADAPT_CHECK: _CheckSettings = {"iters": 20, "restarts": 3, "queries": 250, "reevals": 5}


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over the model's state dict (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def build_manifest(
    model: nn.Module,
    attacks: Sequence[NamedAttack],
    *,
    eps: float,
    seed: int,
    indices: Sequence[int],
    device: torch.device,
    batch_size: int,
    world_size: int,
    data: dict[str, Any],
    randomised: bool = False,
    lockstep: bool | None = None,
) -> dict[str, Any]:
    """Everything needed to reproduce an evaluation, and to refuse a mismatched resume
    (``randomised``: a randomised model, whose resume needs the same batch size and
    process count; ``lockstep`` as given to :func:`~lpbench.evaluation.evaluate.evaluate`,
    recorded as whether any of ``attacks`` runs in lock step on ``device``)."""
    index_bytes = np.asarray(indices, dtype=np.int64).tobytes()
    return {
        "eps": float(eps),
        "eps_repr": repr(float(eps)),
        "seed": int(seed),
        "attacks": [{"label": a.label, **a.config()} for a in attacks],
        "data": data,
        "subset_sha256": hashlib.sha256(index_bytes).hexdigest(),
        "weights_sha256": weights_sha256(model),
        "lpbench": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "machine": machine_facts(device),
        # TF32 rounds CUDA matmuls/convolutions to a 10-bit mantissa: verdicts of examples
        # near the boundary can differ from float32 (and from a CPU re-run).
        "tf32": {
            "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32),
        }
        if device.type == "cuda"
        else None,
        "batch_size": int(batch_size),
        "world_size": int(world_size),
        "lockstep": any(
            lockstep_on(each.attack.lockstep if lockstep is None else lockstep, device)
            for each in attacks
            if isinstance(each.attack, (APGD, FAB))
        ),
        "randomised": bool(randomised),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def benchmark(
    model: nn.Module,
    data: str | tuple[torch.Tensor, torch.Tensor] = "mnist-digits",
    *,
    preset: str | None = None,
    custom: CustomPGD | None = None,
    attacks: Sequence[NamedAttack] | None = None,
    eps: float | None = None,
    points: int | None = None,
    subset_seed: int = 0,
    attack_seed: int = 0,
    data_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    show_progress: bool = True,
    out: str | Path | None = None,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    budget: int | None = None,
    adapt: bool = False,
    exhaustive: bool = False,
    sources: tuple[torch.Tensor, torch.Tensor] | None = None,
    dataset: str | None = None,
    eot_iter: int | None = None,
    lockstep: bool | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` on a data set's fixed, seeded test subset, or on given tensors.

    ``data`` is a data-set name (default: the shipped ``"mnist-digits"``; its test split,
    ``points`` seeded points of it, plus clean accuracy on the whole split) or a pair
    ``(x, y)`` of inputs in [0, 1] and labels (all of them are used, ``points`` aside).
    ``points`` None: 1000, or the whole split when it is smaller; more than the split
    holds is refused (ValueError), as are inputs that are not N x C x H x W floats in
    [0, 1], hold NaN, or are empty, and models whose output is not one tensor of logits:
    all before any attack runs. Runs ``preset`` (None: ``"strong"``), a ``custom`` PGD or the
    given ``attacks`` (which must use ``eps``), as
    :func:`lpbench.evaluation.protocol.resolve_attacks` decides (``eps=None``: the data set's
    default radius; for tensors, ``dataset`` names the data set they come from, whose radius and
    baseline attack then apply, else a generic baseline), keeps the worst case per point over
    every attack and restart and re-checks the adversarial examples. ``result.meta`` holds the
    reproducibility manifest. With ``out`` the results are saved there (and the adversarial
    examples beside), and finished blocks are journalled in ``OUT.journal/`` so that a killed
    run continues with ``resume=True``. Under ``torchrun`` the points are split over the
    processes and rank 0 writes the file. The caller's model keeps its mode and device.
    ``preset="auto"`` runs the budgeted schedule (``budget`` gradients + queries per
    point; ``exhaustive`` keeps its Square from giving up points); ``result.meta["schedule"]``
    then holds the budget, each attack's cap and the exact spend. ``preset="strong"`` (the
    default) runs the data set's baseline, then that schedule, exhaustive, at
    :data:`lpbench.evaluation.schedule.AUTO_CONTAINS_AA_BUDGET` on the points the baseline
    leaves (every attack of ``aa-standard`` to its end; the schedule's spend leaves the
    baseline out); ``"strong-pgd"`` is the PGD set
    ``strong`` meant before. The schedule's universal
    perturbations are found on ``sources`` (images and labels, not the points evaluated):
    by default :func:`universal_sources` of the data set's training split; with tensors,
    only when given (else ``auto`` starts with FGSM, and the schedule says why). Of given
    sources at most :data:`~lpbench.evaluation.schedule.UNIVERSAL_SOURCES_PER_CLASS` per
    class are used, drawn with ``attack_seed``
    (:func:`~lpbench.evaluation.schedule.capped_sources`), so their cost is a fixed shared
    one whatever the number of sources or points: ``result.cost()["shared"]`` and the
    schedule's ``shared_spent``, apart from the per-point cost. With
    ``adapt`` (``auto``
    only), :func:`lpbench.check` first probes the evaluation points (:data:`ADAPT_CHECK`
    settings) and each warning raises the budget of the attack that can expose it
    (:func:`raise_budgets`); the schedule report then holds the check's verdict and
    ``raised``. The model's facts (class count, ReLUs, contract) are established once, by
    :func:`lpbench.evaluation.preflight.prepared`. A randomised model (two identical calls
    give different logits) is refused unless ``eot_iter`` is given (every gradient averaged
    over that many draws; it then runs ``"aa-rand"``, AutoAttack's version for randomised
    defenses, unless ``"baseline"`` or a custom PGD is asked for) or the preset is
    ``"aa-rand"``; its examples count as adversarial only when every one of
    :data:`~lpbench.evaluation.verify.RANDOMISED_RECHECKS` draws misclassifies them, and
    ``result.meta["randomised"]`` says so. ``eot_iter`` on a deterministic model is refused.
    ``lockstep`` (None: on CUDA devices only) runs a point's restarts and targets (APGD,
    APGD-T, FAB-T) in one batch, points grouped to fit ``batch_size`` rows: the same
    results in fewer passes through the model, for more gradients on the points broken
    before their last target, whose later targets go on until then (a point's cost, like
    its result, does not depend on the other points); the manifest records it.
    """
    if isinstance(data, str):
        if dataset not in (None, data):
            raise ValueError(f"data {data!r} and dataset {dataset!r} name different data sets")
        dataset = data
    request = AttackRequest(
        preset, dataset, eps, custom, attacks, budget, exhaustive, adapt, eot_iter
    )
    request.check()  # before any data is loaded
    shard = distributed.setup(device)
    device = shard.device
    batch_size = batch_size or default_batch_rows(device)

    full_test = None
    if isinstance(data, str):
        test = load_dataset(data, "test", data_dir=data_dir, progress=show_progress)
        size = subset_size(points, len(test), f"the test split of {data}")
        index_array = dataset_eval_subset(data, len(test), size, seed=subset_seed)
        subset = test.subset(index_array)
        x, y, indices = subset.images, subset.labels, [int(i) for i in index_array]
        full_test = test
        data_info: dict[str, Any] = {
            "dataset": dataset,
            "split": "test",
            "subset": {"seed": subset_seed, "size": len(indices), "test_set_size": len(test)},
        }
    else:
        x, y = data
        indices = list(range(len(x)))
        tensors = {"points": len(x), "shape": list(x.shape[1:])}
        data_info = {"dataset": dataset, "tensors": tensors}
    source: Sources | None = sources
    if sources is None and isinstance(data, str):
        source = partial(universal_sources, data, data_dir=data_dir, seed=attack_seed)
    with prepared(model, x, y, device, randomised_ok=request.randomised_ok) as facts:
        check_first = partial(_adapt_check, model, x, y, dataset, attack_seed, facts)
        chosen = resolve_attacks(
            request,
            adapt=check_first,
            facts=facts,
            sources=source,
            no_sources="no sources given (benchmark(..., sources=(images, labels)))",
            seed=attack_seed,
        )
        run = chosen.attacks
        manifest = build_manifest(
            model,
            run,
            eps=chosen.eps,
            seed=attack_seed,
            indices=indices,
            device=device,
            batch_size=batch_size,
            world_size=shard.world_size,
            data=data_info,
            randomised=facts.randomised,
            lockstep=lockstep,
        )
        journal = None if out is None else Path(out).with_suffix(".journal")
        result = evaluate(
            model,
            x,
            y,
            run,
            indices=indices,
            batch_size=batch_size,
            show_progress=show_progress and shard.is_main,
            journal=journal,
            resume=resume,
            manifest=manifest,
            shard=shard,
            facts=facts,
            lockstep=lockstep,
        )
        result.meta = {
            "lpbench_version": __version__,
            **(meta or {}),
            **data_info,
            "preset": chosen.preset,
            "score": {a.label: a.attack.config().get("score", "any") for a in run},
            "device": str(device),
            "manifest": manifest,
        }
        if chosen.schedule is not None:
            result.meta["schedule"] = chosen.schedule.report(result)
        if facts.randomised:
            result.meta["randomised"] = {
                "eot_iter": sorted({a.attack.config().get("eot_iter", 1) for a in run}),
                "rechecks": RANDOMISED_RECHECKS,
                "noise": "torch's global generator, seeded per block of points",
            }
        if full_test is not None:
            with keyed_noise(facts.randomised, device, "full test", len(full_test.labels)):
                pred = predict(model, full_test.images, batch_size, device)
            result.meta["clean_accuracy_full_test"] = float(
                (pred == full_test.labels).float().mean()
            )
            result.forwards_outside_attacks["full_test"] = len(full_test.labels)
    if out is not None and shard.is_main:
        result.save(out)
        if journal is not None:
            discard_journal(journal)
    return result


def _adapt_check(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    dataset: str | None,
    seed: int,
    facts: ModelFacts,
    eps: float,
) -> dict[str, Any]:
    """``check``'s verdict and warned probes on the evaluation points, for ``adapt``."""
    try:
        report = check(model, x, y, eps, dataset=dataset, seed=seed, facts=facts, **ADAPT_CHECK)
    except NothingToCheck as error:  # robust accuracy is 0 anyway: nothing to raise
        return {"verdict": f"skipped: {error}", "exit_code": None, "warnings": []}
    return {
        "verdict": report.verdict,
        "exit_code": report.exit_code,
        "warnings": [f.probe for f in report.warnings],
        "settings": ADAPT_CHECK,
    }


def universal_sources(
    dataset: str,
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    per_class: int = UNIVERSAL_SOURCES_PER_CLASS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` training images of each class (:func:`per_class_subset`, seeded), the
    sources of ``auto``'s universal perturbations: never the test points evaluated.
    ``auto`` uses at most :data:`UNIVERSAL_SOURCES_PER_CLASS` of each class (the default)
    whatever ``per_class`` is."""
    images, labels = load_arrays(dataset, "train", data_dir=data_dir, progress=False)
    chosen = per_class_subset(np.asarray(labels), per_class, seed=seed)
    return (  # only the chosen images become floats (a training split may be gigabytes)
        torch.from_numpy(np.asarray(images[chosen])).float().div_(255),
        torch.from_numpy(np.asarray(labels[chosen])),
    )


def evaluate_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    preset: str | None = None,
    custom: CustomPGD | None = None,
    attacks: Sequence[NamedAttack] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    show_progress: bool = True,
    budget: int | None = None,
    adapt: bool = False,
    exhaustive: bool = False,
    sources: tuple[torch.Tensor, torch.Tensor] | None = None,
    dataset: str | None = None,
    eot_iter: int | None = None,
    lockstep: bool | None = None,
) -> EvaluationResult:
    """Robust accuracy of any torch model on ``(x, y)`` (AutoAttack-style entry point).

    ``model`` maps inputs in [0, 1] to logits (normalisation inside the model; tuple or
    dict outputs through :class:`lpbench.LogitsOf`). Points are identified by their
    position in ``x``. ``preset`` (None: ``"strong"``), ``custom`` and ``attacks`` as in
    :func:`benchmark`. The model's mode and device are restored afterwards. ``sources``
    (labelled images, e.g. from the training set) let ``auto`` start with universal
    perturbations; at most
    :data:`~lpbench.evaluation.schedule.UNIVERSAL_SOURCES_PER_CLASS` per class are used
    (drawn with ``seed``), a shared cost reported apart from the per-point one.
    ``dataset`` names the data set ``x`` comes from, so that its baseline attack is the one
    run (else a generic PGD baseline). ``eot_iter``: the model is randomised;
    ``lockstep``: a point's targets and restarts in one batch (both: see
    :func:`benchmark`).
    """
    return benchmark(
        model,
        (x, y),
        preset=preset,
        custom=custom,
        attacks=attacks,
        eps=eps,
        attack_seed=seed,
        device=device,
        batch_size=batch_size,
        show_progress=show_progress,
        budget=budget,
        adapt=adapt,
        exhaustive=exhaustive,
        sources=sources,
        dataset=dataset,
        eot_iter=eot_iter,
        lockstep=lockstep,
    )
