"""Settings dataclasses as command-line options, each defined once.

A field made by :func:`option` or :func:`positional` carries its flag's help, default,
choices, parser (``type``), nargs and argparse group; :func:`add_options` turns a settings
class into arguments of an ``argparse`` parser, :func:`from_namespace` turns the parsed
arguments back into the settings, and :class:`Command` ties a settings class to the
function that runs it. Help shows each non-empty default, so help texts never repeat one.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, TypeVar, cast

_KEY = "lpbench.option"
T = TypeVar("T")


@dataclass(frozen=True)
class Option:
    """How a settings field appears on the command line."""

    help: str
    positional: bool = False
    type: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    nargs: str | None = None
    metavar: str | None = None
    group: str | None = None


def option(
    default: Any,
    help: str,
    *,
    type: Callable[[str], Any] | None = None,
    choices: Sequence[Any] | None = None,
    nargs: str | None = None,
    metavar: str | None = None,
    group: str | None = None,
) -> Any:
    """A field set by ``--NAME`` (underscores as dashes); a False default makes it a switch,
    ``dataclasses.MISSING`` a required option."""
    spec = Option(help, False, type, choices, nargs, metavar, group)
    return _field(default, spec)


def positional(
    help: str,
    *,
    default: Any = MISSING,
    type: Callable[[str], Any] | None = None,
    choices: Sequence[Any] | None = None,
    nargs: str | None = None,
    metavar: str | None = None,
) -> Any:
    """A field set by a positional argument named after it."""
    return _field(default, Option(help, True, type, choices, nargs, metavar))


def _field(default: Any, spec: Option) -> Any:
    metadata = {_KEY: spec}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _spec(item: Any) -> Option:
    return item.metadata[_KEY]


def _default(item: Any) -> Any:
    if item.default_factory is not MISSING:
        return item.default_factory()
    return item.default


def _in_help_order(settings: type) -> list[Any]:
    """The fields of ``settings``: its own first, then those of each base in MRO order."""
    by_name = {item.name: item for item in fields(settings)}
    names = [n for kind in settings.__mro__ for n in vars(kind).get("__annotations__", {})]
    return [by_name[name] for name in dict.fromkeys(names) if name in by_name]


def add_options(parser: argparse.ArgumentParser, settings: type) -> None:
    """Add an argument to ``parser`` for every field of the dataclass ``settings``."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for item in _in_help_order(settings):
        spec = _spec(item)
        target: Any = parser
        if spec.group is not None:
            if spec.group not in groups:
                groups[spec.group] = parser.add_argument_group(spec.group)
            target = groups[spec.group]
        default = _default(item)
        kwargs: dict[str, Any] = {"help": spec.help}
        if default is not MISSING:
            kwargs["default"] = default
        elif not spec.positional:
            kwargs["required"] = True
        if default is False:
            kwargs["action"] = "store_true"
        for key in ("type", "choices", "nargs", "metavar"):
            if getattr(spec, key) is not None:
                kwargs[key] = getattr(spec, key)
        if spec.positional:
            target.add_argument(item.name, **kwargs)
        else:
            target.add_argument("--" + item.name.replace("_", "-"), dest=item.name, **kwargs)


def from_namespace(settings: type[T], namespace: argparse.Namespace) -> T:
    """The ``settings`` dataclass filled from parsed arguments."""
    names = [item.name for item in fields(cast(Any, settings))]
    return settings(**{name: getattr(namespace, name) for name in names})


def call_with(function: Callable[..., Any], settings: Any, **overrides: Any) -> Any:
    """Call ``function`` with each field or property of ``settings`` that names one of its
    parameters, and with ``overrides`` (which win)."""
    names = {item.name for item in fields(settings)}
    names |= {name for name, _ in inspect.getmembers(type(settings), _is_property)}
    wanted = inspect.signature(function).parameters
    values = {name: getattr(settings, name) for name in names & wanted.keys()}
    return function(**{**values, **overrides})


def _is_property(value: Any) -> bool:
    return isinstance(value, property)


class HelpFormatter(argparse.HelpFormatter):
    """Appends each option's default to its help unless the default is empty."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        default = action.default
        empty = default is None or default is False or default in ("", [], argparse.SUPPRESS)
        if not text or empty:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


@dataclass(frozen=True)
class Command:
    """A command: its name and help, its settings dataclass and the function that runs it."""

    name: str
    help: str
    settings: type
    run: Callable[[Any], int]
    description: str | None = None

    def add_to(self, commands: argparse._SubParsersAction) -> None:
        """Add this command's parser to the sub-commands ``commands``."""
        parser = commands.add_parser(
            self.name,
            help=self.help,
            description=self.description,
            formatter_class=HelpFormatter,
        )
        add_options(parser, self.settings)
        parser.set_defaults(func=self.invoke)

    def invoke(self, namespace: argparse.Namespace) -> int:
        """Run the command on parsed arguments; its exit code."""
        return self.run(from_namespace(self.settings, namespace))


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def non_negative(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def fraction(flag: str) -> Callable[[str], float]:
    """argparse type: a number in (0, 1], named ``flag`` in its errors."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number, got {text!r}") from None
        if not 0 < value <= 1:
            raise argparse.ArgumentTypeError(
                f"{flag} must be in (0, 1] (inputs are in [0, 1]), got {value}"
            )
        return value

    return parse
