"""Name -> builder registry for the networks the explorer knows (a dict and a decorator, as torchvision)."""
from __future__ import annotations

import math
from typing import Callable

from torch import nn

from dse.core.errors import DSEError

# network name -> builder(width, shortcut_kernel) -> nn.Module
_MODELS: dict[str, Callable[..., nn.Module]] = {}
# networks that have projection shortcuts whose kernel size is a design knob
_SHORTCUT_KERNELS: dict[str, tuple[int, ...]] = {}


def register_model(name: str, shortcut_kernels: tuple[int, ...] = (1,)):
    """Register a builder under `name`; duplicate names are a programming error."""

    def wrap(fn):
        if name in _MODELS:
            raise RuntimeError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        _SHORTCUT_KERNELS[name] = shortcut_kernels
        return fn

    return wrap


def list_models() -> list[str]:
    return sorted(_MODELS)


def shortcut_kernels(name: str) -> tuple[int, ...]:
    """Allowed shortcut kernel sizes for a network (only ResNet20 has a choice)."""
    check_network(name)
    return _SHORTCUT_KERNELS[name]


def check_network(name: str) -> str:
    if name not in _MODELS:
        raise DSEError(f"unknown network {name!r}; choose one of {', '.join(list_models())}")
    return name


def check_width(width) -> float:
    try:
        w = float(width)
    except (TypeError, ValueError):
        raise DSEError(f"width must be a positive number, got {width!r}") from None
    if not math.isfinite(w) or w <= 0:
        raise DSEError(f"width must be a positive finite number, got {width!r}")
    if w > 16:
        raise DSEError(f"width {width!r} is too large; allowed 0 < width <= 16")
    return w


def scaled(channels: int, width: float) -> int:
    """Channel count of a widened layer: int(c*w), as in the paper (no rounding to multiples of 8)."""
    c = int(channels * width)
    if c < 1:
        raise DSEError(f"width {width!r} leaves a layer of {channels} channels with none; use a larger width")
    return c


def build_model(name: str, width: float = 1.0, shortcut_kernel: int = 1) -> nn.Module:
    """Build a registered network; every argument is validated with a clear error."""
    check_network(name)
    width = check_width(width)
    allowed = _SHORTCUT_KERNELS[name]
    if shortcut_kernel not in allowed:
        raise DSEError(
            f"shortcut kernel {shortcut_kernel!r} is not available for {name}; allowed: "
            + ", ".join(str(k) for k in allowed)
        )
    return _MODELS[name](width=width, shortcut_kernel=shortcut_kernel)
