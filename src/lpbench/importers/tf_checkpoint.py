"""A reader of TensorFlow's checkpoint format (``.index`` + ``.data-*``), without TensorFlow.

A TF1 ``Saver`` (V2 format) writes ``PREFIX.index``, a LevelDB-style table mapping each
variable name to a ``BundleEntryProto`` (dtype, shape, shard, offset, size, masked crc32c),
and ``PREFIX.data-0000S-of-0000N``, the raw little-endian tensor bytes. This module decodes
the table (footer, block handles, prefix-compressed keys, block trailers) and the few
protobuf fields it needs by hand, checks every block's crc32c and, when a tensor is read,
its size and the crc32c of its bytes. Only uncompressed tables are read (TensorFlow writes
its bundles uncompressed).
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
CRC_MASK_DELTA = 0xA282EAD8
CRC32C_POLY = 0x82F63B78  # Castagnoli, reflected

# TensorFlow DataType enum -> numpy little-endian dtype (the ones checkpoints of models hold).
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<i4"),
    4: np.dtype("u1"),
    5: np.dtype("<i2"),
    6: np.dtype("i1"),
    9: np.dtype("<i8"),
    10: np.dtype("?"),
    19: np.dtype("<f2"),
}


class TFCheckpointError(ValueError):
    """A TensorFlow checkpoint is missing, truncated, corrupt or in an unsupported form."""


@dataclass(frozen=True)
class TensorEntry:
    """Where one variable's bytes are and what they hold (a ``BundleEntryProto``)."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None


# --- crc32c -------------------------------------------------------------------------


@cache
def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (CRC32C_POLY if crc & 1 else 0)
        table[byte] = crc
    return table


def _apply(matrix: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """A GF(2) 32x32 matrix (32 columns as uint32) applied to a vector of uint32 values."""
    out = np.zeros_like(vec)
    for bit in range(32):
        out ^= np.where((vec >> np.uint32(bit)) & np.uint32(1), matrix[bit], np.uint32(0))
    return out


@cache
def _zeros_operator(nbytes: int) -> np.ndarray:
    """The linear map a raw (zero-init) CRC state undergoes over ``nbytes`` zero bytes."""
    if nbytes == 1:
        cols = np.uint32(1) << np.arange(32, dtype=np.uint32)
        table = _crc_table()
        return table[cols & np.uint32(0xFF)] ^ (cols >> np.uint32(8))
    half = _zeros_operator(nbytes // 2)
    op = _apply(half, half)
    return _apply(_zeros_operator(1), op) if nbytes % 2 else op


def crc32c(data: bytes | np.ndarray) -> int:
    """CRC-32C of ``data``: numpy runs many chunks at once, then combines their CRCs."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data.view(np.uint8)
    n = buf.size
    if n == 0:
        return 0
    chunk = min(1024, max(1, math.isqrt(n)))
    count = 1 << max(0, math.ceil(math.log2(math.ceil(n / chunk))))
    # Leading zero bytes leave a zero-initialised CRC at zero, so pad in front.
    padded = np.zeros(count * chunk, dtype=np.uint8)
    padded[count * chunk - n :] = buf
    columns = np.ascontiguousarray(padded.reshape(count, chunk).T)
    table = _crc_table()
    state = np.zeros(count, dtype=np.uint32)
    for column in columns:
        state = table[(state ^ column) & np.uint32(0xFF)] ^ (state >> np.uint32(8))
    span = chunk
    while state.size > 1:  # crc(A + B) = shift_|B|(crc(A)) ^ crc(B) for raw CRCs
        state = _apply(_zeros_operator(span), state[0::2]) ^ state[1::2]
        span *= 2
    init = _apply(_zeros_operator(n), np.array([0xFFFFFFFF], dtype=np.uint32))
    return int((state[0] ^ init[0]) ^ np.uint32(0xFFFFFFFF))


def unmask_crc(masked: int) -> int:
    """Undo the masking LevelDB and TensorFlow apply to stored CRCs."""
    rot = (masked - CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --- protobuf and table decoding ---------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TFCheckpointError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise TFCheckpointError("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varint/fixed, bytes otherwise."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        elif wire == 5:
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value = buf[pos : pos + length]
            if len(value) != length:
                raise TFCheckpointError("truncated protobuf field")
            pos += length
        else:
            raise TFCheckpointError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def _number(value: int | bytes) -> int:
    """A protobuf field that must hold a number."""
    if not isinstance(value, int):
        raise TFCheckpointError("malformed checkpoint entry: a number field holds bytes")
    return value


def _message(value: int | bytes) -> bytes:
    """A protobuf field that must hold a nested message."""
    if not isinstance(value, bytes):
        raise TFCheckpointError("malformed checkpoint entry: a message field holds a number")
    return value


def _shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, value in _fields(buf):
        if number == 2 and isinstance(value, bytes):
            size = dict(_fields(value)).get(1, 0)
            assert isinstance(size, int)
            dims.append(size)
        elif number == 3 and value:
            raise TFCheckpointError("tensor of unknown rank")
    return tuple(dims)


def _entry(name: str, buf: bytes) -> TensorEntry:
    dtype, shard, offset, size = 0, 0, 0, 0
    shape: tuple[int, ...] = ()
    crc: int | None = None
    for number, value in _fields(buf):
        if number == 1:
            dtype = _number(value)
        elif number == 2:
            shape = _shape(_message(value))
        elif number == 3:
            shard = _number(value)
        elif number == 4:
            offset = _number(value)
        elif number == 5:
            size = _number(value)
        elif number == 6:
            crc = _number(value)
        elif number == 7:
            raise TFCheckpointError(f"variable {name!r} is stored in slices (not supported)")
    return TensorEntry(name, dtype, shape, shard, offset, size, crc)


def _read_block(data: bytes, handle: tuple[int, int], what: str) -> bytes:
    offset, size = handle
    end = offset + size + 5
    if end > len(data):
        raise TFCheckpointError(f"index file is truncated ({what} block ends past the end)")
    block = data[offset : offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if crc32c(data[offset : offset + size + 1]) != unmask_crc(stored):
        raise TFCheckpointError(f"index file is corrupt (crc32c of a {what} block)")
    if kind != 0:
        raise TFCheckpointError(f"index file uses compression type {kind}; only 0 is read")
    return block


def _block_items(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of a table block (prefix-compressed keys, restart array)."""
    if len(block) < 4:
        raise TFCheckpointError("index block too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise TFCheckpointError("index block has a bad restart count")
    items: list[tuple[bytes, bytes]] = []
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > limit:
            raise TFCheckpointError("index block entry runs past the block")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        items.append((key, block[pos : pos + vlen]))
        pos += vlen
    return items


def _handle(buf: bytes, pos: int = 0) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return (offset, size), pos


def resolve_prefix(path: str | Path) -> Path:
    """A checkpoint prefix; a folder means the one its ``checkpoint`` file names, else its
    only ``.index`` file (as ``tf.train.latest_checkpoint`` finds it)."""
    path = Path(path)
    if not path.is_dir():
        return path
    state = path / "checkpoint"
    if state.is_file():
        found = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state.read_text(), re.M)
        if found:
            return path / found.group(1)
    indexes = sorted(path.glob("*.index"))
    if len(indexes) != 1:
        raise TFCheckpointError(
            f"{path} holds {len(indexes)} checkpoint indexes and no `checkpoint` file naming "
            "one; give the prefix, e.g. path/model.ckpt"
        )
    return indexes[0].with_suffix("")


class TFCheckpoint:
    """The variables of a TF checkpoint ``PREFIX`` (``PREFIX.index`` + data shards)."""

    def __init__(self, prefix: str | Path) -> None:
        prefix = str(resolve_prefix(prefix))
        for suffix in (".index", ".meta"):
            if prefix.endswith(suffix):
                prefix = prefix[: -len(suffix)]
        if ".data-" in prefix:
            prefix = prefix[: prefix.rindex(".data-")]
        self.prefix = Path(prefix)
        self.index_path = Path(prefix + ".index")
        if not self.index_path.is_file():
            raise TFCheckpointError(
                f"no TensorFlow checkpoint index {self.index_path} "
                "(give the prefix, e.g. path/model.ckpt)"
            )
        self.num_shards = 1
        self.entries: dict[str, TensorEntry] = {}
        try:
            self._parse(self.index_path.read_bytes())
        except (TFCheckpointError, UnicodeDecodeError, struct.error) as err:
            raise TFCheckpointError(f"{self.index_path}: {err}") from err
        self.data_paths = [
            Path(f"{prefix}.data-{i:05d}-of-{self.num_shards:05d}") for i in range(self.num_shards)
        ]
        for path in self.data_paths:
            if not path.is_file():
                raise TFCheckpointError(f"checkpoint data file {path} is missing")
        for entry in sorted(self.entries.values(), key=lambda e: e.offset):
            self._check_bounds(entry)

    def _check_bounds(self, entry: TensorEntry) -> None:
        """Every entry, imported or not, must lie inside its data file."""
        if entry.shard >= len(self.data_paths):
            raise TFCheckpointError(f"variable {entry.name!r} names missing shard {entry.shard}")
        path = self.data_paths[entry.shard]
        length = path.stat().st_size
        if entry.offset + entry.size > length:
            raise TFCheckpointError(
                f"data file {path} is truncated: variable {entry.name!r} needs bytes "
                f"[{entry.offset}, {entry.offset + entry.size}) but the file has {length}"
            )

    def _parse(self, data: bytes) -> None:
        if len(data) < FOOTER_SIZE:
            raise TFCheckpointError("too short to be a checkpoint index")
        footer = data[-FOOTER_SIZE:]
        (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
        if magic != TABLE_MAGIC:
            raise TFCheckpointError("not a TensorFlow checkpoint index")
        _, pos = _handle(footer)  # the metaindex block: empty in TensorFlow's tables
        index_handle, _ = _handle(footer, pos)
        for _, value in _block_items(_read_block(data, index_handle, "index")):
            block_handle, _ = _handle(value)
            for key, entry in _block_items(_read_block(data, block_handle, "data")):
                name = key.decode("utf-8")
                if name == "":
                    self._header(entry)
                else:
                    self.entries[name] = _entry(name, entry)

    def _header(self, buf: bytes) -> None:
        fields = dict(_fields(buf))
        self.num_shards = _number(fields.get(1, 1))
        if fields.get(2, 0) != 0:
            raise TFCheckpointError("big-endian checkpoints are not read")

    def read(self, name: str, *, verify_crc: bool = True) -> np.ndarray:
        """The tensor ``name`` as a numpy array (sizes always checked, crc32c by default)."""
        entry = self.entries[name]
        if entry.dtype not in DTYPES:
            raise TFCheckpointError(f"variable {name!r} has unsupported dtype enum {entry.dtype}")
        dtype = DTYPES[entry.dtype]
        count = math.prod(entry.shape)
        if count * dtype.itemsize != entry.size:
            raise TFCheckpointError(
                f"variable {name!r}: index says {entry.size} bytes for shape "
                f"{list(entry.shape)} of {dtype}"
            )
        self._check_bounds(entry)
        path = self.data_paths[entry.shard]
        with open(path, "rb") as handle:
            handle.seek(entry.offset)
            raw = handle.read(entry.size)
        if verify_crc and entry.crc32c is not None and crc32c(raw) != unmask_crc(entry.crc32c):
            raise TFCheckpointError(f"variable {name!r} in {path} fails its crc32c check")
        return np.frombuffer(raw, dtype=dtype).reshape(entry.shape).copy()

    def files(self) -> list[Path]:
        """The index and data files the checkpoint consists of."""
        return [self.index_path, *self.data_paths]
