"""The journal of a running evaluation: one file per finished block of points.

Each block's outcome (clean predictions, or one attack's verdicts, per-restart records,
cost and verified adversarial examples) is written atomically as a safetensors file in
the journal folder as soon as it finishes. A resumed evaluation reads the blocks back and
attacks only what is missing; since every random draw is keyed per point, the result is
the one an uninterrupted run gives. The folder also holds the evaluation's manifest, so
a journal is never resumed with other settings, weights or points. A randomised model's
noise is seeded per block, so its journal (manifest ``"randomised": true``) resumes only
with the batch size and process count it started with.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lpbench.io import atomic_write, read_json, write_json

MANIFEST = "manifest.json"
#: The tensor fields of a :class:`Part`, stored as tensors rather than in its header.
TENSORS = ("x_adv", "x_best")

#: Manifest entries that may differ between a run and its resumption: where and how it
#: runs (the device, the machine). None changes an attack's random draws; another device, CPU
#: kind or TF32 setting can still move a verdict near the boundary by rounding.
_MAY_CHANGE = (
    "device",
    "machine",
    "tf32",
    "batch_size",
    "world_size",
    "lockstep",
    "torch",
    "lpbench",
    "python",
    "started",
)


@dataclass
class Part:
    """One finished block: stage 0 is the clean pass, stage k the k-th attack.

    ``positions`` are positions in the evaluation subset. ``hit`` marks the points the
    stage broke (verified), ``mismatch`` those whose adversarial example failed the
    re-check; ``x_adv`` holds the examples of the ``hit`` points, in order, and ``x_best``
    (kept when a later attack is warm-started) the best examples of the others.
    """

    stage: int
    label: str
    positions: list[int]
    clean_pred: list[int] = field(default_factory=list)
    hit: list[bool] = field(default_factory=list)
    mismatch: list[bool] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, int] = field(default_factory=dict)
    wall_time_s: float = 0.0
    x_adv: torch.Tensor | None = None
    x_best: torch.Tensor | None = None

    @property
    def name(self) -> str:
        """Unique within an evaluation: a stage never attacks a position twice."""
        return f"s{self.stage:03d}-p{self.positions[0]:09d}"

    def header(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in TENSORS}


class Journal:
    """A folder of :class:`Part` files plus the manifest they belong to."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def open(cls, folder: str | Path, manifest: dict[str, Any], *, resume: bool) -> Journal:
        """Start a journal, or continue one started with the same manifest (``resume``)."""
        journal = cls(folder)
        path = journal.folder / MANIFEST
        if path.exists():
            if not resume:
                raise FileExistsError(
                    f"{journal.folder} holds an interrupted evaluation: resume it (--resume) "
                    "or delete the folder"
                )
            saved = read_json(path)
            may_change = set(_MAY_CHANGE)
            if saved.get("randomised"):  # its noise depends on how rows are batched
                may_change -= {"batch_size", "world_size", "lockstep"}
            differing = sorted(
                k
                for k in set(saved) | set(manifest)
                if k not in may_change and saved.get(k) != manifest.get(k)
            )
            if differing:
                raise ValueError(
                    f"cannot resume {journal.folder}: it was started with other "
                    f"{', '.join(differing)}; delete it to start afresh"
                )
        else:
            write_json(path, manifest)
        return journal

    def parts(self) -> list[Part]:
        """Every finished block, in stage order."""
        found = []
        for path in sorted(self.folder.glob("s*-p*.safetensors")):
            with safe_open(str(path), framework="pt") as handle:
                header = json.loads(handle.metadata()["part"])
                stored = set(handle.keys())
                tensors = {k: handle.get_tensor(k) for k in TENSORS if k in stored}
            found.append(Part(**header, **tensors))
        return sorted(found, key=lambda p: (p.stage, p.positions[0]))

    def write(self, part: Part) -> None:
        """Store ``part`` atomically."""
        tensors = {
            k: getattr(part, k).contiguous().cpu() for k in TENSORS if getattr(part, k) is not None
        }
        if not tensors:  # safetensors needs at least one tensor
            tensors = {"empty": torch.zeros(0)}
        metadata = {"part": json.dumps(part.header())}
        atomic_write(
            self.folder / f"{part.name}.safetensors",
            lambda tmp: save_file(tensors, str(tmp), metadata=metadata),
        )


def discard_journal(folder: str | Path) -> None:
    """Delete a journal folder once the results it led to are saved."""
    shutil.rmtree(folder, ignore_errors=True)
