"""CIFAR-10's official python batches, read without executing code.

The batches are Python pickles of a dict with ``b"data"`` (uint8, N x 3072, channel-major
rows of 32 x 32 pixels) and ``b"labels"`` (a list of ints). Unpickling normally may run
any code named in the file; :class:`SafeUnpickler` only rebuilds numpy arrays and refuses
every other global, so a tampered file fails instead of running.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lpbench.data.idx import DataFormatError
from lpbench.data.info import DatasetInfo

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: The only globals a CIFAR batch needs: numpy's array and dtype reconstruction.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _latin1_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """What protocol-2 pickles written by Python 3 call to rebuild ``bytes``."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing to encode with {encoding!r}")
    return text.encode("latin-1")


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds plain data and numpy arrays, and nothing else.

    Besides numpy's array reconstruction it allows only ``_codecs.encode`` to latin-1,
    which Python 3 writes for ``bytes`` in protocol-2 pickles (the official files, written
    by Python 2, do not need it).
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: CIFAR batches hold only numpy arrays"
        )


def load_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one batch's bytes into uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    try:
        batch = SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataFormatError(f"{where}: not a readable CIFAR-10 batch ({err})") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataFormatError(f"{where}: expected a dict with b'data' and b'labels'")
    images, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2:
        raise DataFormatError(f"{where}: expected uint8 data of shape N x 3072")
    if images.shape[1] != 3 * 32 * 32 or labels.shape != (images.shape[0],):
        raise DataFormatError(
            f"{where}: expected N x 3072 data and N labels, found data {images.shape} "
            f"and {labels.shape[0] if labels.ndim else 0} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= 10):
        raise DataFormatError(f"{where}: labels outside [0, 10)")
    return images.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_members(path: Path, names: Sequence[str]) -> list[bytes]:
    """The named batch files' bytes, from the (gzipped) tar archive or its unpacked folder."""
    if path.is_dir():
        missing = [name for name in names if not (path / name).is_file()]
        if missing:
            raise DataFormatError(f"{path}: missing {', '.join(missing)}")
        return [(path / name).read_bytes() for name in names]
    try:
        with tarfile.open(path, "r:*") as archive:
            out = []
            for name in names:
                try:
                    member = archive.extractfile(f"{CIFAR10_FOLDER}/{name}")
                except KeyError:
                    member = None
                if member is None:
                    raise DataFormatError(f"{path}: no {CIFAR10_FOLDER}/{name} in the archive")
                out.append(member.read())
            return out
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataFormatError(f"{path}: truncated or not a tar archive ({err})") from err


def read_cifar10(
    info: DatasetInfo, split: str, paths: Sequence[Path]
) -> tuple[np.ndarray, np.ndarray]:
    """The registry reader: ``paths`` holds the archive (or its unpacked folder)."""
    (path,) = paths
    names = CIFAR10_BATCHES[split]
    parts = [
        load_batch(data, f"{path}:{name}")
        for name, data in zip(names, _read_members(path, names), strict=True)
    ]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels
