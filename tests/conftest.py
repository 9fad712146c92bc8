"""Shared fixtures: tiny models and inputs, and no network."""

from __future__ import annotations

import socket

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a non-loopback connection fails the test."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


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


@pytest.fixture
def tiny_net() -> TinyNet:
    return TinyNet().eval()


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


@pytest.fixture
def mnist_dir(tmp_path):
    return write_mnist_folder(tmp_path / "mnist")


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
