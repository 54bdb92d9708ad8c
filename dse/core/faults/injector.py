"""The fault model: 8-bit weights on the crossbar, each cell stuck with probability f.

- Quantisation: symmetric, per output channel, to signed 8 bits (levels -127..127); per-channel
  because one cell per weight means each column's ADC range can follow its own weights.
- SA1: the cell is trapped in the high state and its weight reads as 0, as the paper models it.
- SA0 (second model): the weight reads as the largest magnitude of its sign (+-127 levels).
- Bits per cell ("+bpc:B" in the fault model, B in 1, 2, 4): a weight's 8-bit magnitude spans 8/B cells, each
  stuck on its own with probability f; a stuck cell's slice of the magnitude reads 0 (SA1) or all ones (SA0),
  the sign (ISAAC's differential/bias encoding, not a stored bit) is kept. At 8 bits per cell this is the
  per-weight model above, draws and all.
- A crossbar instance is one fault map over all crossbar weights, drawn from a seed that depends only
  on (base seed, instance index, crossbar layer shapes): every model of the same shape sees the same
  maps (common random numbers), and maps are nested across rates (u < f), so a fault at 10% is also one
  at 20%.
- Spatial models (rows, cols, clustered, mixed; dse/core/faults/spatial.py) draw the stuck cells on the physical
  tiles (dse/core/crossbar/placement.py) and read as SA1; "+remap" permutes each tile's rows and columns to the chip's
  known map first (dse/core/faults/remap.py). Both are named in the fault model string (dse/core/protocol.py).
Faults are applied functionally (a dict of faulty weights for torch.func.functional_call), never by
copying the model.
"""
from __future__ import annotations

import functools
import hashlib
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from dse.core.crossbar.mapping import MappingPolicy, crossbar_layers
from dse.core.crossbar.placement import place
from dse.core.protocol import check_fault_model, parse_fault_model  # noqa: F401  (the names live torch-free)

WEIGHT_BITS = 8
LEVELS_ATTR = "_dse_levels"  # each faulty weight carries (levels, per-channel scale): the int8 engine's weights


def quantize(weight: Tensor, bits: int = WEIGHT_BITS) -> tuple[Tensor, Tensor]:
    """Symmetric per-output-channel quantisation -> (integer levels as float, scale per channel)."""
    qmax = 2 ** (bits - 1) - 1
    w = weight.detach().float()
    amax = w.abs().flatten(1).amax(1).clamp_min(1e-12)
    scale = (amax / qmax).view(-1, *([1] * (w.dim() - 1)))
    return torch.round(w / scale).clamp_(-qmax, qmax), scale


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


def instance_seed(base_seed: int, instance: int, shapes: list[tuple[int, ...]]) -> int:
    """A 63-bit seed from (base seed, instance index, layer shapes), stable across runs and machines."""
    key = f"{base_seed}|{instance}|{shapes}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def draw_uniforms(shapes: dict[str, tuple[int, ...]], instance: int, seed: int = 0) -> dict[str, Tensor]:
    """One uniform draw per crossbar cell, layer by layer in order; a cell is faulty at rate f when its
    draw is below f. Drawn on the CPU so that CPU and CUDA runs see identical maps."""
    g = torch.Generator().manual_seed(instance_seed(seed, instance, list(shapes.values())))
    return {name: torch.rand(shape, generator=g) for name, shape in shapes.items()}


def crossbar_shapes(model: nn.Module, policy: MappingPolicy | str = "default") -> dict[str, tuple[int, ...]]:
    """Weight shapes of the crossbar layers (works on a model built on the meta device)."""
    return {name: tuple(m.weight.shape) for name, m in crossbar_layers(model, policy).items()}


def tile_fault_map(shapes: dict[str, tuple[int, ...]], layer: str, instance: int, rate: float, seed: int = 0,
                   tile: int = 128) -> np.ndarray:
    """The first crossbar tile of `layer` as the crossbar sees it: rows = inputs (in x k x k), columns =
    outputs; True where a cell is stuck. For teaching: what one chip's defects look like."""
    u = draw_uniforms(shapes, instance, seed)[layer]
    matrix = u.flatten(1).T  # (in*k*k) x out, one weight per cell
    return (matrix[:tile, :tile] < rate).numpy()


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
            from dse.core.faults.remap import remap_tiles

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
        from dse.core.faults.spatial import cell_maps

        spec = parse_fault_model(fault_model)
        uniforms = None
        if spec.model in ("sa1", "sa0"):  # the cells holding weights keep the weights' own draws
            uniforms = {n: u.numpy() for n, u in draw_uniforms(self.shape_of, instance, seed).items()}
        return cell_maps(spec, rate, self.placement, list(self.shape_of.values()), instance, seed, spec.spares,
                         uniforms)

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
