"""What the teaching tab and the lesson show: a chip's stuck cells on one crossbar layer, named after the
fault model chosen (imports torch when a map is drawn; the sentences are torch-free)."""
from __future__ import annotations

import numpy as np

from dse.domain.faultspec import WEIGHT_BITS, fault_model_label, parse_fault_model

TILE = 128  # ISAAC's crossbar: 128 rows x 128 columns
READS = {"sa1": "Each stuck cell reads its weight as 0 (SA1, the paper's fault).",
         "sa0": "Each stuck cell reads its weight as the largest level of its sign (SA0).",
         "rows": "Whole word lines (rows) of a tile are stuck; their cells read their weights as 0 (SA1).",
         "cols": "Whole bit lines (columns) of a tile are stuck; their cells read their weights as 0 (SA1).",
         "clustered": "Stuck cells come in clusters; each reads its weight as 0 (SA1).",
         "mixed": "Half the stuck cells are random, half on whole lines; each reads its weight as 0 (SA1)."}
PER_WEIGHT = ("sa1", "sa0")  # drawn per weight: the layer's whole matrix can be shown


def base_model(fault_model: str) -> str:
    return fault_model.split(":", 1)[0].split("+", 1)[0]


def stuck_reads(fault_model: str) -> str:
    """What a stuck cell reads under `fault_model`, named as the sidebar names it (and with fewer bits per cell,
    what it does to its share of a weight)."""
    base = base_model(fault_model)
    text = READS.get(base, f"Stuck cells under {fault_model_label(fault_model)}.")
    bits = parse_fault_model(fault_model).bits_per_cell
    if bits != WEIGHT_BITS:
        text += (f" With {bits} bits per cell a weight spans {WEIGHT_BITS // bits} cells, each stuck on its own: a "
                 f"stuck cell's {bits}-bit slice of the magnitude reads {'0' if base == 'sa1' else 'all ones'}.")
    return text


def layer_shapes(network: str, width: float, shortcut_kernel: int, mapping: str) -> dict:
    """Weight shapes of a design point's crossbar layers, from a model built on the meta device."""
    import torch

    from dse.core.crossbar.mapping import crossbar_shapes
    from dse.core.models import build_model

    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        model = build_model(network, width, shortcut_kernel)
    return crossbar_shapes(model, mapping)


def matrix_size(shape: tuple) -> tuple[int, int]:
    """A layer's weights on the crossbar: rows = inputs x kernel (in x k x k), columns = outputs."""
    return int(np.prod(shape[1:])), int(shape[0])


def fault_map(shapes: dict, layer: str, instance: int, rate: float) -> np.ndarray:
    """The whole of `layer`'s weight matrix on chip `instance` at fault `rate` (rows = in x k x k, columns =
    outputs, as large as the layer really is): True where a cell is stuck (SA1 and SA0 stick the same cells)."""
    from dse.core.faults.draws import tile_fault_map

    rows, cols = matrix_size(shapes[layer])
    return tile_fault_map(shapes, layer, instance, rate, tile=max(rows, cols))


def map_title(fault_model: str, layer: str, shape: tuple, fmap: np.ndarray, rate: float) -> str:
    """'SA0 fault map of conv1 at 10%' over '<sup>all 27x16 cells of its weights (1 tile of 128x128)</sup>'."""
    rows, cols = matrix_size(shape)
    tiles = -(-rows // TILE) * -(-cols // TILE)
    what = (f"all {rows}x{cols} cells of its weights ({tiles} tile{'s' if tiles > 1 else ''} of {TILE}x{TILE})"
            if fmap.shape == (rows, cols) else f"its first {TILE}x{TILE} tile (physical)")
    return f"{fault_model_label(fault_model)} fault map of {layer} at {100 * rate:.4g}%<br><sup>{what}</sup>"
