"""Shared fixtures: tiny synthetic CIFAR-like data made on the spot (never the real images)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dse.data import Cifar10, fingerprint

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def synthetic_cifar(n_train: int = 512, n_test: int = 200, seed: int = 0) -> Cifar10:
    """Learnable toy data: each class has its own mean colour, plus noise."""
    g = torch.Generator().manual_seed(seed)
    palette = torch.randint(40, 216, (10, 3), generator=g)

    def make(n):
        y = torch.arange(n) % 10
        x = palette[y].view(n, 3, 1, 1).float() + 12 * torch.randn(n, 3, 32, 32, generator=g)
        return x.clamp(0, 255).to(torch.uint8), y

    tx, ty = make(n_train)
    vx, vy = make(n_test)
    return Cifar10(tx, ty, vx, vy, source="synthetic", fingerprint=fingerprint(tx, ty, vx, vy))


@pytest.fixture(scope="session")
def tiny_data() -> Cifar10:
    return synthetic_cifar()


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep the decoded-data cache of tests out of the user's home, and make the tests' temporary folders
    configured folders for sweep specs and the app (dse/paths.py); for the whole session, so that module
    fixtures get both too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DSE_CACHE", str(tmp_path_factory.getbasetemp() / "dse-cache"))
        mp.setenv("DSE_ALLOWED_DIRS", str(tmp_path_factory.getbasetemp()))
        yield


@pytest.fixture(scope="session")
def shared_cifar() -> Path:
    if not SHARED_CIFAR.exists():
        pytest.skip(f"real CIFAR-10 copy not found at {SHARED_CIFAR}")
    return SHARED_CIFAR


def pytest_configure(config):
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
