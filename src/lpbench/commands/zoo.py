"""``lpbench zoo``: the models shipped with lpbench."""

from __future__ import annotations

from dataclasses import dataclass

from lpbench.commands._options import emit
from lpbench.settings import Command, positional


@dataclass(frozen=True, kw_only=True)
class ZooSettings:
    """``lpbench zoo list`` or ``lpbench zoo show NAME``."""

    action: str = positional("list every entry, or show one", choices=("list", "show"))
    name: str | None = positional(
        "entry for `show`, e.g. mnist-digits/clp", default=None, nargs="?"
    )


def run(settings: ZooSettings) -> int:
    """Print the listing or the entry; exit code 0."""
    from lpbench.pipelines.reports import zoo_listing

    emit(zoo_listing(settings.name))
    return 0


COMMAND = Command(
    "zoo",
    "the shipped models: `zoo list`, or `zoo show NAME` for one entry's record",
    ZooSettings,
    run,
    description="Models trained by lpbench and shipped with it (float16 safetensors). Use one "
    "anywhere a checkpoint goes as zoo:DATASET/NAME, e.g. `lpbench evaluate "
    "zoo:mnist-digits/clp`; in Python lpbench.zoo.load(NAME).",
)
