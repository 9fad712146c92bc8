"""The command line's options against a committed snapshot: the CLI may be rebuilt, its
interface may not change by accident.

The snapshot (tests/data/cli_options.json) lists, for ``lpbench`` and every command, each
option's flags (or a positional's name), choices, default, nargs, metavar and whether it
takes a value; help text is free to change. After an intended change of the interface, rewrite it
with ``LPBENCH_UPDATE_SNAPSHOTS=1 pytest tests/test_cli_options.py``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from lpbench.cli import build_parser, main

SNAPSHOT = Path(__file__).parent / "snapshots" / "cli_options.json"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _describe(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Each argument of ``parser`` by its flags (or name), and its sub-commands'."""
    options: dict[str, Any] = {}
    commands: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands[name] = _describe(sub)
            continue
        key = " ".join(action.option_strings) or action.dest
        options[key] = {
            "positional": not action.option_strings,
            "dest": action.dest,
            "choices": _jsonable(list(action.choices)) if action.choices else None,
            "default": _jsonable(action.default),
            "nargs": action.nargs,
            "takes_value": action.nargs != 0,
            "required": action.required,
            "metavar": _jsonable(action.metavar),
        }
    return {"options": options, "commands": commands}


def _flat(tree: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict]]:
    """(command path, options) for ``lpbench`` and every command below it."""
    found = [(path, tree["options"])]
    for name, sub in tree["commands"].items():
        found += _flat(sub, (*path, name))
    return found


def test_options_match_the_snapshot() -> None:
    current = _describe(build_parser())
    if os.environ.get("LPBENCH_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    current_options, expected_options = dict(_flat(current)), dict(_flat(expected))
    assert sorted(current_options) == sorted(expected_options)
    for path, want in expected_options.items():
        assert current_options[path] == want, f"lpbench {' '.join(path)}"


@pytest.mark.parametrize("path", [p for p, _ in _flat(_describe(build_parser()))])
def test_help_lists_every_option(path: tuple[str, ...], capsys) -> None:
    options = dict(_flat(json.loads(SNAPSHOT.read_text())))[path]
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for key, option in options.items():
        if option["positional"]:
            names = option["choices"] or [option["metavar"] or option["dest"]]
        else:
            names = key.split()
        for name in names:
            assert name in text, f"lpbench {' '.join(path)} --help does not list {name}"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["evaluate", "x", "--points", "0"], "expected a number >= 1, got 0"),
        (["evaluate", "x", "--eps", "2"], "--eps must be in (0, 1]"),
        (["evaluate", "x", "--iters", "many"], "expected a whole number, got 'many'"),
        (["train", "--clp", "-1"], "expected a number >= 0, got -1.0"),
        (["train", "--adv-step", "0"], "--adv-step must be in (0, 1]"),
        (["train", "--adv-eps", "8/0"], "--adv-eps must be a number or a fraction such as 8/255"),
        (["train", "--adv-step", "2/1"], "--adv-step must be in (0, 1]"),
        (["grid", "x", "--iters", "10", "0"], "expected a number >= 1, got 0"),
        (["demo", "--restarts", "0"], "expected a number >= 1, got 0"),
        (["zoo", "drop"], "invalid choice"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_values_are_checked_while_parsing(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_train_flags_override_the_recipe() -> None:
    from lpbench.commands.train import TrainSettings, train_config
    from lpbench.settings import from_namespace
    from lpbench.training import recipe_config

    argv = "train --preset clp --dataset mnist --epochs 2 --lr 0.01 --seed 3 --clp 0.5"
    argv += " --weight-decay 0.001 --adv-iters 3 --adv-target ll --width 8 --checkpoint-every 5"
    settings = from_namespace(TrainSettings, build_parser().parse_args(argv.split()))
    assert train_config(settings) == recipe_config(
        "clp",
        "mnist",
        epochs=2,
        lr=0.01,
        seed=3,
        clp=0.5,
        weight_decay=0.001,
        adv_iters=3,
        adv_target="ll",
        model_options={"width": 8},
        checkpoint_every=5,
        eval_adv_points=0,
    )


def test_train_takes_its_radius_and_step_as_fractions_as_evaluate_takes_eps() -> None:
    from lpbench.commands.train import TrainSettings, train_config
    from lpbench.settings import from_namespace
    from lpbench.training import recipe_config

    argv = "train --preset at50 --dataset mnist --adv-eps 8/255 --adv-step 2/255"
    settings = from_namespace(TrainSettings, build_parser().parse_args(argv.split()))
    assert settings.adv_eps == 8 / 255 and settings.adv_step == 2 / 255
    config = train_config(settings)
    assert config == recipe_config(
        "at50", "mnist", adv_eps=8 / 255, adv_step=2 / 255, eval_adv_points=0
    )
    assert (config.adv_eps, config.adv_step) == (8 / 255, 2 / 255)
