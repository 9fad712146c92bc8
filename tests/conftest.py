"""Shared fixtures: tiny models and inputs, and no network."""

from __future__ import annotations

import os
import socket

import pytest
import torch
from hypothesis import settings

from tests.support import TinyNet, write_mnist_folder

# Property tests draw the same examples on every run, so CI cannot go red by chance;
# LPBENCH_HYPOTHESIS=explore draws fresh ones (run it before adding a property).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("LPBENCH_HYPOTHESIS", "ci"))


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


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread for the suite's tiny models: on a busy 2-core machine two OpenMP
    threads waiting for each other made steps 5-100x slower (subprocesses the tests start
    get OMP_NUM_THREADS=1 for the same reason)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_net() -> TinyNet:
    return TinyNet().eval()


@pytest.fixture
def mnist_dir(tmp_path):
    return write_mnist_folder(tmp_path / "mnist")
