"""The ``lpbench`` command line: the parser built from the commands' settings, and dispatch.

Each command lives in its own module of :mod:`lpbench.commands`; its options are the fields
of its settings dataclass (:mod:`lpbench.settings`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from lpbench.commands import (
    check,
    data,
    demo,
    evaluate,
    grid,
    histogram,
    import_tf,
    plot_training,
    report,
    surface,
    train,
    zoo,
)
from lpbench.data import ChecksumError, DataFormatError, DatasetNotFoundError
from lpbench.evaluation import VerificationError
from lpbench.runtime import Interrupted
from lpbench.settings import Command
from lpbench.training import CheckpointError
from lpbench.version import __version__

#: The commands in the order ``lpbench --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    train.COMMAND,
    data.COMMAND,
    zoo.COMMAND,
    plot_training.COMMAND,
    evaluate.COMMAND,
    check.COMMAND,
    demo.COMMAND,
    surface.COMMAND,
    grid.COMMAND,
    histogram.COMMAND,
    report.COMMAND,
    import_tf.COMMAND,
)

#: Errors that are the user's to fix: a one-line message and exit code 2, no traceback.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    CheckpointError,
    DataFormatError,
    ChecksumError,
    DatasetNotFoundError,
    VerificationError,
)


class OneLineErrors(argparse.ArgumentParser):
    """A parser whose usage errors are one line (``lpbench CMD: error: ...``), exit code 2;
    the usage stays one ``--help`` away. Sub-command parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """``lpbench`` with a sub-command per entry of COMMANDS."""
    parser = OneLineErrors(
        prog="lpbench", description="Train logit-pairing defenses and evaluate them honestly."
    )
    parser.add_argument("--version", action="version", version=f"lpbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_to(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (else sys.argv) and run the command; its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"lpbench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as err:
        print(f"interrupted: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
