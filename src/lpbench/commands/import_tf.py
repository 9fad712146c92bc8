"""``lpbench import-tf``: a TF1 checkpoint of the paper's code as an lpbench run folder."""

from __future__ import annotations

from dataclasses import MISSING, dataclass
from pathlib import Path

from lpbench.commands._options import ProgressOption, emit
from lpbench.settings import Command, option, positional


@dataclass(frozen=True, kw_only=True)
class ImportTFSettings(ProgressOption):
    """``lpbench import-tf PREFIX --arch A --dataset D --out RUN``."""

    checkpoint_prefix: str = positional(
        "checkpoint prefix (e.g. mnist/clp/model.ckpt), or its folder",
        metavar="CHECKPOINT_PREFIX",
    )
    arch: str = option(MISSING, "architecture", choices=("lenet", "resnet20-v2", "resnet50-v2"))
    dataset: str = option(MISSING, "data set", choices=("mnist", "cifar10", "tiny-imagenet"))
    out: Path = option(MISSING, "run folder to create", type=Path, metavar="RUN")
    signed_inputs: bool = option(
        False, "the original fed [-1, 1] (the Tiny ImageNet model fine-tuned from ALP ImageNet)"
    )
    ema: bool = option(
        False,
        "take the moving-average shadows instead of the raw variables (the original "
        "evaluated the raw ones)",
    )


def run(settings: ImportTFSettings) -> int:
    """Import; exit code 0 (a checkpoint that does not fit raises TFImportError: exit 2)."""
    from lpbench.importers import import_tf
    from lpbench.settings import call_with

    path = call_with(import_tf, settings)
    s = settings
    emit([f"imported {s.checkpoint_prefix} as {s.arch} for {s.dataset}: {path}"])
    return 0


COMMAND = Command(
    "import-tf",
    "import a TensorFlow checkpoint of the logit-pairing paper",
    ImportTFSettings,
    run,
    description="Convert a TF1 checkpoint (PREFIX.index + PREFIX.data-*) written by the "
    "original code into an lpbench run folder (safetensors + model.json), checking every "
    "variable, shape and checksum. TensorFlow is not needed.",
)
