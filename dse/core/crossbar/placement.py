"""Physical placement: where each crossbar weight sits on the 128x128 tiles, exactly as the isaac cost model
counts them (dse/core/cost/per_image.py `crossbars_for`), so a cell at tile (t, r, c) holds at most one weight.

One weight per cell, as the fault model has it (the paper's 8-bit cells: IsaacConfig's default
bits_per_cell=8, so cells_per_weight=1); with fewer bits per cell a weight spans several cells and the
cost model counts more crossbars than this placement uses. Each group's matrix has rows = input channel x
kernel position (in/groups * k * k, in the order of weight.flatten(1)) and columns = output channels
(out/groups). A matrix larger than a tile is cut into a grid of tiles, row blocks outer; groups small
enough are packed block-diagonally, several to a tile, as crossbars_for counts them (depth-wise convs).
Tiles are numbered layer by layer in crossbar-layer order. Torch-free (numpy), works from shapes alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dse.core.crossbar.mapping import crossbar_layers

TILE = 128  # ISAAC's crossbar: IsaacConfig.xbar_size


@dataclass(frozen=True)
class LayerPlacement:
    """One layer's weights on its tiles: tile/row/col have the weight's shape (out, in/g, k, k)."""

    name: str
    first_tile: int  # global index of the layer's first tile
    tiles: int
    tile: np.ndarray  # global tile index of each weight
    row: np.ndarray
    col: np.ndarray


@dataclass(frozen=True)
class Placement:
    layers: dict[str, LayerPlacement]
    tiles: int  # tiles over all crossbar layers
    size: int  # rows = columns of a tile

    def occupancy(self) -> np.ndarray:
        """(tiles, size, size) bool: True where a cell holds a weight."""
        occ = np.zeros((self.tiles, self.size, self.size), dtype=bool)
        for lp in self.layers.values():
            occ[lp.tile, lp.row, lp.col] = True
        return occ


def place_layer(shape: tuple[int, ...], groups: int = 1, size: int = TILE) -> tuple[int, np.ndarray, np.ndarray,
                                                                                     np.ndarray]:
    """(tiles, tile, row, col) of one layer with weight `shape` (out, in/g, k, k) or (out, in)."""
    out = shape[0]
    per_in = int(np.prod(shape[1:]))  # rows of one group's matrix: in/g * k * k
    cols = out // groups
    o = np.arange(out).reshape(out, 1)
    r = np.arange(per_in).reshape(1, per_in)
    g, oc = o // cols, o % cols  # the weight's group, and its column within the group's matrix
    if per_in <= size and cols <= size:  # packed block-diagonally, as crossbars_for counts
        per_tile = min(size // per_in, size // cols)
        slot = g % per_tile
        tile, row, col = g // per_tile + 0 * r, slot * per_in + r, slot * cols + oc + 0 * r
        n = math.ceil(groups / per_tile)
    else:
        tr, tc = math.ceil(per_in / size), math.ceil(cols / size)
        tile = g * tr * tc + (r // size) * tc + oc // size
        row, col = r % size + 0 * o, oc % size + 0 * r
        n = groups * tr * tc
    return n, *(a.reshape(shape).astype(np.int64) for a in (tile, row, col))


def place(shapes: dict[str, tuple[int, ...]], groups: dict[str, int] | None = None, size: int = TILE) -> Placement:
    """Every crossbar layer's weights on tiles of `size` x `size` cells (layers in `shapes` order)."""
    layers, first = {}, 0
    for name, shape in shapes.items():
        n, tile, row, col = place_layer(shape, (groups or {}).get(name, 1), size)
        layers[name] = LayerPlacement(name, first, n, tile + first, row, col)
        first += n
    return Placement(layers, first, size)


def model_placement(model, policy="default", size: int = TILE) -> Placement:
    """The placement of a model's crossbar layers under a mapping policy (a meta-device model will do)."""
    layers = crossbar_layers(model, policy)
    return place({n: tuple(m.weight.shape) for n, m in layers.items()},
                 {n: getattr(m, "groups", 1) for n, m in layers.items()}, size)
