"""Counter-based random numbers keyed by (seed, attack, data-set index, restart, stream).

Every random draw of an attack comes from here, so a point's attack is the same whatever
batch, chunk, shard, process or device it runs in: the numbers are a pure function of
their key and position, computed with 32-bit integer hashing in int64 tensor arithmetic
(no overflow), identically on CPU and CUDA.
"""

from __future__ import annotations

import hashlib
import math

import torch

#: One stream (an int) or several (a 1-D int64 tensor) of a draw.
Stream = int | torch.Tensor

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def derive_key(*parts: object) -> int:
    """A stable 32-bit key from any printable parts (``hash()`` is salted per process)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _mul32(h: torch.Tensor, constant: int) -> torch.Tensor:
    """``h * constant mod 2**32`` for ``0 <= h < 2**32`` without leaving int64's range."""
    low = (h & 0xFFFF) * constant
    high = ((h >> 16) * constant) & 0xFFFF
    return (low + (high << 16)) & _MASK32


def _mix(h: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finaliser: every input bit flips each output bit with p ~ 1/2."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def _combine(h: torch.Tensor, value: torch.Tensor | int) -> torch.Tensor:
    return _mix(h ^ _mix((torch.as_tensor(value, device=h.device) + _GOLDEN) & _MASK32))


class KeyedRows:
    """The random streams of a batch of rows, each keyed by (key, data-set index, restart).

    The row keys are hashed once, so an attack that draws every iteration (Square) pays
    one hash of (stream, position) per draw; ``rows[i]`` keeps the streams of the
    selected rows. Row ``i`` depends only on its own key, never on the other rows.
    """

    def __init__(self, key: int, index: torch.Tensor, restart: torch.Tensor | int) -> None:
        index = index.to(torch.int64).reshape(-1)
        h = torch.full_like(index, key & _MASK32)
        h = _combine(h, index & _MASK32)
        h = _combine(h, (index >> 32) & _MASK32)
        restart_t = torch.as_tensor(restart, dtype=torch.int64, device=index.device)
        self.hashes = _combine(h, restart_t.expand_as(index) & _MASK32)

    def __getitem__(self, rows: torch.Tensor) -> KeyedRows:
        selected = object.__new__(KeyedRows)
        selected.hashes = self.hashes[rows]
        return selected

    def __len__(self) -> int:
        return len(self.hashes)

    def bits(self, stream: Stream, numel: int) -> torch.Tensor:
        """Uniform 32-bit integers (int64 tensor), shape ``(rows, numel)``.

        ``stream`` may be a 1-D tensor of streams: then the shape is ``(rows, streams,
        numel)``, each stream's numbers those it gives alone (one batch of kernels for
        many draws, e.g. a block of Square's iterations).
        """
        streams = torch.as_tensor(stream, dtype=torch.int64, device=self.hashes.device)
        h = _combine(self.hashes.view(-1, *([1] * streams.dim())), streams & _MASK32)
        position = torch.arange(numel, dtype=torch.int64, device=h.device)
        return _mix(_combine(h[..., None], position))

    def _shaped(self, shape: tuple[int, ...], stream: Stream) -> torch.Tensor:
        bits = self.bits(stream, math.prod(shape))
        return bits.reshape(*bits.shape[:-1], *shape)

    def uniform(
        self, shape: tuple[int, ...], *, stream: Stream = 0, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Uniform numbers in [0, 1), shape ``(rows, [streams,] *shape)``, 24 random bits."""
        return (self._shaped(shape, stream) >> 8).to(dtype) * (1.0 / (1 << 24))

    def signs(
        self, shape: tuple[int, ...], *, stream: Stream = 0, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Random -1/+1 entries (Rademacher), shape ``(rows, [streams,] *shape)``."""
        return ((self._shaped(shape, stream) >> 31) * 2 - 1).to(dtype)

    def randint(
        self, high: int | torch.Tensor, count: int = 1, *, stream: Stream = 0
    ) -> torch.Tensor:
        """Integers uniform in ``[0, high)``, shape ``(rows, [streams,] count)``. ``high`` is
        shared, one per row (1-D), or any shape that broadcasts against the result."""
        bits = self.bits(stream, count)
        high_t = torch.as_tensor(high, dtype=torch.int64, device=bits.device)
        if high_t.dim() == 1:
            high_t = high_t.view(-1, *([1] * (bits.dim() - 1)))
        return (bits * high_t) >> 32


def keyed_bits(
    key: int, index: torch.Tensor, restart: torch.Tensor | int, stream: int, numel: int
) -> torch.Tensor:
    """Uniform 32-bit integers (int64 tensor, shape ``(len(index), numel)``).

    Row ``i`` depends only on ``(key, index[i], restart[i], stream)`` and column ``j`` on
    its position, never on the other rows.
    """
    return KeyedRows(key, index, restart).bits(stream, numel)


def keyed_uniform(
    key: int,
    index: torch.Tensor,
    restart: torch.Tensor | int,
    shape: tuple[int, ...],
    *,
    stream: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform numbers in [0, 1), shape ``(len(index), *shape)``, 24 random bits each."""
    return KeyedRows(key, index, restart).uniform(shape, stream=stream, dtype=dtype)


def keyed_signs(
    key: int,
    index: torch.Tensor,
    restart: torch.Tensor | int,
    shape: tuple[int, ...],
    *,
    stream: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Random -1/+1 entries (Rademacher), shape ``(len(index), *shape)``."""
    return KeyedRows(key, index, restart).signs(shape, stream=stream, dtype=dtype)


def keyed_randint(
    key: int,
    index: torch.Tensor,
    restart: torch.Tensor | int,
    high: int | torch.Tensor,
    count: int = 1,
    *,
    stream: int = 0,
) -> torch.Tensor:
    """Integers uniform in ``[0, high)`` (``high`` per row or shared), shape ``(n, count)``."""
    return KeyedRows(key, index, restart).randint(high, count, stream=stream)
