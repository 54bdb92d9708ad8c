"""The networks the explorer knows, declared once and torch-free: each name with the shortcut kernel sizes it
offers (only ResNet20's projection shortcuts have a choice). dse/core/models registers one builder per name
here; a builder for a name not declared, or a name without a builder, fails at import."""
from __future__ import annotations

import math

from dse.domain.errors import DSEError

# network -> shortcut kernel sizes, in the order the page lists them
SHORTCUT_KERNELS: dict[str, tuple[int, ...]] = {"resnet20": (1, 3), "vgg13": (1,), "mobilenetv2": (1,)}
NETWORKS = tuple(SHORTCUT_KERNELS)


def check_network(name: str) -> str:
    if name not in SHORTCUT_KERNELS:
        raise DSEError(f"unknown network {name!r}; choose one of {', '.join(sorted(SHORTCUT_KERNELS))}")
    return name


def shortcut_kernels(name: str) -> tuple[int, ...]:
    """Allowed shortcut kernel sizes for a network."""
    return SHORTCUT_KERNELS[check_network(name)]


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
