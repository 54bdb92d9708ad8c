"""How a stuck cell reads, per fault model: each is a function (levels, faulty) -> levels.

- SA1: the cell is trapped in the high state and its weight reads as 0, as the paper models it.
- SA0 (second model): the weight reads as the largest magnitude of its sign (+-127 levels).
- Bits per cell ("+bpc:B" in the fault model, B in 1, 2, 4): a weight's 8-bit magnitude spans 8/B cells, each
  stuck on its own with probability f; a stuck cell's slice of the magnitude reads 0 (SA1) or all ones (SA0),
  the sign (ISAAC's differential/bias encoding, not a stored bit) is kept. At 8 bits per cell this is the
  per-weight model above, draws and all.
- The spatial models (dse/core/faults/spatial.py) choose which cells are stuck; their cells read as SA1.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from dse.core.crossbar.quantize import WEIGHT_BITS


def sa1(levels: Tensor, faulty: Tensor) -> Tensor:
    """Stuck-at-1: a faulty cell reads its weight as 0."""
    return levels.masked_fill(faulty, 0.0)


def sa0(levels: Tensor, faulty: Tensor) -> Tensor:
    """Stuck-at-0: a faulty cell reads the largest magnitude of its weight's sign (0 counts as +)."""
    qmax = levels.abs().amax().clamp_min(1.0)  # the level range, 127 for 8 bits
    extreme = torch.where(levels < 0, -qmax, qmax)
    return torch.where(faulty, extreme, levels)


# how a stuck cell reads, per model (FAULT_MODEL_NAMES' order): the spatial models' cells are SA1
FAULT_MODELS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"sa1": sa1, "sa0": sa0, "rows": sa1, "cols": sa1,
                                                               "clustered": sa1, "mixed": sa1}


def cell_slices(levels: Tensor, stuck: Tensor, bits_per_cell: int, model: str = "sa1") -> Tensor:
    """Levels with each stuck cell's slice of the magnitude zeroed (sa1) or set (sa0); `stuck` has one
    trailing axis of 8/bits_per_cell cells, least significant slice first."""
    mag, sign = levels.abs().to(torch.int32), torch.where(levels < 0, -1.0, 1.0).to(levels.dtype)
    full = (1 << bits_per_cell) - 1
    for j in range(stuck.shape[-1]):
        mask = full << (j * bits_per_cell)
        hit = stuck[..., j].to(mag.device)
        mag = torch.where(hit, mag & ~mask if model == "sa1" else mag | mask, mag)
    qmax = 2 ** (WEIGHT_BITS - 1) - 1  # a set top slice cannot exceed the quantiser's range
    return sign * mag.clamp_(max=qmax).to(levels.dtype)
