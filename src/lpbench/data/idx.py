"""Read and write IDX files (the MNIST format), gzipped or not."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from lpbench.io import atomic_write

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian numpy dtype.
_CODE_TO_DTYPE: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_KIND_TO_CODE: dict[tuple[str, int], int] = {
    (dtype.kind, dtype.itemsize): code for code, dtype in _CODE_TO_DTYPE.items()
}


class DataFormatError(ValueError):
    """A data file is not what it claims to be (bad header, wrong length, bad shape)."""


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it starts with the gzip magic bytes."""
    raw = path.read_bytes()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataFormatError(f"{path}: corrupt gzip stream ({err})") from err


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (gzip detected by its magic bytes) into a native-endian array.

    Raises DataFormatError for a bad magic number, an unknown type code, or a payload
    whose length is not exactly the product of the dimensions.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataFormatError(
            f"{path}: expected an IDX header of at least 4 bytes, found {len(data)} bytes"
        )
    if data[0] != 0 or data[1] != 0:
        raise DataFormatError(
            f"{path}: not an IDX file (first two bytes are {data[:2].hex()}, expected 0000)"
        )
    code, ndim = data[2], data[3]
    if code not in _CODE_TO_DTYPE:
        known = ", ".join(f"0x{c:02X}" for c in _CODE_TO_DTYPE)
        raise DataFormatError(f"{path}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataFormatError(f"{path}: IDX header has 0 dimensions, expected at least 1")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(
            f"{path}: expected a {header}-byte header for {ndim} "
            f"dimensions, found {len(data)} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = _CODE_TO_DTYPE[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "trailing bytes"
        raise DataFormatError(
            f"{path}: {what}: expected {expected} bytes of data for shape "
            f"{shape} ({dtype.name}), found {found}"
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically; gzip it when ``compress`` is true.

    ``compress`` defaults to whether ``path`` ends in ``.gz``. The gzip header carries no
    name or time, so equal arrays give equal bytes.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _KIND_TO_CODE.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(
            f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, "
            "int32, float32 or float64"
        )
    if not 1 <= array.ndim <= 255 or any(d >= 2**32 for d in array.shape):
        raise ValueError(f"IDX cannot store an array of shape {array.shape}")
    content = (
        bytes([0, 0, code, array.ndim])
        + np.asarray(array.shape, ">u4").tobytes()
        + np.ascontiguousarray(array, _CODE_TO_DTYPE[code]).tobytes()
    )
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        content = gzip.compress(content, mtime=0)
    return atomic_write(path, lambda tmp: tmp.write_bytes(content))
