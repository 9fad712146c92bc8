"""What lpbench knows about a data set (:class:`DatasetInfo`) and the reader type the
per-format readers and the registry share; imports nothing else of lpbench."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: ``reader(info, split, paths)``: a split's files, in ``info.files`` order, decoded to
#: uint8 images (N, C, H, W) and int64 labels (N,), validated (DataFormatError).
Reader = Callable[["DatasetInfo", str, Sequence[Path]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """What lpbench knows about a data set: its shape, its files and how to decode them.

    ``files`` maps a split ("train", "test") to the file names it needs, for IDX data sets
    ``(images, labels)``. ``sha256`` holds the digest of each file as the mirrors serve it;
    ``extra_sha256`` lists other accepted digests of the same content (e.g. Debian's
    re-gzipped copies). ``reader`` (:data:`Reader`) decodes a split's files.
    ``eps`` is the data set's default L-infinity radius, the one place it is decided
    (every evaluation given ``eps=None`` uses it); ``eps_note`` says where it comes from.
    ``eval_first``: the original paper evaluated on the first test images rather than a
    seeded random subset. ``unpacked`` maps an archive to the folder it unpacks to,
    accepted in its place. ``prepare_hint``: the command that builds the files when they
    cannot be downloaded as they are.
    """

    name: str
    title: str
    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    files: Mapping[str, tuple[str, ...]]
    mirrors: tuple[str, ...]
    sha256: Mapping[str, str]
    reader: Reader
    eps: float
    eps_note: str
    extra_sha256: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    system_dirs: tuple[Path, ...] = ()
    install_hint: str = ""
    eval_first: bool = False
    unpacked: Mapping[str, str] = field(default_factory=dict)
    prepare_hint: str = ""

    def accepted_sha256(self, filename: str) -> tuple[str, ...]:
        """The digests a file of this name may have; empty when it has none registered."""
        if filename not in self.sha256:
            return ()
        return (self.sha256[filename], *self.extra_sha256.get(filename, ()))

    def urls(self, filename: str) -> list[str]:
        """The mirror URLs of a file, in the order to try them."""
        return [base.rstrip("/") + "/" + filename for base in self.mirrors]
