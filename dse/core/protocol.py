"""How BatchNorm statistics are obtained under faults: the three protocols an evaluation can use, and how
tables and charts name them; and the names of the fault models and of the precisions. Torch-free (the page names protocols without importing torch); the work
itself is in dse/core/calibrate.py."""
from __future__ import annotations

from dse.core.errors import DSEError

BN_PROTOCOLS = ("paper", "chip", "batch")
DEFAULT_CALIB_IMAGES = 500


FAULT_MODEL_NAMES = ("sa1", "sa0")  # dse.core.faults.FAULT_MODELS implements them


PRECISIONS = ("auto", "fp32", "bf16")  # dse.core.precision chooses and runs them


def check_precision(name) -> str:
    if name not in PRECISIONS:
        raise DSEError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    return name


def check_fault_model(name: str) -> str:
    if name not in FAULT_MODEL_NAMES:
        raise DSEError(f"unknown fault model {name!r}; choose one of {', '.join(FAULT_MODEL_NAMES)}")
    return name


def check_bn_protocol(name: str) -> str:
    if name not in BN_PROTOCOLS:
        raise DSEError(f"unknown BN protocol {name!r}; choose one of {', '.join(BN_PROTOCOLS)}")
    return name


def bn_label(bn: str, calib_images: int | None = None) -> str:
    """How a number's BatchNorm statistics were obtained, as tables and charts name it."""
    return {"paper": "paper (Algorithm 1)", "chip": f"chip (N={calib_images})",
            "batch": "batch (transductive)"}[check_bn_protocol(bn)]
