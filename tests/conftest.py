"""Shared test setup: smoke budget, headless widgets, and a guard that fails any network access."""

from __future__ import annotations

import os
import socket

import pytest
import torch

# set before any notebook kernel starts so nbval runs inherit them
os.environ.setdefault("KIT_BUDGET", "smoke")
os.environ.setdefault("KIT_INTERACTIVE", "0")
os.environ.pop("KIT_RESULTS_FILE", None)


class NetworkAccess(RuntimeError):
    """Raised when code under test tries to open a network connection."""


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to connect a socket (other than a local UNIX socket) fails the test loudly."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise NetworkAccess(f"test tried to reach the network: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection",
                        lambda address, *a, **k: (_ for _ in ()).throw(NetworkAccess(f"network: {address!r}")))
    yield


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models: intra-op threads only add contention on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device the suite trains on: kit.get_device() (CUDA on a GPU machine), or $KIT_TEST_DEVICE if set.

    The same tests are the CPU suite and the GPU suite; a test that takes this fixture puts its model and
    data there, and everything the kit does follows the model.
    """
    from devices import DEVICE
    return DEVICE
