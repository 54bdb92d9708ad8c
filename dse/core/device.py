"""Device and precision choice: CUDA when present (`auto`), bf16 autocast on CPUs with native bf16
(AVX512-BF16/AMX), AMP on CUDA; plain fp32 elsewhere, where bf16 would be emulated and slower."""
from __future__ import annotations

import contextlib
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


def cpu_has_bf16() -> bool:
    return torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX")  # native bf16 units


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision worth using on this device, or None for fp32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def autocast(device: torch.device, enabled: bool = True):
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
