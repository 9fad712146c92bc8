"""Options shared by several commands, defined once."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpbench.data import DATASETS
from lpbench.evaluation import DEFAULT_EPS
from lpbench.settings import fraction, option, positional, positive_int

COMMON = "data, device and progress"
CHECKPOINT_HELP = "run folder, model.safetensors from `lpbench train`, or zoo:DATASET/NAME"
EPS_HELP = (
    "L-inf radius, a number or a fraction such as 8/255 (default: the data set's: "
    + ", ".join(f"{eps:.3g} {name}" for name, eps in DEFAULT_EPS.items())
    + ")"
)


@dataclass(frozen=True, kw_only=True)
class ProgressOption:
    """``--no-progress``."""

    no_progress: bool = option(False, "hide progress bars", group=COMMON)

    @property
    def show_progress(self) -> bool:
        """Whether to draw progress bars."""
        return not self.no_progress


@dataclass(frozen=True, kw_only=True)
class DataOptions(ProgressOption):
    """Where the data lies and where the model runs."""

    data_dir: Path | None = option(
        None,
        "folder with the data set's files (else $LPBENCH_DATA, the user cache, then "
        "Debian's Fashion-MNIST package)",
        type=Path,
        group=COMMON,
    )
    device: str = option(
        "auto", "'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'", group=COMMON
    )


def checkpoint_argument() -> Any:
    """The model a command runs on."""
    return positional(CHECKPOINT_HELP)


def dataset_option(help: str = "must match the checkpoint's data set (default: its own)") -> Any:
    """``--dataset``: one of the known data sets, None for the checkpoint's (or a default)."""
    return option(None, help, choices=sorted(DATASETS))


def radius(flag: str) -> Callable[[str], float]:
    """argparse type: a number or a fraction ``a/b`` (``8/255``) in (0, 1], named ``flag``
    in its errors."""
    number = fraction(flag)

    def parse(text: str) -> float:
        head, slash, tail = text.partition("/")
        if not slash:
            return number(text)
        try:
            value = float(head) / float(tail)
        except (ValueError, ZeroDivisionError):
            raise argparse.ArgumentTypeError(
                f"{flag} must be a number or a fraction such as 8/255, got {text!r}"
            ) from None
        return number(repr(value))

    return parse


def eps_option(help: str = EPS_HELP) -> Any:
    """``--eps``: the L-inf radius (``0.3`` or ``8/255``), None for the data set's."""
    return option(None, help, type=radius("--eps"))


def points_option(default: int) -> Any:
    """``--points``: the size of the fixed, seeded subset of the test split."""
    return option(
        None,
        f"size of the fixed evaluation subset, at most the test split's (default: {default}, "
        "or the whole split when it is smaller)",
        type=positive_int,
    )


def subset_seed_option() -> Any:
    """``--subset-seed``: which fixed random subset of the test set."""
    return option(0, "seed of the fixed random subset of test points", type=int)


def emit(lines: Iterable[str]) -> None:
    """Print ``lines``, one each."""
    for line in lines:
        print(line, flush=True)
