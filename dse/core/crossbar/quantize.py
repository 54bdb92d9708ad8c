"""A weight on the crossbar: 8 bits, one cell per weight, quantised symmetrically per output channel to levels
-127..127; per channel because one cell per weight means each column's ADC range can follow its own weights."""
from __future__ import annotations

import torch
from torch import Tensor

WEIGHT_BITS = 8
LEVELS_ATTR = "_dse_levels"  # each faulty weight carries (levels, per-channel scale): the int8 engine's weights


def quantize(weight: Tensor, bits: int = WEIGHT_BITS) -> tuple[Tensor, Tensor]:
    """Symmetric per-output-channel quantisation -> (integer levels as float, scale per channel)."""
    qmax = 2 ** (bits - 1) - 1
    w = weight.detach().float()
    amax = w.abs().flatten(1).amax(1).clamp_min(1e-12)
    scale = (amax / qmax).view(-1, *([1] * (w.dim() - 1)))
    return torch.round(w / scale).clamp_(-qmax, qmax), scale
