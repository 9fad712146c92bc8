"""The model zoo: LeNets trained by lpbench, shipped as half-precision safetensors.

Each entry is ``<dataset>/<name>`` (e.g. ``mnist-digits/clp``) and lives in
``lpbench/zoo/files/<dataset>/<name>/`` as ``model.safetensors`` (float16) and
``model.json``: the checkpoint metadata plus a ``zoo`` block with the exact training
command, the training images and time, the clean accuracy of these float16 weights on the
data set's evaluation subset, and the robust accuracies measured when the entry was made.
Anywhere a checkpoint is expected, ``zoo:<dataset>/<name>`` names a zoo entry::

    model = lpbench.zoo.load("mnist-digits/clp")        # float32, eval mode
    lpbench evaluate zoo:mnist-digits/clp --preset strong

Resolving ``zoo:`` references lives in :mod:`lpbench.checkpoint`, below this package.
"""

from __future__ import annotations

from lpbench.checkpoint import (
    ZOO_DIR,
    ZOO_PREFIX,
    ZooError,
    entry_name,
    is_zoo_ref,
    zoo_names,
    zoo_path,
)
from lpbench.zoo.registry import ZooEntry, export_to_zoo, get_entry, list_entries, load

__all__ = [
    "ZOO_DIR",
    "ZOO_PREFIX",
    "ZooEntry",
    "ZooError",
    "entry_name",
    "export_to_zoo",
    "get_entry",
    "is_zoo_ref",
    "list_entries",
    "load",
    "zoo_names",
    "zoo_path",
]
