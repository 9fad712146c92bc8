"""Checkpoints: safetensors weights plus JSON metadata. Loading never executes code.

A checkpoint is named by its run folder, its ``model.safetensors`` (or the ``.json`` beside
it) or ``zoo:<dataset>/<name>``, a zoo entry. This module sits below :mod:`lpbench.training`
and :mod:`lpbench.zoo`, which both build on it: it knows where the zoo's files are but not
the zoo's records. The resumable training state (weights, optimizer, extra tensors in one
file) is written and read here too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from lpbench.io import atomic_write, read_json, write_json
from lpbench.models import build_model

FORMAT = "lpbench-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"

#: The zoo's entries: ``ZOO_DIR/<dataset>/<name>/model.safetensors`` (see :mod:`lpbench.zoo`).
ZOO_DIR = Path(__file__).parent / "zoo" / "files"
ZOO_PREFIX = "zoo:"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or not for the requested model or data set."""


class ZooError(CheckpointError):
    """An unknown zoo entry, or one whose files are incomplete."""


def is_zoo_ref(ref: str | Path) -> bool:
    """Whether ``ref`` is written ``zoo:<dataset>/<name>``."""
    return str(ref).startswith(ZOO_PREFIX)


def entry_name(ref: str | Path) -> str:
    """``dataset/name`` of a zoo reference, with or without ``zoo:``."""
    return str(ref).removeprefix(ZOO_PREFIX)


def zoo_names() -> list[str]:
    """The names (``dataset/name``) of every zoo entry, sorted."""
    return sorted(
        f"{path.parent.parent.name}/{path.parent.name}"
        for path in ZOO_DIR.glob(f"*/*/{WEIGHTS_NAME}")
    )


def zoo_path(name: str | Path) -> Path:
    """The weights file of entry ``name`` (with or without ``zoo:``); ZooError if unknown."""
    name = entry_name(name)
    names = zoo_names()
    if name not in names:
        raise ZooError(
            f"no zoo model {name!r}; the zoo has: {', '.join(names) or 'nothing'} "
            "(`lpbench zoo list`)"
        )
    return ZOO_DIR / name / WEIGHTS_NAME


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors weights) and ``path.with_suffix('.json')`` atomically."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"lpbench": "1"}))
    write_json(path.with_suffix(".json"), meta)
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a run folder, the .safetensors file, its .json or ``zoo:<dataset>/<name>``."""
    if is_zoo_ref(path):
        return zoo_path(path)
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    elif path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path} (give a run folder or a .safetensors "
            "file written by `lpbench train`)"
        )
    if not path.with_suffix(".json").is_file():
        raise CheckpointError(
            f"checkpoint {path} has no metadata file {path.with_suffix('.json').name} beside it"
        )
    return path


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint."""
    weights = resolve_checkpoint(path)
    try:
        meta = read_json(weights.with_suffix(".json"))
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{weights.with_suffix('.json')} is not an lpbench checkpoint")
    return meta


def load_checkpoint(
    path: str | Path,
    *,
    dataset: str | None = None,
    model: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the checkpoint's model, load its weights and return (model in eval mode, meta).

    ``dataset`` / ``model``, when given, must match the checkpoint's.
    """
    weights = resolve_checkpoint(path)
    meta = read_checkpoint_meta(weights)
    for key, wanted in (("dataset", dataset), ("model", model)):
        if wanted is not None and meta.get(key) != wanted:
            raise CheckpointError(
                f"checkpoint {weights} is for {key} {meta.get(key)!r}, not {wanted!r}"
            )
    net = build_model(
        meta["model"],
        tuple(meta["input_shape"]),
        meta["num_classes"],
        **meta.get("model_options", {}),
    )
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"cannot read weights {weights}: {err}") from err
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"weights in {weights} do not fit model {meta['model']!r} "
            f"({_misfit(net.state_dict(), state) or str(err).splitlines()[0]}): is the "
            "model named in model.json the one these weights were trained as?"
        ) from err
    return net.to(device).eval(), meta


def _misfit(wanted: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """In one line, how the tensors ``found`` differ from those a model ``wanted``."""
    missing = [k for k in wanted if k not in found]
    extra = [k for k in found if k not in wanted]
    shapes = [k for k in wanted if k in found and wanted[k].shape != found[k].shape]
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensor(s) missing, e.g. {missing[0]!r}")
    if extra:
        parts.append(f"{len(extra)} unexpected, e.g. {extra[0]!r}")
    if shapes:
        k = shapes[0]
        parts.append(
            f"{len(shapes)} of another shape, e.g. {k!r}: {tuple(found[k].shape)} where the "
            f"model has {tuple(wanted[k].shape)}"
        )
    return "; ".join(parts)


def save_train_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Everything needed to resume, in one atomically written safetensors file.

    ``extra`` holds more named tensors (e.g. the weight averages), restored by
    :func:`load_train_state` into the dict passed to it.
    """
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    for key, value in (extra or {}).items():
        tensors[f"extra.{key}"] = value.detach().contiguous().cpu()
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
    header = {"meta": json.dumps(meta), "param_groups": json.dumps(opt["param_groups"])}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def load_train_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer (and ``extra`` in place) from :func:`save_train_state`."""
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    device = next(model.parameters()).device
    model.load_state_dict(
        {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    )
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(header["param_groups"])})
    for key, target in (extra or {}).items():
        target.copy_(tensors[f"extra.{key}"])
    return json.loads(header["meta"])
