"""Seeded fault draws. A crossbar instance is one fault map over all crossbar weights, drawn from a seed that
depends only on (base seed, instance index, crossbar layer shapes): every model of the same shape sees the same
maps (common random numbers), and maps are nested across rates (u < f), so a fault at 10% is also one at 20%."""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import Tensor


def instance_seed(base_seed: int, instance: int, shapes: list[tuple[int, ...]]) -> int:
    """A 63-bit seed from (base seed, instance index, layer shapes), stable across runs and machines."""
    key = f"{base_seed}|{instance}|{shapes}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def draw_uniforms(shapes: dict[str, tuple[int, ...]], instance: int, seed: int = 0) -> dict[str, Tensor]:
    """One uniform draw per crossbar cell, layer by layer in order; a cell is faulty at rate f when its
    draw is below f. Drawn on the CPU so that CPU and CUDA runs see identical maps."""
    g = torch.Generator().manual_seed(instance_seed(seed, instance, list(shapes.values())))
    return {name: torch.rand(shape, generator=g) for name, shape in shapes.items()}


def tile_fault_map(shapes: dict[str, tuple[int, ...]], layer: str, instance: int, rate: float, seed: int = 0,
                   tile: int = 128) -> np.ndarray:
    """The first crossbar tile of `layer` as the crossbar sees it: rows = inputs (in x k x k), columns =
    outputs; True where a cell is stuck. For teaching: what one chip's defects look like."""
    u = draw_uniforms(shapes, instance, seed)[layer]
    matrix = u.flatten(1).T  # (in*k*k) x out, one weight per cell
    return (matrix[:tile, :tile] < rate).numpy()
