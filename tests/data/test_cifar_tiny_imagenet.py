"""CIFAR-10 and Tiny ImageNet: real on-disk formats read back exactly, clear errors."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from lpbench.data import (
    ChecksumError,
    DataFormatError,
    DatasetNotFoundError,
    dataset_eval_subset,
    get_dataset_info,
    load_arrays,
    load_dataset,
    prepare_tiny_imagenet,
)
from lpbench.data.cifar import SafeUnpickler
from lpbench.data.loader import EpochBatches, augment_tiny_imagenet, batch_loader
from lpbench.data.tiny_imagenet import TINY_IMAGENET_FILES
from tests.support import write_cifar10_archive, write_tiny_imagenet_tree


def test_cifar10_archive_and_unpacked_folder_read_back_exactly(tmp_path) -> None:
    path, train_x, train_y, test_x, test_y = write_cifar10_archive(tmp_path / "cifar10")
    images, labels = load_arrays("cifar10", "train", data_dir=tmp_path)
    assert images.dtype == np.uint8 and images.shape == (40, 3, 32, 32)
    np.testing.assert_array_equal(images, train_x)
    np.testing.assert_array_equal(labels, train_y)
    test = load_dataset("cifar10", "test", data_dir=tmp_path)
    assert torch.equal(test.images, torch.from_numpy(test_x).float() / 255)
    assert torch.equal(test.labels, torch.from_numpy(test_y))
    # the unpacked folder is accepted in place of the archive
    unpacked = tmp_path / "unpacked"
    with tarfile.open(path) as archive:
        archive.extractall(unpacked / "cifar10", filter="data")
    images, _ = load_arrays("cifar10", "test", data_dir=unpacked)
    np.testing.assert_array_equal(images, test_x)
    assert get_dataset_info("cifar10").eps == pytest.approx(16 / 255)


def test_cifar10_truncated_and_tampered_files(tmp_path) -> None:
    path, *_ = write_cifar10_archive(tmp_path / "cifar10")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="truncated"):
        load_arrays("cifar10", "train", data_dir=tmp_path)
    with pytest.raises(ChecksumError, match="SHA-256"):
        load_arrays("cifar10", "train", data_dir=tmp_path, verify=True)

    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = pickle.dumps({b"data": Boom(), b"labels": [0]}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load \w+\.print"):
        SafeUnpickler(io.BytesIO(evil), encoding="bytes").load()


def test_cifar10_offline_message(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError) as err:
        load_arrays("cifar10", "train", data_dir=tmp_path / "none", download=False)
    text = str(err.value)
    assert "cifar-10-python.tar.gz" in text and "--data-dir" in text and "toronto" in text


def test_tiny_imagenet_prepare_reads_back_exactly_and_resumes(tmp_path) -> None:
    root, wnids, pixels = write_tiny_imagenet_tree(tmp_path / "src")
    out = tmp_path / "data" / "tiny-imagenet"
    prepare_tiny_imagenet(out, root, progress=False)
    images, labels = load_arrays("tiny-imagenet", "train", data_dir=tmp_path / "data")
    assert isinstance(images, np.memmap) and images.shape == (12, 3, 64, 64)
    order = sorted(wnids)
    for i, w in enumerate(order):
        for k in range(4):
            row = i * 4 + k
            assert labels[row] == i
            np.testing.assert_array_equal(
                images[row], pixels[f"train/{w}/images/{w}_{k}.JPEG"].transpose(2, 0, 1)
            )
    val_x, val_y = load_arrays("tiny-imagenet", "test", data_dir=tmp_path / "data")
    for k in range(6):
        assert val_y[k] == order.index(wnids[k % 3])
        np.testing.assert_array_equal(
            val_x[k], pixels[f"val/images/val_{k}.JPEG"].transpose(2, 0, 1)
        )
    assert dataset_eval_subset("tiny-imagenet", 6, 4).tolist() == [0, 1, 2, 3]

    # a kill mid-way: the finished chunk is kept, the rest is converted on the next call
    (out / "val-images.npy").unlink()
    (out / "val-labels.npy").unlink()
    import lpbench.data.tiny_imagenet as tiny

    calls = {"n": 0}
    real = tiny.decode

    def dies_after_three(data, where):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(data, where)

    tiny._CHUNK = 2
    try:
        tiny.decode = dies_after_three
        with pytest.raises(KeyboardInterrupt):
            prepare_tiny_imagenet(out, root, progress=False)
        assert (out / "val-images.npy.partial").exists() and not (out / "val-images.npy").exists()
        resumed = {"n": 0}

        def counting(data, where):
            resumed["n"] += 1
            return real(data, where)

        tiny.decode = counting
        prepare_tiny_imagenet(out, root, progress=False)
        assert resumed["n"] == 6 - 2  # the first chunk of two was kept
    finally:
        tiny.decode, tiny._CHUNK = real, 1000
    again, _ = load_arrays("tiny-imagenet", "test", data_dir=tmp_path / "data")
    np.testing.assert_array_equal(again, val_x)


def test_tiny_imagenet_errors(tmp_path) -> None:
    root, wnids, _ = write_tiny_imagenet_tree(tmp_path / "src")
    bad = root / "train" / wnids[0] / "images" / f"{wnids[0]}_0.JPEG"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DataFormatError, match=f"{wnids[0]}_0.JPEG"):
        prepare_tiny_imagenet(tmp_path / "out", root, progress=False)
    with pytest.raises(DatasetNotFoundError, match="lpbench data prepare tiny-imagenet"):
        load_arrays("tiny-imagenet", "train", data_dir=tmp_path / "nothing")
    cache = tmp_path / "cache" / "tiny-imagenet"
    cache.mkdir(parents=True)
    for name in TINY_IMAGENET_FILES["train"]:
        np.save(cache / name, np.zeros((4, 3, 64, 64) if "images" in name else 4, np.uint8))
    data = (cache / "train-images.npy").read_bytes()
    (cache / "train-images.npy").write_bytes(data[:1000])
    with pytest.raises(DataFormatError, match="truncated"):
        load_arrays("tiny-imagenet", "train", data_dir=tmp_path / "cache")


def test_loader_order_is_seeded_resumable_and_split_over_ranks() -> None:
    images = np.arange(10 * 3, dtype=np.uint8).reshape(10, 3, 1, 1)
    labels = np.arange(10)

    def batches(**kw):
        loader = batch_loader(images, labels, EpochBatches(10, 4, **kw))
        out = []
        for x, y, i in loader:
            assert torch.equal(y, i) and torch.equal(x[:, 0, 0, 0], 3 * i)  # rows stay aligned
            out.append(y.tolist())
        return out

    full = batches(seed=1, epoch=2)
    assert sorted(i for b in full for i in b) == list(range(10)) and [len(b) for b in full] == [
        4,
        4,
        2,
    ]
    assert full != batches(seed=1, epoch=3)
    assert batches(seed=1, epoch=2, start_step=1) == full[1:]
    ranks = [batches(seed=1, epoch=2, rank=r, world_size=2) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == full[:2]  # last partial dropped
    with pytest.raises(ValueError, match="divisible"):
        EpochBatches(10, 3, seed=0, epoch=1, world_size=2)


def test_tiny_imagenet_augmentation_is_split_invariant() -> None:
    x = torch.rand(4, 3, 64, 64)
    whole = augment_tiny_imagenet(x, torch.Generator().manual_seed(5), slice(0, 4), 4)
    first = augment_tiny_imagenet(x[:2], torch.Generator().manual_seed(5), slice(0, 2), 4)
    second = augment_tiny_imagenet(x[2:], torch.Generator().manual_seed(5), slice(2, 4), 4)
    assert torch.equal(whole, torch.cat([first, second]))
    assert whole.shape == x.shape and whole.min() >= 0 and whole.max() <= 1
    assert not torch.allclose(whole, x)
    gray = torch.full((1, 3, 64, 64), 0.5)  # no saturation to scale, crops of a flat image
    out = augment_tiny_imagenet(gray, torch.Generator().manual_seed(0), slice(0, 1), 1)
    assert torch.allclose(out, gray, atol=1e-5)


def test_archive_download_checked_by_md5(tmp_path) -> None:
    import hashlib

    from lpbench.data import download

    source = tmp_path / "archive.zip"
    source.write_bytes(b"not really a zip")
    good = hashlib.md5(source.read_bytes()).hexdigest()
    dest = download([source.as_uri()], tmp_path / "out" / "a.zip", None, md5=good)
    assert dest.read_bytes() == source.read_bytes()
    with pytest.raises(ChecksumError, match="MD5"):
        download([source.as_uri()], tmp_path / "out" / "b.zip", None, md5="0" * 32)
    assert not (tmp_path / "out" / "b.zip").exists()
    with pytest.raises(DataFormatError, match="not a zip"):
        prepare_tiny_imagenet(tmp_path / "cache", dest, progress=False)
