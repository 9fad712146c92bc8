"""Helpers the tests share: tiny models, data files in the exact on-disk formats, a
runner for the command line."""

from __future__ import annotations

import torch
from torch import nn

from lpbench.cli import main


class TinyNet(nn.Module):
    """A small conv net on 1x8x8 inputs, fast enough for property tests."""

    def __init__(self, classes: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def write_mnist_folder(
    folder, n_train: int = 256, n_test: int = 128, seed: int = 0, gz: bool = True
):
    """Write a tiny data set in MNIST's exact on-disk format (IDX, optionally gzipped).

    Labels follow a simple rule of the image (brightest quadrant, 4 classes used) so a
    model can learn something in one epoch.
    """
    import numpy as np

    from lpbench.data import write_idx

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = (rng.random((n, 28, 28)) * 80).astype(np.uint8)
        labels = rng.integers(0, 4, n).astype(np.uint8)
        for i, label in enumerate(labels):
            r, c = divmod(int(label), 2)
            images[i, r * 14 : r * 14 + 14, c * 14 : c * 14 + 14] += 150
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return folder


def train_tiny(data, out, preset: str = "clp") -> None:
    """One epoch of LeNet with ``preset`` on MNIST-format files, through the CLI."""
    from lpbench.cli import main

    argv = [
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        str(data),
        "--preset",
        preset,
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0


class BatchNormNet(nn.Module):
    """A conv net with BatchNorm and dropout on 1x8x8 inputs (a user's own model)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Flatten(),
            nn.Linear(4 * 8 * 8, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def write_cifar10_archive(folder, per_batch: int = 8, n_test: int = 16, seed: int = 0):
    """Write ``cifar-10-python.tar.gz`` in the official layout: protocol-2 pickles of
    dicts with bytes keys, uint8 ``data`` (N x 3072) and a list of ``labels``.

    Returns (archive path, train images, train labels, test images, test labels).
    """
    import io
    import pickle
    import tarfile

    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        arrays[name] = (
            rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            [int(v) for v in rng.integers(0, 10, n)],
        )
    path = folder / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, (data, labels) in arrays.items():
            payload = pickle.dumps(
                {b"batch_label": name.encode(), b"labels": labels, b"data": data}, protocol=2
            )
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    train_x = np.concatenate([arrays[n][0] for n in names[:5]]).reshape(-1, 3, 32, 32)
    train_y = np.concatenate([arrays[n][1] for n in names[:5]]).astype(np.int64)
    test_x = arrays["test_batch"][0].reshape(-1, 3, 32, 32)
    test_y = np.asarray(arrays["test_batch"][1], dtype=np.int64)
    return path, train_x, train_y, test_x, test_y


def write_tiny_imagenet_tree(folder, classes: int = 3, per_class: int = 4, n_val: int = 6):
    """Write the official Tiny ImageNet layout with real (lossless-quality) JPEGs.

    Returns (root, wnids in file order, {relative path: decoded uint8 HxWx3 pixels}).
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    root = folder / "tiny-imagenet-200"
    wnids = [f"n0{9 - i}000{i}" for i in range(classes)]  # not sorted on purpose
    (root / "val" / "images").mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    pixels = {}

    def save(rel: str) -> None:
        img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        if len(pixels) % 5 == 1:  # some images are grayscale, as in the real archive
            gray = Image.fromarray(img[:, :, 0], mode="L")
            gray.save(root / rel, format="JPEG", quality=95)
        else:
            Image.fromarray(img).save(root / rel, format="JPEG", quality=95)
        with Image.open(root / rel) as decoded:
            pixels[rel] = np.asarray(decoded.convert("RGB"))

    for w in wnids:
        (root / "train" / w / "images").mkdir(parents=True)
        for k in range(per_class):
            save(f"train/{w}/images/{w}_{k}.JPEG")
    lines = []
    for k in range(n_val):
        save(f"val/images/val_{k}.JPEG")
        lines.append(f"val_{k}.JPEG\t{wnids[k % classes]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root, wnids, pixels


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse errors
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err
