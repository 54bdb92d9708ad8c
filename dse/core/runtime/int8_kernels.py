"""Which int8 kernels this machine has (x86 VNNI or AMX-INT8 through PyTorch's quantized engines), and the
engine setting the int8 evaluation engine (dse/core/evaluation/int8.py) runs under."""
from __future__ import annotations

import contextlib
import platform

import torch

ENGINES = ("x86", "onednn", "fbgemm")  # in order of preference where supported; measured in dse bench


def int8_capability() -> tuple[bool, str]:
    """(native int8 kernels?, in words): an x86 CPU with VNNI (AVX512-VNNI / AVX-VNNI) or AMX, and a torch
    with an x86 quantized engine. Without VNNI, u8 x s8 products saturate in 16-bit pairs (fbgemm's
    reduce_range workaround would make the inputs 7-bit), so such CPUs keep fp32 / bf16."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False, f"{platform.machine()}: not x86, no int8 kernels used"
    engines = [e for e in ENGINES if e in torch.backends.quantized.supported_engines]
    if not engines:
        return False, "this torch has no x86 quantized engine"
    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    vnni = bool(getattr(torch.cpu, "_is_vnni_supported", lambda: False)())
    if not (amx or vnni):
        return False, f"{torch.backends.cpu.get_cpu_capability()}: no VNNI or AMX-INT8"
    return True, "AMX-INT8" if amx else "VNNI"


def default_engine() -> str:
    return next(e for e in ENGINES if e in torch.backends.quantized.supported_engines)


@contextlib.contextmanager
def quantized_engine(name: str):
    """torch.backends.quantized.engine set to `name` for the block (it is process-wide; packed weights are
    the engine's own, so packing and running share one)."""
    saved = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = saved
