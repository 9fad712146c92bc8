"""Device selection, seeding and progress bars."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

T = TypeVar("T")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" picks CUDA when available; an unavailable explicit device is an error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def progress(
    iterable: Iterable[T],
    *,
    desc: str,
    total: int | None = None,
    enabled: bool = True,
    unit: str = "it",
) -> Iterator[T]:
    """A tqdm bar on stderr; ``enabled=False`` gives the bare iterable."""
    if not enabled:
        yield from iterable
        return
    yield from tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True)


def default_batch_rows(device: torch.device) -> int:
    """Rows per forward pass that run fastest: small on CPU (cache), large on GPUs.

    Measured for LeNet on a 2-core CPU: 128-256 rows give ~1.6x the images/s of 2,048.
    """
    return 8192 if device.type == "cuda" else 256
