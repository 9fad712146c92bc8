"""Import the TensorFlow checkpoints of the logit-pairing paper into lpbench checkpoints.

What the original code did, and how the imported model reproduces it:

- MNIST (``lenet``) and CIFAR-10 (``resnet20-v2``), ``mnist_cifar10/`` of the original
  repository: inputs in [0, 1], NHWC, no other preprocessing; variables ``convN_vars/weights``
  (HWIO), ``convN_vars/biases``, ``fcN_vars/weights`` ((in, out)), ``scipN_vars/weights`` (the
  ResNet's 1x1 projections) and, for the ResNet, batch norm ``batch-norm-convN/{gamma, beta,
  moving_mean, moving_variance}``. LeNet's first dense layer reads the feature map flattened
  in HWC order; its columns are permuted to lpbench's CHW order. Evaluation uses the raw
  variables (the checkpoints hold no moving averages).
- Tiny ImageNet (``resnet50-v2``): slim's ``resnet_v2_50`` (names ``resnet_v2_50/...``, also
  those of the fine-tuned ALP model of tensorflow/models). Inputs in [0, 1], except for the
  model fine-tuned from the ALP ImageNet weights, which the original fed [-1, 1] (its rule:
  'Fine-tuned' in the checkpoint folder); ``signed_inputs=True`` reproduces that inside the
  model. Training kept exponential moving averages of the model variables, but the original
  ``eval.py`` restores with a plain ``Saver()``, so it evaluated the raw variables; they are
  imported by default (``ema=True`` takes the shadows instead).

Optimizer state (Adam/Momentum/RMSProp slots, ``beta1_power``, ``beta2_power``), the global
step and moving-average shadows are known non-model variables, recorded as ignored; any
other variable the map does not name is an error, as is a missing one or a wrong shape.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lpbench.checkpoint import save_checkpoint
from lpbench.data import get_dataset_info
from lpbench.importers.tf_checkpoint import TFCheckpoint, TFCheckpointError
from lpbench.models import build_model
from lpbench.runtime import progress_bar

ARCHS = ("lenet", "resnet20-v2", "resnet50-v2")
OPTIMIZER_SLOTS = ("Adam", "Adam_1", "Momentum", "RMSProp", "RMSProp_1")
EMA_SUFFIX = "ExponentialMovingAverage"
WEIGHTS_NAME = "model.safetensors"  # the name load_checkpoint looks for in a run folder
STEP_VARIABLES = ("global_step", "beta1_power", "beta2_power")


class TFImportError(ValueError):
    """A TensorFlow checkpoint does not fit the requested lpbench model (or is unreadable)."""


@dataclass(frozen=True)
class VarMap:
    """One TF variable and the lpbench tensor it becomes.

    ``layout``: ``copy``; ``conv`` (HWIO -> OIHW); ``dense`` ((in, out) -> (out, in));
    ``dense_hwc`` (a dense layer on an HWC-flattened map -> lpbench's CHW flattening);
    ``conv1x1_dense`` (a 1x1 convolution used as the classifier -> (out, in)).
    """

    tf: str
    key: str
    layout: str = "copy"


def _bn(scope: str, prefix: str) -> list[VarMap]:
    names = (
        ("gamma", "weight"),
        ("beta", "bias"),
        ("moving_mean", "running_mean"),
        ("moving_variance", "running_var"),
    )
    return [VarMap(f"{scope}/{tf}", f"{prefix}.{key}") for tf, key in names]


def lenet_map() -> list[VarMap]:
    """The original LeNet's variables -> lpbench's ``LeNet``."""
    return [
        VarMap("conv1_vars/weights", "features.0.weight", "conv"),
        VarMap("conv1_vars/biases", "features.0.bias"),
        VarMap("conv2_vars/weights", "features.3.weight", "conv"),
        VarMap("conv2_vars/biases", "features.3.bias"),
        VarMap("fc1_vars/weights", "classifier.1.weight", "dense_hwc"),
        VarMap("fc1_vars/biases", "classifier.1.bias"),
        VarMap("fc2_vars/weights", "classifier.3.weight", "dense"),
        VarMap("fc2_vars/biases", "classifier.3.bias"),
    ]


def resnet20_map() -> list[VarMap]:
    """``ResNet20_v2``: conv1 is the stem, unit i holds conv(2+2i), conv(3+2i), scip(i/3+1)."""
    maps = [VarMap("conv1_vars/weights", "stem.weight", "conv")]
    for i in range(9):
        a, b = 2 + 2 * i, 3 + 2 * i
        maps += _bn(f"batch-norm-conv{a}", f"units.{i}.bn1")
        maps.append(VarMap(f"conv{a}_vars/weights", f"units.{i}.conv1.weight", "conv"))
        maps += _bn(f"batch-norm-conv{b}", f"units.{i}.bn2")
        maps.append(VarMap(f"conv{b}_vars/weights", f"units.{i}.conv2.weight", "conv"))
        if i % 3 == 0:
            maps.append(
                VarMap(f"scip{i // 3 + 1}_vars/weights", f"units.{i}.shortcut.weight", "conv")
            )
    maps += [VarMap("fc1_vars/weights", "fc.weight", "dense"), VarMap("fc1_vars/biases", "fc.bias")]
    return maps


def resnet50_map() -> list[VarMap]:
    """slim's ``resnet_v2_50`` -> lpbench's ``ResNet50V2`` (units numbered across blocks)."""
    root = "resnet_v2_50"
    maps = [
        VarMap(f"{root}/conv1/weights", "stem.weight", "conv"),
        VarMap(f"{root}/conv1/biases", "stem.bias"),
    ]
    index = 0
    for block, count in enumerate((3, 4, 6, 3), start=1):
        for unit in range(1, count + 1):
            scope, key = f"{root}/block{block}/unit_{unit}/bottleneck_v2", f"units.{index}"
            maps += _bn(f"{scope}/preact", f"{key}.preact")
            if unit == 1:  # the width changes on every block's first unit: a projection
                maps.append(VarMap(f"{scope}/shortcut/weights", f"{key}.shortcut.weight", "conv"))
                maps.append(VarMap(f"{scope}/shortcut/biases", f"{key}.shortcut.bias"))
            maps.append(VarMap(f"{scope}/conv1/weights", f"{key}.conv1.weight", "conv"))
            maps += _bn(f"{scope}/conv1/BatchNorm", f"{key}.bn1")
            maps.append(VarMap(f"{scope}/conv2/weights", f"{key}.conv2.weight", "conv"))
            maps += _bn(f"{scope}/conv2/BatchNorm", f"{key}.bn2")
            maps.append(VarMap(f"{scope}/conv3/weights", f"{key}.conv3.weight", "conv"))
            maps.append(VarMap(f"{scope}/conv3/biases", f"{key}.conv3.bias"))
            index += 1
    maps += _bn(f"{root}/postnorm", "postnorm")
    maps += [
        VarMap(f"{root}/logits/weights", "fc.weight", "conv1x1_dense"),
        VarMap(f"{root}/logits/biases", "fc.bias"),
    ]
    return maps


MAPS = {"lenet": lenet_map, "resnet20-v2": resnet20_map, "resnet50-v2": resnet50_map}
# The variable whose last dimension is the model's width, and the default width.
WIDTH_FROM = {
    "lenet": ("conv1_vars/weights", 32),
    "resnet20-v2": ("conv1_vars/weights", 64),
    "resnet50-v2": ("resnet_v2_50/conv1/weights", 64),
}


def is_ignored(name: str) -> bool:
    """Optimizer slots, step counters and moving-average shadows: not part of the model."""
    last = name.rsplit("/", 1)[-1]
    return name in STEP_VARIABLES or last in OPTIMIZER_SLOTS or last == EMA_SUFFIX


def _model_options(arch: str, ckpt: TFCheckpoint, signed_inputs: bool) -> dict[str, Any]:
    name, default = WIDTH_FROM[arch]
    entry = ckpt.entries.get(name)
    options: dict[str, Any] = {"width": entry.shape[-1] if entry and entry.shape else default}
    if arch == "lenet":
        fc1 = ckpt.entries.get("fc1_vars/weights")
        options["hidden"] = fc1.shape[-1] if fc1 and len(fc1.shape) == 2 else 1024
        if signed_inputs:
            raise TFImportError(
                "the MNIST LeNet took inputs in [0, 1]; --signed-inputs does not apply"
            )
    else:
        options["signed_inputs"] = signed_inputs
    return options


def _tf_shape(layout: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The TF shape that a tensor of lpbench shape ``shape`` comes from."""
    if layout == "conv":
        out, cin, h, w = shape
        return (h, w, cin, out)
    if layout in ("dense", "dense_hwc"):
        return (shape[1], shape[0])
    if layout == "conv1x1_dense":
        return (1, 1, shape[1], shape[0])
    return shape


def _convert(
    layout: str, array: np.ndarray, target: tuple[int, ...], hwc: tuple[int, ...]
) -> torch.Tensor:
    """A TF array in lpbench's layout."""
    if layout == "conv":
        array = array.transpose(3, 2, 0, 1)
    elif layout == "dense":
        array = array.T
    elif layout == "conv1x1_dense":
        array = array[0, 0].T
    elif layout == "dense_hwc":
        h, w, c = hwc
        array = array.reshape(h, w, c, target[0]).transpose(3, 2, 0, 1).reshape(target)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _short_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def convert_tf_checkpoint(
    checkpoint_prefix: str | Path,
    *,
    arch: str,
    dataset: str,
    signed_inputs: bool = False,
    ema: bool = False,
    show_progress: bool = True,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Read a checkpoint of the original code into lpbench's ``arch``: (model, metadata);
    ``show_progress``: a bar over the bytes of the variables read and converted."""

    if arch not in MAPS:
        raise TFImportError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
    info = get_dataset_info(dataset)
    try:
        ckpt = TFCheckpoint(checkpoint_prefix)
    except TFCheckpointError as err:
        raise TFImportError(str(err)) from err
    options = _model_options(arch, ckpt, signed_inputs)
    model = build_model(arch, info.input_shape, info.num_classes, **options)
    state = model.state_dict()
    maps = MAPS[arch]()
    source = {m.tf: f"{m.tf}/{EMA_SUFFIX}" if ema else m.tf for m in maps}
    wanted = set(source.values())
    missing = [source[m.tf] for m in maps if source[m.tf] not in ckpt.entries]
    # with ema, the raw variables the shadows replace are skipped like the other extras
    skipped = {n for n in ckpt.entries if n not in wanted and (is_ignored(n) or n in source)}
    ignored = sorted(skipped)
    extra = sorted(set(ckpt.entries) - wanted - skipped)
    problems = []
    if missing:
        problems.append(f"missing variables: {_short_list(missing)}")
    if extra:
        problems.append(f"variables lpbench's {arch} has no place for: {_short_list(extra)}")
    if problems:
        raise TFImportError(f"{ckpt.index_path} does not fit {arch}: " + "; ".join(problems))
    side = info.input_shape[1] // 4
    hwc = (side, side, 2 * options["width"])
    wrong = []
    for m in maps:
        name, expected = source[m.tf], _tf_shape(m.layout, tuple(state[m.key].shape))
        found = ckpt.entries[name].shape
        if found != expected:
            wrong.append(f"{name!r} has shape {list(found)}, {m.key} needs {list(expected)}")
    if wrong:
        raise TFImportError(f"wrong shapes for lpbench's {arch} on {dataset}: " + "; ".join(wrong))
    tensors: dict[str, torch.Tensor] = {}
    total = sum(ckpt.entries[source[m.tf]].size for m in maps)
    bar = progress_bar(
        desc="reading variables", total=total, enabled=show_progress, unit="B", scale=True
    )
    try:
        for m in maps:
            try:
                array = ckpt.read(source[m.tf])
            except TFCheckpointError as err:
                raise TFImportError(str(err)) from err
            tensors[m.key] = _convert(m.layout, array, tuple(state[m.key].shape), hwc)
            bar.update(ckpt.entries[source[m.tf]].size)
    finally:
        bar.close()
    unset = sorted(set(state) - set(tensors))
    if any(not k.endswith("num_batches_tracked") for k in unset):
        raise TFImportError(f"internal: lpbench tensors without a source: {_short_list(unset)}")
    model.load_state_dict({**state, **tensors})
    meta = {
        "model": arch,
        "dataset": dataset,
        "input_shape": list(info.input_shape),
        "num_classes": info.num_classes,
        "model_options": options,
        "tf_import": {
            "checkpoint_prefix": str(ckpt.prefix),
            "source_sha256": {p.name: _sha256(p) for p in ckpt.files()},
            "inputs": "[0, 1] mapped to [-1, 1] inside the model (signed_inputs)"
            if options.get("signed_inputs")
            else "[0, 1] as given (the original's convention)",
            "ema": ema,
            "checks": "sizes and crc32c of every imported tensor, crc32c of index blocks",
            "variable_map": [
                {"tf": source[m.tf], "lpbench": m.key, "layout": m.layout} for m in maps
            ],
            "ignored": ignored,
            "not_in_checkpoint": unset,
        },
    }
    return model.eval(), meta


def import_tf(
    checkpoint_prefix: str | Path,
    *,
    arch: str,
    dataset: str,
    out: str | Path,
    signed_inputs: bool = False,
    ema: bool = False,
    show_progress: bool = True,
) -> Path:
    """Import a TF checkpoint of the original code into the run folder ``out`` (with a
    progress bar over the bytes read unless ``show_progress`` is False).

    Writes ``out/model.safetensors`` and ``out/model.json`` (with the import's provenance)
    into a temporary folder first and renames it onto ``out``: nothing is ever half written.
    Raises :class:`TFImportError` for anything that does not fit.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TFImportError(f"{out} already exists and is not an empty folder")
    model, meta = convert_tf_checkpoint(
        checkpoint_prefix,
        arch=arch,
        dataset=dataset,
        signed_inputs=signed_inputs,
        ema=ema,
        show_progress=show_progress,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    try:
        save_checkpoint(tmp / WEIGHTS_NAME, model, meta)
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / WEIGHTS_NAME
