"""What the teaching tab shows: a chip's defects on one crossbar tile (imports torch when called)."""
from __future__ import annotations

import numpy as np


def layer_shapes(network: str, width: float, shortcut_kernel: int, mapping: str) -> dict:
    """Weight shapes of a design point's crossbar layers, from a model built on the meta device."""
    import torch

    from dse.core.faults import crossbar_shapes
    from dse.core.models import build_model

    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        model = build_model(network, width, shortcut_kernel)
    return crossbar_shapes(model, mapping)


def fault_map(shapes: dict, layer: str, instance: int, rate: float) -> np.ndarray:
    """One 128x128 tile of `layer` on chip `instance` at fault `rate`: True where a cell is stuck."""
    from dse.core.faults import tile_fault_map

    return tile_fault_map(shapes, layer, instance, rate)
