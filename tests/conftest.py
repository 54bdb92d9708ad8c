"""Shared fixtures: tiny synthetic CIFAR-like data made on the spot (never the real images)."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

# Hypothesis keeps its example database and constants cache under this folder: never in the checkout
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="dse-hypothesis-"))
from pathlib import Path

import pytest
import torch

from dse.core.io.data import Cifar10, fingerprint

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
def _isolated_environment(tmp_path_factory):
    """The suite never depends on the user's DSE_* settings nor touches their files: every DSE_* variable of
    the environment is cleared (and fp32 made the default precision); the decoded-data cache, the results store, the runs folder and the
    checkpoint folder default to temporary ones; the tests' temporary folders are configured folders for
    sweep specs and the app (dse/core/io/paths.py). For the whole session, so that module fixtures get it too;
    a test that needs its own sets it with monkeypatch."""
    base = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("DSE_")]:
            mp.delenv(name)
        mp.setenv("DSE_CACHE", str(base / "dse-cache"))  # the precision measurements' cache too
        mp.setenv("DSE_INSTANCES_PER_PASS", "1")  # likewise; tests of batching give theirs
        mp.setenv("DSE_PRECISION", "fp32")  # answers that never depend on what a timing chose; precision tests say theirs
        mp.setenv("DSE_ALLOWED_DIRS", str(base))
        mp.setenv("DSE_STORE", str(base / "session-store" / "results.sqlite"))
        mp.setenv("DSE_RUNS", str(base / "session-runs"))
        mp.setenv("DSE_CHECKPOINTS", str(base / "session-checkpoints"))
        yield


@pytest.fixture(autouse=True)
def _main_module_restored():
    """Streamlit's AppTest runs app.py as `__main__`; left so, a later multiprocessing spawn would re-run the
    app in its children. Each test gets back the interpreter's own main module."""
    main = sys.modules.get("__main__")
    yield
    if sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def shared_cifar() -> Path:
    if not SHARED_CIFAR.exists():
        pytest.skip(f"real CIFAR-10 copy not found at {SHARED_CIFAR}")
    return SHARED_CIFAR


def pytest_addoption(parser):
    parser.addoption("--update-screenshot", action="store_true",
                     help="tests/test_browser.py rewrites docs/app.png, the README's screenshot of the app")


USER_HOME = Path.home()  # the user's, read before the suite points HOME elsewhere
USER_RAY = USER_HOME / ".ray"
_SAVED_ENV: dict[str, str | None] = {}
RAY_SETTINGS = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def pytest_configure(config):
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    _home_of_its_own()


def pytest_unconfigure(config):
    home = os.environ.get("HOME")
    for name, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _SAVED_ENV.clear()
    if home and Path(home).name.startswith("dse-home-"):
        shutil.rmtree(home, ignore_errors=True)


def _home_of_its_own() -> None:
    """The whole session (collection included: test modules import Ray) runs with HOME a fresh temporary
    folder and without the user's Ray settings: Ray's default token file (~/.ray/auth_token, which an
    in-process ray.init() writes) and any other tool's dotfiles land there, never in the user's home, and no
    test connects to the user's cluster nor uses their token. Restored in pytest_unconfigure."""
    if _SAVED_ENV:
        return
    for name in ("HOME", *RAY_SETTINGS):
        _SAVED_ENV[name] = os.environ.pop(name, None)
    os.environ["HOME"] = tempfile.mkdtemp(prefix="dse-home-")


def user_ray_state() -> tuple | None:
    """What the user's ~/.ray holds (names, sizes and modification times), None where there is none."""
    if not USER_RAY.exists():
        return None
    return tuple(sorted((str(p.relative_to(USER_RAY)), p.stat().st_size, p.stat().st_mtime_ns)
                        for p in USER_RAY.rglob("*")))


USER_RAY_AT_START = user_ray_state()


@pytest.fixture()
def user_ray():
    """The user's ~/.ray as it was when the suite started, and a function that reads it now."""
    return USER_RAY_AT_START, user_ray_state


def pytest_sessionfinish(session, exitstatus):
    """Whatever ran, in whatever order: the user's ~/.ray is as the suite found it (absent stays absent)."""
    if user_ray_state() != USER_RAY_AT_START:
        print(f"\nerror: the test suite changed {USER_RAY} (it must write Ray's files under its own HOME)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_data):
    """A tiny ResNet20 (width 0.5, p = 0.2) trained for 3 epochs on the synthetic data, BN calibrated for
    p' = 0 and 0.3: the evaluation tests' model, trained once for the session."""
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.training.train import Recipe, TrainConfig, train

    out = tmp_path_factory.mktemp("trained") / "m.safetensors"
    cfg = TrainConfig(network="resnet20", width=0.5, dropconnect=0.2, seed=0,
                      recipe=Recipe(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0.5),
                      calib_rates=(0.0, 0.3), calib_images=256)
    train(cfg, tiny_data, out, progress=False, log=lambda *_: None)
    return load_checkpoint(out)
