"""Data: IDX parsing, checksummed downloads, file resolution, the registry, subsets."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from lpbench.data import (
    DATASETS,
    ArrayDataset,
    ChecksumError,
    DataFormatError,
    DatasetNotFoundError,
    download,
    evaluation_subset,
    get_dataset_info,
    load_dataset,
    read_idx,
    sha256sum,
    write_idx,
)
from lpbench.evaluation import DEFAULT_EPS, PROTOCOLS, default_eps

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
UNREACHABLE = "http://127.0.0.1:9/"
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real cache, home or $LPBENCH_DATA leaks into a test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LPBENCH_DATA", raising=False)


def write_split(
    folder: Path,
    split: str = "test",
    n: int = 12,
    *,
    gz: bool = True,
    seed: int = 0,
    classes: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Write one split in MNIST's on-disk format; return its images and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, classes, n).astype(np.uint8)
    suffix = ".gz" if gz else ""
    images_name, labels_name = SPLIT_FILES[split]
    write_idx(folder / f"{images_name}{suffix}", images)
    write_idx(folder / f"{labels_name}{suffix}", labels)
    return images, labels


def with_mirror(
    monkeypatch: pytest.MonkeyPatch, name: str, mirror: Path | str, **changes: object
) -> None:
    """Register ``name`` with ``mirror`` as its only mirror, with the mirror's digests."""
    base = mirror.as_uri() + "/" if isinstance(mirror, Path) else mirror
    sha = (
        {f.name: sha256sum(f) for f in mirror.iterdir()}
        if isinstance(mirror, Path)
        else DATASETS[name].sha256
    )
    info = dataclasses.replace(
        DATASETS[name], mirrors=(base,), sha256=sha, extra_sha256={}, **changes
    )
    monkeypatch.setitem(DATASETS, name, info)


# --- IDX ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path: Path, dtype: type, name: str) -> None:
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = write_idx(tmp_path / name, array)
    assert path.read_bytes().startswith(b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    array = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x", array, compress=True)), array)
    np.testing.assert_array_equal(
        read_idx(write_idx(tmp_path / "y.gz", array, compress=False)), array
    )


def test_idx_header_layout(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x", np.array([[1, 2, 3]], dtype=np.int16))
    assert path.read_bytes() == bytes.fromhex("00000b020000000100000003000100020003")


def test_write_idx_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint16"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))


@pytest.mark.parametrize(("cut", "message"), [(-1, "truncated"), (+2, "trailing bytes")])
@pytest.mark.parametrize("gz", [False, True])
def test_payload_length_must_match(tmp_path: Path, cut: int, message: str, gz: bool) -> None:
    raw = write_idx(tmp_path / "raw", np.zeros((4, 5), dtype=np.uint8)).read_bytes()
    content = raw[:cut] if cut < 0 else raw + b"\0" * cut
    path = tmp_path / "bad"
    path.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(DataFormatError, match=message) as info:
        read_idx(path)
    text = str(info.value)
    assert str(path) in text and "expected 20 bytes" in text
    assert f"found {20 + cut}" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (bytes.fromhex("0100080100000001ff"), "first two bytes"),
        (bytes.fromhex("0000070100000001ff"), "type code 0x07"),
        (bytes.fromhex("000008"), "header"),
        (bytes.fromhex("0000080200000001"), "header"),
    ],
)
def test_bad_header(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=message):
        read_idx(path)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_gzip(tmp_path: Path, damage: str) -> None:
    rng = np.random.default_rng(0)
    path = write_idx(tmp_path / "x.gz", rng.integers(0, 256, 5000, dtype=np.uint8))
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 2 :]
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="corrupt gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --- downloads ---------------------------------------------------------------------------


def test_download_via_file_url_after_a_dead_mirror(tmp_path: Path) -> None:
    source = tmp_path / "mirror" / "f.bin"
    source.parent.mkdir()
    source.write_bytes(b"payload" * 1000)
    dest = tmp_path / "out" / "f.bin"
    got = download(
        [UNREACHABLE + "f.bin", source.as_uri()], dest, sha256sum(source), progress=False
    )
    assert got == dest and dest.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]


def test_download_checksum_mismatch_deletes_the_file(tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    source.write_bytes(b"not what was registered")
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(ChecksumError) as info:
        download([source.as_uri()], dest, "0" * 64, progress=False)
    text = str(info.value)
    assert "f.bin" in text and "0" * 64 in text and sha256sum(source) in text
    assert list(dest.parent.iterdir()) == []


def test_download_offline(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"127\.0\.0\.1"):
        download(
            [UNREACHABLE + "f.bin", (tmp_path / "missing").as_uri()],
            tmp_path / "f.bin",
            "0" * 64,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_load_dataset_downloads_into_cache_then_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels = write_split(tmp_path / "mirror")
    with_mirror(monkeypatch, "mnist", tmp_path / "mirror")
    data = load_dataset("mnist", "test", progress=False)
    cached = tmp_path / "cache" / "lpbench" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    np.testing.assert_array_equal(data.labels.numpy(), labels)
    # Second load: no mirror needed, and the cached files pass their checksums.
    with_mirror(monkeypatch, "mnist", UNREACHABLE)
    assert len(load_dataset("mnist", "test", download=False)) == len(images)


def test_load_dataset_downloads_into_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_split(tmp_path / "mirror", "train", n=5)
    with_mirror(monkeypatch, "mnist", tmp_path / "mirror")
    assert len(load_dataset("mnist", "train", data_dir=tmp_path / "data", progress=False)) == 5
    assert (tmp_path / "data" / "mnist" / "train-labels-idx1-ubyte.gz").is_file()
    assert not (tmp_path / "cache").exists()


def test_cached_file_with_wrong_checksum_is_refused(tmp_path: Path) -> None:
    cached = tmp_path / "cache" / "lpbench" / "mnist"
    write_split(cached)
    with pytest.raises(ChecksumError) as info:
        load_dataset("mnist", "test", download=False)
    text = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in text and "delete" in text
    assert DATASETS["mnist"].sha256["t10k-images-idx3-ubyte.gz"] in text
    assert sha256sum(cached / "t10k-images-idx3-ubyte.gz") in text
    # The user's file is left alone, and can be loaded on purpose.
    assert (cached / "t10k-images-idx3-ubyte.gz").is_file()
    assert len(load_dataset("mnist", "test", download=False, verify=False)) == 12


def test_user_folders_are_verified_only_on_request(tmp_path: Path) -> None:
    write_split(tmp_path / "mine")
    assert len(load_dataset("mnist", "test", data_dir=tmp_path / "mine")) == 12
    with pytest.raises(ChecksumError):
        load_dataset("mnist", "test", data_dir=tmp_path / "mine", verify=True)


def test_unreachable_network_gives_the_offline_paragraph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_mirror(monkeypatch, "mnist", UNREACHABLE)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "train", progress=False)
    text = str(info.value)
    assert "train-images-idx3-ubyte.gz" in text and "train-labels-idx1-ubyte.gz" in text
    assert "failed" in text and "127.0.0.1" in text and "\n" not in text


# --- resolution and loading --------------------------------------------------------------


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_split(tmp_path / "explicit", n=3)
    write_split(tmp_path / "env" / "mnist", n=4)
    write_split(tmp_path / "cache" / "lpbench" / "mnist", n=5)
    monkeypatch.setenv("LPBENCH_DATA", str(tmp_path / "env"))
    kwargs = {"download": False, "verify": False}
    assert len(load_dataset("mnist", "test", data_dir=tmp_path / "explicit", **kwargs)) == 3
    assert len(load_dataset("mnist", "test", **kwargs)) == 4
    monkeypatch.delenv("LPBENCH_DATA")
    assert len(load_dataset("mnist", "test", **kwargs)) == 5
    # A folder counts only when it has both files of the split.
    (tmp_path / "explicit" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert len(load_dataset("mnist", "test", data_dir=tmp_path / "explicit", **kwargs)) == 5


def test_cache_falls_back_to_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    write_split(tmp_path / "home" / ".cache" / "lpbench" / "mnist", n=6)
    assert len(load_dataset("mnist", "test", download=False, verify=False)) == 6


def test_name_subfolder_beats_the_folder_itself(tmp_path: Path) -> None:
    write_split(tmp_path / "data", n=3)
    write_split(tmp_path / "data" / "mnist", n=7)
    assert len(load_dataset("mnist", "test", data_dir=tmp_path / "data")) == 7


@pytest.mark.parametrize("gz", [True, False])
def test_load_fixture_folder(tmp_path: Path, gz: bool) -> None:
    images, labels = write_split(tmp_path / "mnist", "train", n=9, gz=gz)
    data = load_dataset("mnist", "train", data_dir=tmp_path / "mnist")
    assert isinstance(data, ArrayDataset)
    assert (data.name, data.split, data.num_classes, len(data)) == ("mnist", "train", 10, 9)
    assert data.images.dtype == torch.float32 and data.images.shape == (9, 1, 28, 28)
    assert float(data.images.min()) >= 0.0 and float(data.images.max()) <= 1.0
    np.testing.assert_allclose(data.images[:, 0].numpy(), images / 255.0, rtol=1e-6)
    assert data.labels.dtype == torch.int64
    np.testing.assert_array_equal(data.labels.numpy(), labels)


def test_subset(tmp_path: Path) -> None:
    write_split(tmp_path / "d", n=10)
    data = load_dataset("mnist", "test", data_dir=tmp_path / "d")
    part = data.subset(np.array([7, 2]))
    assert len(part) == 2 and part.split == "test"
    assert torch.equal(part.images[0], data.images[7]) and part.labels[1] == data.labels[2]


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((4, 27, 28), np.uint8), np.zeros(4, np.uint8), "N x 28 x 28"),
        (np.zeros((4, 28, 28), np.float32), np.zeros(4, np.uint8), "uint8 images"),
        (np.zeros((4, 28, 28), np.uint8), np.zeros(3, np.uint8), "expected 4 labels"),
        (np.zeros((4, 28, 28), np.uint8), np.full(4, 10, np.uint8), r"\[0, 10\)"),
        (np.zeros((4, 28, 28), np.uint8), np.zeros((4, 1), np.uint8), "labels of shape N"),
    ],
)
def test_shapes_are_validated(
    tmp_path: Path, images: np.ndarray, labels: np.ndarray, message: str
) -> None:
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataFormatError, match=message):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_not_found_paragraph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_mirror(monkeypatch, "fashion-mnist", UNREACHABLE, system_dirs=(tmp_path / "no-debian",))
    monkeypatch.setenv("LPBENCH_DATA", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path / "mine", download=False)
    assert isinstance(info.value, FileNotFoundError)
    text = str(info.value)
    assert "\n" not in text
    for needed in (
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "--data-dir",
        "$LPBENCH_DATA",
        "apt-get install dataset-fashion-mnist",
        str(tmp_path / "mine"),
        str(tmp_path / "env" / "fashion-mnist"),
        str(tmp_path / "cache" / "lpbench" / "fashion-mnist"),
        str(tmp_path / "no-debian"),
    ):
        assert needed in text, needed


def test_registry() -> None:
    assert {"mnist", "fashion-mnist"} <= set(DATASETS)
    info = get_dataset_info("fashion-mnist")
    assert info.input_shape == (1, 28, 28) and len(info.class_names) == info.num_classes == 10
    for name in DATASETS:
        info = DATASETS[name]
        if info.prepare_hint:  # files built locally (Tiny ImageNet's cache) have no digest
            continue
        for files in info.files.values():
            assert all(len(info.sha256[f]) == 64 for f in files)
    with pytest.raises(ValueError, match="fashion-mnist"):
        get_dataset_info("cifar-11")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("mnist", "validation")


def test_debian_fashion_mnist() -> None:
    if not DEBIAN_FASHION.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed")
    info = DATASETS["fashion-mnist"]
    for split in ("train", "test"):
        for filename in info.files[split]:
            assert sha256sum(DEBIAN_FASHION / filename) in info.accepted_sha256(filename)
    for split, size in (("train", 60000), ("test", 10000)):
        data = load_dataset("fashion-mnist", split, download=False, verify=True)
        assert len(data) == size and data.images.shape[1:] == (1, 28, 28)
        assert torch.equal(data.labels.bincount(), torch.full((10,), size // 10))


# --- evaluation subsets ------------------------------------------------------------------


def test_evaluation_subset() -> None:
    first = evaluation_subset(10000, 1000, seed=0)
    assert first.dtype == np.int64 and len(first) == 1000
    assert np.array_equal(first, evaluation_subset(10000, 1000, seed=0))
    assert np.all(np.diff(first) > 0) and first[0] >= 0 and first[-1] < 10000
    assert not np.array_equal(first, evaluation_subset(10000, 1000, seed=1))
    # Pinned, so that a numpy upgrade that changed the stream would be caught.
    assert evaluation_subset(10000, 5).tolist() == [485, 1634, 3577, 4753, 8925]


def test_evaluation_subset_edges() -> None:
    assert evaluation_subset(7, 7).tolist() == list(range(7))
    assert evaluation_subset(7, 1000).tolist() == list(range(7))
    for size in (0, -3):
        with pytest.raises(ValueError):
            evaluation_subset(10, size)


def test_the_registry_alone_holds_each_default_radius() -> None:
    expected = {"mnist": 0.3, "mnist-digits": 0.3, "fashion-mnist": 0.1}
    expected |= {"cifar10": 16 / 255, "tiny-imagenet": 16 / 255}
    for name, info in DATASETS.items():
        assert info.eps == expected[name] and info.eps_note
        assert default_eps(name) == info.eps == DEFAULT_EPS[name]
    # the presets carry no radius of their own
    for protocol in PROTOCOLS.values():
        assert "eps" not in {f.name for f in dataclasses.fields(protocol)}
