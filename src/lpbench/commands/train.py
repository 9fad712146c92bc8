"""``lpbench train``: train the model of a seed table row with its recipe."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from lpbench.commands._options import DataOptions, dataset_option, emit, radius
from lpbench.distributed import is_main_process
from lpbench.models import MODELS
from lpbench.runtime import Interrupted
from lpbench.settings import Command, call_with, non_negative, option, positive_int
from lpbench.training import TrainConfig, describe_recipes, recipe_config, train
from lpbench.training.trainer import STATE_NAME, check_out_dir

#: A run with fewer than this share of its recipe's epochs gets a warning.
SHORT_RUN = 0.25

MODEL = "model and engine"
OBJECTIVE = "objective weights (override the preset)"
ADVERSARIAL = "adversarial examples for AT / ALP"


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """The training engine: model, fine-tuning, precision, loading, checkpoints."""

    model: str | None = option(
        None, "override the preset's model", choices=sorted(MODELS), group=MODEL
    )
    width: int | None = option(
        None,
        "base width of the model (ResNet: 64, LeNet: 32 are the real ones)",
        type=positive_int,
        group=MODEL,
    )
    init_from: str | None = option(None, "checkpoint to start (fine-tune) from", group=MODEL)
    amp: bool = option(False, "bfloat16 autocast on CUDA", group=MODEL)
    workers: int = option(0, "DataLoader worker processes", type=int, group=MODEL)
    checkpoint_every: int | None = option(
        None, "also save a resumable state every N steps within an epoch", type=int, group=MODEL
    )


@dataclass(frozen=True, kw_only=True)
class ObjectiveWeights:
    """Weights of the training objective's terms; None keeps the preset's."""

    ce: float | None = option(None, "clean cross-entropy", type=non_negative, group=OBJECTIVE)
    at: float | None = option(None, "adversarial cross-entropy", type=non_negative, group=OBJECTIVE)
    alp: float | None = option(
        None, "adversarial logit pairing", type=non_negative, group=OBJECTIVE
    )
    clp: float | None = option(None, "clean logit pairing", type=non_negative, group=OBJECTIVE)
    lsq: float | None = option(None, "logit squeezing", type=non_negative, group=OBJECTIVE)
    weight_decay: float | None = option(
        None, "L2 on the weights", type=non_negative, group=OBJECTIVE
    )
    noise_std: float | None = option(
        None, "Gaussian input noise std", type=non_negative, group=OBJECTIVE
    )


@dataclass(frozen=True, kw_only=True)
class AdversarialOptions:
    """The adversarial examples of adversarial training and ALP; None keeps the preset's."""

    adv_eps: float | None = option(
        None,
        "radius, a number or a fraction such as 8/255 (default: the data set's evaluation eps)",
        type=radius("--adv-eps"),
        group=ADVERSARIAL,
    )
    adv_step: float | None = option(
        None,
        "PGD step size, a number or a fraction such as 2/255",
        type=radius("--adv-step"),
        group=ADVERSARIAL,
    )
    adv_iters: int | None = option(None, "PGD iterations", type=positive_int, group=ADVERSARIAL)
    adv_target: str | None = option(
        None,
        "untargeted, or towards the least-likely or a random class",
        choices=("none", "ll", "random"),
        group=ADVERSARIAL,
    )


@dataclass(frozen=True, kw_only=True)
class TrainSettings(ModelOptions, ObjectiveWeights, AdversarialOptions, DataOptions):
    """``lpbench train``: a recipe and the values that override it (None: the recipe's)."""

    dataset: str | None = dataset_option(
        "data set (default: the preset's; mnist-digits, shipped with lpbench, for the short names)"
    )
    preset: str = option(
        "plain",
        "recipe named after a seed table row, e.g. mnist/clp, cifar10/lsq, "
        "tiny-imagenet/100at-ll-alp-ll, or a short name (plain, clp, lsq, plain-alp, at50, "
        "at50-alp, at100, at100-alp) for MNIST/Fashion-MNIST; see --list-presets",
        metavar="NAME",
    )
    list_presets: bool = option(False, "print every recipe with its values and exit")
    epochs: int | None = option(None, "training epochs", type=positive_int)
    batch_size: int | None = option(
        None, "global batch, split evenly over torchrun's processes", type=positive_int
    )
    lr: float | None = option(None, "learning rate", type=float)
    seed: int = option(0, "seed of the initialisation, batches and attacks", type=int)
    train_points: int | None = option(
        None, "train on a fixed random subset of this many training images", type=positive_int
    )
    eval_adv_points: int = option(
        0, "log accuracy under the training attack on this many test points per epoch", type=int
    )
    out: Path | None = option(None, "run folder (default runs/NAME)", type=Path)
    resume: bool = option(False, "continue an interrupted run in --out")
    force: bool = option(
        False, "overwrite the run or checkpoint already in --out (start afresh there)"
    )


#: Settings that go to the recipe as they are: those named like a TrainConfig field (but
#: the two that pick the recipe, and amp, whose False means "the recipe's") or like an
#: objective weight.
_CONFIG_FIELDS = {item.name for item in fields(TrainConfig)} - {"dataset", "preset", "amp"}
_RECIPE_FIELDS = _CONFIG_FIELDS | {item.name for item in fields(ObjectiveWeights)}


def train_config(settings: TrainSettings) -> TrainConfig:
    """The recipe's TrainConfig with the values the settings override."""
    s = settings
    overrides: dict[str, Any] = {
        item.name: getattr(s, item.name) for item in fields(s) if item.name in _RECIPE_FIELDS
    }
    overrides["model_options"] = {"width": s.width} if s.width else None
    overrides["amp"] = s.amp or None
    return recipe_config(s.preset, s.dataset, **overrides)


def default_out(config: TrainConfig) -> Path:
    """runs/DATASET-PRESET-seedN."""
    name = config.preset.replace("/", "-") if config.preset else "custom"
    return Path("runs") / f"{config.dataset}-{name}-seed{config.seed}"


def train_lines(config: TrainConfig, history: list[dict[str, Any]], out: Path) -> list[str]:
    """What a finished run prints: the last epoch's test accuracy and where the files are."""
    last = history[-1] if history else {}
    return [
        f"trained {config.preset} on {config.dataset}: epoch {last.get('epoch')}, "
        f"test accuracy {last.get('test_accuracy', float('nan')):.4f}",
        f"checkpoint: {out / 'model.safetensors'}  log: {out / 'train_log.jsonl'}",
    ]


def run(settings: TrainSettings) -> int:
    """Train (or list the recipes); exit code 0."""
    if settings.list_presets:
        print(describe_recipes())
        return 0
    config = train_config(settings)
    out = settings.out or default_out(config)
    main = is_main_process()
    if main:
        check_out_dir(out, resume=settings.resume, force=settings.force)  # before any warning
        if warning := short_run_warning(settings, config):
            print(warning, file=sys.stderr)
    try:
        _, history = call_with(
            train,
            settings,
            config=config,
            out_dir=out,
            on_epoch=partial(print_epoch, config) if main else None,
        )
    except KeyboardInterrupt as err:
        if main and (out / STATE_NAME).exists():
            raise Interrupted(
                f"rerun the same command with --resume to continue from {out}"
            ) from err
        raise
    if main:
        emit(train_lines(config, history, out))
    return 0


def short_run_warning(settings: TrainSettings, config: TrainConfig) -> str | None:
    """A warning when ``--epochs`` cuts the recipe to under :data:`SHORT_RUN` of its epochs."""
    if settings.preset is None or settings.epochs is None:
        return None
    planned = recipe_config(settings.preset, config.dataset).epochs
    if config.epochs >= SHORT_RUN * planned:
        return None
    return (
        f"warning: {config.epochs} of the recipe's {planned} epochs: expect far weaker "
        "accuracy and robustness than the paper's"
    )


def epoch_line(config: TrainConfig, record: dict[str, Any]) -> str:
    """One epoch's line: its loss terms, test (and adversarial) accuracy and speed."""
    losses = ", ".join(
        f"{key.removeprefix('loss_')} {value:.4f}"
        for key, value in record.items()
        if key.startswith("loss_")
    )
    line = f"epoch {record['epoch']}/{config.epochs}: loss {losses}"
    line += f"; test accuracy {record.get('test_accuracy', float('nan')):.2%}"
    if "adv_accuracy_baseline" in record:
        line += f", adversarial accuracy {record['adv_accuracy_baseline']:.2%}"
    return line + f"; {record.get('images_per_s', 0):,.0f} images/s"


def print_epoch(config: TrainConfig, record: dict[str, Any]) -> None:
    """Print :func:`epoch_line` on stderr (beside the progress bars), at once."""
    print(epoch_line(config, record), file=sys.stderr, flush=True)


COMMAND = Command(
    "train",
    "train a model with the recipe of a seed table row",
    TrainSettings,
    run,
    description="Train the model of a seed table row with its recipe (--list-presets). "
    "Checkpoints and a JSON-lines log go to --out. Several processes: "
    "torchrun --nproc_per_node=N -m lpbench train ...",
)
