"""Find, load and add zoo entries (see :mod:`lpbench.zoo`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lpbench.checkpoint import (
    WEIGHTS_NAME,
    ZOO_DIR,
    ZooError,
    entry_name,
    load_checkpoint,
    read_checkpoint_meta,
    zoo_names,
    zoo_path,
)
from lpbench.data import sha256sum
from lpbench.io import atomic_write, write_json


@dataclass(frozen=True)
class ZooEntry:
    """A zoo model: its name (``dataset/name``), folder and metadata."""

    name: str
    folder: Path
    meta: dict[str, Any]

    @property
    def zoo(self) -> dict[str, Any]:
        """The ``zoo`` block: command, training images and time, accuracies."""
        return self.meta["zoo"]

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS_NAME


def get_entry(name: str) -> ZooEntry:
    """The entry ``name`` with its metadata; ZooError when unknown or without a zoo block."""
    weights = zoo_path(name)
    meta = read_checkpoint_meta(weights)
    if "zoo" not in meta:
        raise ZooError(f"{weights.with_suffix('.json')} has no 'zoo' block")
    return ZooEntry(entry_name(name), weights.parent, meta)


def list_entries() -> list[ZooEntry]:
    """Every zoo entry, sorted by name."""
    return [get_entry(name) for name in zoo_names()]


def load(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """Zoo model ``name`` as a float32 module in eval mode, e.g. ``load("mnist-digits/clp")``."""
    model, _ = load_checkpoint(zoo_path(name), device=device)
    return model


def export_to_zoo(
    checkpoint: str | Path,
    name: str,
    zoo: Mapping[str, Any],
    root: Path = ZOO_DIR,
) -> Path:
    """Copy a checkpoint into the zoo as float16 weights, with ``zoo`` as its ``zoo`` block.

    ``name`` is ``<dataset>/<entry>`` and its data set must be the checkpoint's. The block
    should hold at least ``command`` and ``clean_accuracy`` (of the float16 weights, which
    the zoo test checks); the SHA-256 of the float32 source file is added.
    """
    source = Path(checkpoint)
    meta = read_checkpoint_meta(source)
    dataset, _, entry = name.partition("/")
    if dataset != meta["dataset"] or not entry or "/" in entry:
        raise ZooError(f"zoo name {name!r} must be {meta['dataset']}/<entry>")
    weights = source / WEIGHTS_NAME if source.is_dir() else source
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(weights).items()}
    out = root / dataset / entry / WEIGHTS_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: save_file(state, str(tmp), metadata={"lpbench": "1"}))
    block = {"name": name, "precision": "float16", **json.loads(json.dumps(dict(zoo)))}
    block["source_sha256"] = sha256sum(weights)
    write_json(out.with_suffix(".json"), {**meta, "zoo": block})
    return out
