"""Checksummed downloads from a list of mirrors, written atomically."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

TIMEOUT_S = 30.0
_CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    """A file's SHA-256 digest is not the registered one."""


class DatasetNotFoundError(FileNotFoundError):
    """The files of a data set are neither on disk nor downloadable."""


def sha256sum(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex SHA-256 digest of a file (or another hashlib ``algorithm``'s)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, out: Path, *, progress: bool, desc: str) -> None:
    """Stream ``url`` into ``out`` with a progress bar."""
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(out, "wb") as handle:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            disable=not progress,
            leave=False,
        ) as bar:
            while chunk := response.read(_CHUNK):
                handle.write(chunk)
                bar.update(len(chunk))


def download(
    urls: list[str],
    dest: str | os.PathLike,
    sha256: str | None,
    *,
    progress: bool = True,
    md5: str | None = None,
) -> Path:
    """Download ``dest`` from the first mirror in ``urls`` that answers, and verify it.

    The file is streamed to a temporary file beside ``dest`` and renamed onto it only after
    its SHA-256 digest matched ``sha256``, so ``dest`` is never half-written. A mirror that
    fails with a network or HTTP error is skipped; when all fail, DatasetNotFoundError names
    each error. A digest mismatch deletes the download and raises ChecksumError at once.
    ``md5`` is checked instead when no SHA-256 is published for the file.
    """
    algorithm, expected = ("sha256", sha256) if sha256 is not None else ("md5", md5)
    if expected is None:
        raise ValueError(f"no digest to verify {Path(dest).name} against")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for url in urls:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            try:
                _fetch(url, tmp, progress=progress, desc=dest.name)
            except (OSError, http.client.HTTPException) as err:
                errors.append(f"{url}: {getattr(err, 'reason', err)}")
                continue
            actual = sha256sum(tmp, algorithm)
            if actual != expected.lower():
                raise ChecksumError(
                    f"downloaded {dest.name} from {url} has {algorithm.upper()} {actual}, "
                    f"expected {expected.lower()}; the file was deleted"
                )
            os.replace(tmp, dest)
            return dest
        finally:
            tmp.unlink(missing_ok=True)
    raise DatasetNotFoundError(f"could not download {dest.name}: " + "; ".join(errors))
