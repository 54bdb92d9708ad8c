"""Name -> builder registry for the networks the explorer knows (a dict and a decorator, as torchvision)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from dse.domain.errors import DSEError
from dse.domain.networks import SHORTCUT_KERNELS, check_width, shortcut_kernels

# network name -> builder(width, shortcut_kernel) -> nn.Module; the names and their shortcut kernels are
# declared torch-free in dse/domain/networks.py
_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Register the builder of a network declared in dse.domain.networks; an undeclared or duplicate name is a
    programming error, raised at import."""

    def wrap(fn):
        if name not in SHORTCUT_KERNELS:
            raise RuntimeError(f"model {name!r} is not declared in dse/domain/networks.py")
        if name in _MODELS:
            raise RuntimeError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn

    return wrap


def check_complete() -> None:
    """Every declared network has a builder (called once the builders are imported)."""
    missing = [n for n in SHORTCUT_KERNELS if n not in _MODELS]
    if missing:
        raise RuntimeError(f"networks declared without a builder: {', '.join(missing)}")


def list_models() -> list[str]:
    return sorted(_MODELS)


def scaled(channels: int, width: float) -> int:
    """Channel count of a widened layer: int(c*w), as in the paper (no rounding to multiples of 8)."""
    c = int(channels * width)
    if c < 1:
        raise DSEError(f"width {width!r} leaves a layer of {channels} channels with none; use a larger width")
    return c


def build_model(name: str, width: float = 1.0, shortcut_kernel: int = 1) -> nn.Module:
    """Build a registered network; every argument is validated with a clear error."""
    allowed = shortcut_kernels(name)
    width = check_width(width)
    if shortcut_kernel not in allowed:
        raise DSEError(
            f"shortcut kernel {shortcut_kernel!r} is not available for {name}; allowed: "
            + ", ".join(str(k) for k in allowed)
        )
    return _MODELS[name](width=width, shortcut_kernel=shortcut_kernel)
