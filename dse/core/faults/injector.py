"""FaultInjector: one model's quantised crossbar weights (dse/core/crossbar/quantize.py), and the faulty
weights of any crossbar instance under any fault model.

- SA1 and SA0 (dse/core/faults/stuck_at.py) draw one uniform per weight (dse/core/faults/draws.py).
- Spatial models (rows, cols, clustered, mixed; dse/core/faults/spatial.py) draw the stuck cells on the physical
  tiles (dse/core/crossbar/placement.py) and read as SA1; "+remap" permutes each tile's rows and columns to the
  chip's known map first (dse/core/faults/remap.py). Both are named in the fault model string (dse/core/protocol.py).
Faults are applied functionally (a dict of faulty weights for torch.func.functional_call), never by
copying the model.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor, nn

from dse.core.crossbar.mapping import MappingPolicy, crossbar_layers
from dse.core.crossbar.placement import place
from dse.core.crossbar.quantize import LEVELS_ATTR, WEIGHT_BITS, quantize
from dse.core.faults.draws import draw_uniforms
from dse.core.faults.remap import remap_tiles
from dse.core.faults.spatial import cell_maps
from dse.core.faults.stuck_at import FAULT_MODELS, cell_slices
from dse.core.protocol import parse_fault_model


class FaultInjector:
    """Holds one model's quantised crossbar weights; builds the faulty weights of any instance."""

    def __init__(self, model: nn.Module, policy: MappingPolicy | str = "default", bits: int = WEIGHT_BITS):
        self.layers = crossbar_layers(model, policy)
        self.quantized: dict[str, tuple[Tensor, Tensor]] = {
            name: quantize(m.weight, bits) for name, m in self.layers.items()
        }
        self.shape_of = {name: tuple(m.weight.shape) for name, m in self.layers.items()}
        self.dtype = next(model.parameters()).dtype
        self._loss: dict = {}  # loss_cells by stuck value

    @functools.cached_property
    def placement(self):
        """The weights on the physical tiles: made when a spatial model or a remap first needs it (SA1 and SA0
        never do, and for VGG13 it is most of the injector's start-up)."""
        return place(self.shape_of, {name: getattr(m, "groups", 1) for name, m in self.layers.items()})

    def fault_maps(self, instance: int, rate: float, seed: int = 0, fault_model: str = "sa1") -> dict[str, Tensor]:
        """The stuck weights of one instance, by layer (bool, the weights' shapes)."""
        spec = parse_fault_model(fault_model)
        if spec.bits_per_cell != WEIGHT_BITS:  # one draw per cell: a trailing axis of 8/b cells per weight
            cells = -(-WEIGHT_BITS // spec.bits_per_cell)
            shapes = {name: (*shape, cells) for name, shape in self.shape_of.items()}
            return {name: u < rate for name, u in draw_uniforms(shapes, instance, seed).items()}
        if spec.model in ("sa1", "sa0") and not spec.remap:  # per weight, as ever: SA1 results stand
            return {name: u < rate for name, u in draw_uniforms(self.shape_of, instance, seed).items()}
        cells = self.cell_maps(instance, rate, seed, fault_model)
        if spec.remap:
            rows, cols = remap_tiles(cells, self.loss_cells(spec.model))
        out = {}
        for name, lp in self.placement.layers.items():
            if spec.remap:
                hit = cells[lp.tile, rows[lp.tile, lp.row], cols[lp.tile, lp.col]]
            else:
                hit = cells[lp.tile, lp.row, lp.col]
            out[name] = torch.from_numpy(np.ascontiguousarray(hit))
        return out

    def cell_maps(self, instance: int, rate: float, seed: int = 0, fault_model: str = "sa1") -> np.ndarray:
        """(tiles, 128, 128 + spares) bool: one instance's stuck cells on the physical tiles."""
        spec = parse_fault_model(fault_model)
        uniforms = None
        if spec.model in ("sa1", "sa0"):  # the cells holding weights keep the weights' own draws
            uniforms = {n: u.numpy() for n, u in draw_uniforms(self.shape_of, instance, seed).items()}
        return cell_maps(spec, rate, self.placement, list(self.shape_of.values()), instance, seed=seed,
                         spares=spec.spares, weight_uniforms=uniforms)

    def loss_cells(self, model: str = "sa1") -> np.ndarray:
        """(tiles, 128, 128): the weight magnitude each cell's weight loses if the cell is stuck (0 where empty)."""
        apply = FAULT_MODELS[model]
        if apply not in self._loss:
            s = self.placement.size
            out = np.zeros((self.placement.tiles, s, s))
            for name, lp in self.placement.layers.items():
                levels, scale = self.quantized[name]
                loss = ((apply(levels, torch.ones_like(levels, dtype=torch.bool)) - levels).abs() * scale).cpu()
                out[lp.tile, lp.row, lp.col] = loss.double().numpy()
            self._loss[apply] = out
        return self._loss[apply]

    def weights(
        self,
        instance: int | None,
        rate: float,
        seed: int = 0,
        fault_model: str = "sa1",
        rescale: bool = True,
        only: str | None = None,
    ) -> dict[str, Tensor]:
        """`{"layer.weight": tensor}` for functional_call. instance=None gives the fault-free
        quantised weights. rescale keeps the drop-connect 1/(1-f) scale on (as the paper does).
        only="layer" puts faults (and the rescale) in that one layer, for per-layer sensitivity."""
        spec = parse_fault_model(fault_model)
        apply = FAULT_MODELS[spec.model]
        if spec.bits_per_cell != WEIGHT_BITS:
            apply = functools.partial(cell_slices, bits_per_cell=spec.bits_per_cell, model=spec.model)
        maps = self.fault_maps(instance, rate, seed, fault_model) if instance is not None and rate > 0 else None
        scale_f = 1.0 / (1.0 - rate) if rescale else 1.0
        out = {}
        for name, (levels, scale) in self.quantized.items():
            hit = maps is not None and (only is None or only == name)
            if hit:
                levels = apply(levels, maps[name].to(levels.device))
            channel = scale * (scale_f if hit else 1.0)
            w = out[f"{name}.weight"] = (levels * channel).to(self.dtype)
            setattr(w, LEVELS_ATTR, (levels, channel))  # the exact integers, for dse/core/evaluation/int8.py
        return out
