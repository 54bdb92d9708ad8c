"""Device choice: CUDA when present (`auto`), else the CPU. Precision is dse/core/runtime/precision.py's."""
from __future__ import annotations

import re

import torch

from dse.core.errors import DSEError


def check_device_name(name) -> str:
    """A device name we accept, checked without needing that device here (a spec may name a GPU box's)."""
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise DSEError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    return name


def pick_device(name: str = "auto") -> torch.device:
    if check_device_name(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DSEError(f"device {name!r} asked for, but no CUDA GPU is available; use --device cpu")
    return dev
