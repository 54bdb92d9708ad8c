"""Spatial fault models: a chip's stuck cells drawn on the physical tiles (dse/core/crossbar/placement.py), not per weight.

Each returns, for one crossbar instance, a (tiles, rows, columns + spares) map of stuck cells. Every model is
  - seeded: the map depends only on (base seed, instance, crossbar layer shapes, model), as SA1's does;
  - nested across rates: each component is a fixed draw thresholded at a rate that grows with f, so a cell
    stuck at 10% is stuck at 20% (a chip's defects only accumulate, which is what lifetime curves rely on);
  - at the requested cell rate f on average, exactly (tests/test_spatial.py checks it empirically).
Stuck cells read as SA1 (the weight reads 0), the paper's dominant fault; `sa1`/`sa0` themselves stay per
weight (dse/core/faults/stuck_at.py) and are only put on cells here when a remapping needs the whole map.

- rows / cols: whole word lines / bit lines stuck, a share f of the lines of every tile. Why realistic: a
  broken or shorted line, or a faulty row decoder or column driver, takes out every cell on it; address
  decoder and line faults are classical memory fault models (A. J. van de Goor, "Testing Semiconductor
  Memories: Theory and Practice", Wiley, 1991), and RRAM is no exception: March tests of a 4-Mb HfO2 RRAM
  test chip found failure patterns caused by shorts between bit lines (C.-Y. Chen et al., "RRAM defect
  modeling and failure analysis based on march test and a novel squeeze-search scheme", IEEE Trans.
  Computers 64(1), 2015).
- clustered: square clusters of stuck cells on each tile, centres a Poisson process, sides geometric with a
  given mean (the model's parameter, default 4 cells); the intensity is set so the covered share is f:
  1 - exp(-lambda * E[area]) = f. The tile is a torus (clusters wrap at its edges) so the rate is the same
  at edges and centre. Why realistic: manufacturing defects cluster on a wafer, which is why yield models
  use clustered (negative-binomial) rather than Poisson defect counts (C. H. Stapper, "On yield, fault
  distributions, and clustering of particles", IBM J. Res. Dev. 30(3), 1986).
- mixed: a share m (parameter, default 0.5) of the cell rate from random SA1 cells, the rest from lines,
  half rows and half columns; the components' rates a = 1-(1-f)^m and b = 1-(1-f)^((1-m)/2) make the union
  exactly f: (1-a)(1-b)^2 = 1-f.
"""
from __future__ import annotations

import math

import numpy as np

from dse.core.crossbar.placement import Placement
from dse.core.faults.draws import instance_seed
from dse.core.protocol import FaultSpec

CLUSTER_CHUNK = 256  # Poisson arrivals drawn per tile at a time: a fixed size keeps maps nested across rates
SPATIAL_MODELS = ("rows", "cols", "clustered", "mixed")


def _rng(seed: int, instance: int, shapes: list, tag: str) -> np.random.Generator:
    return np.random.default_rng(instance_seed(seed, instance, [*shapes, tag]))


def expected_area(side: float, h: int, w: int) -> float:
    """E[cells covered] by one square cluster whose side is geometric on 1, 2, ... with mean `side`,
    clipped to the h x w tile (a clipped cluster never covers a cell twice on the torus)."""
    q = 1.0 / side
    n = np.arange(1, max(h, w) + 1)
    pmf = q * (1 - q) ** (n - 1)
    area = np.minimum(n, h) * np.minimum(n, w)
    return float((pmf * area).sum() + (1 - q) ** max(h, w) * h * w)


def clusters(rng: np.random.Generator, tiles: int, h: int, w: int, rate: float, side: float) -> np.ndarray:
    """(tiles, h, w) cells covered by a Poisson process of square clusters at cell rate `rate` (on average).
    Arrivals come in chunks of fixed size in arrival order, so the clusters at a lower rate are a prefix of
    those at a higher one (nested maps)."""
    out = np.zeros((tiles, h, w), dtype=bool)
    if rate <= 0 or tiles == 0 or w == 0:
        return out
    expected = -math.log1p(-rate) * h * w / expected_area(side, h, w)  # clusters per tile
    q = 1.0 / side
    time = np.zeros(tiles)
    while True:
        gaps = rng.exponential(1.0, (tiles, CLUSTER_CHUNK))
        x = rng.integers(0, h, (tiles, CLUSTER_CHUNK))
        y = rng.integers(0, w, (tiles, CLUSTER_CHUNK))
        size = rng.geometric(q, (tiles, CLUSTER_CHUNK)) if q < 1 else np.ones((tiles, CLUSTER_CHUNK), dtype=np.int64)
        arrival = time[:, None] + np.cumsum(gaps, axis=1)
        t, k = np.nonzero(arrival < expected)
        _paint(out, t, x[t, k], y[t, k], np.minimum(size[t, k], h), np.minimum(size[t, k], w))
        time = arrival[:, -1]
        if (time >= expected).all():
            return out


def _paint(out: np.ndarray, t, x, y, lh, lw) -> None:
    """Cover lh x lw squares from (x, y) on each tile, wrapping at the edges."""
    h, w = out.shape[1:]
    d = np.arange(int(lw.max()) if len(lw) else 0)
    cols, ok = (y[:, None] + d) % w, d < lw[:, None]
    for dx in range(int(lh.max()) if len(lh) else 0):
        sel = lh > dx
        rows = (x[sel] + dx) % h
        tt, rr = np.broadcast_to(t[sel, None], cols[sel].shape), np.broadcast_to(rows[:, None], cols[sel].shape)
        m = ok[sel]
        out[tt[m], rr[m], cols[sel][m]] = True


def cell_maps(spec: FaultSpec, rate: float, placement: Placement, shapes: list, instance: int, *, seed: int = 0,
              spares: int = 0, weight_uniforms: dict | None = None) -> np.ndarray:
    """(tiles, size, size + spares) bool: the stuck cells of one instance. For sa1/sa0 the cells holding weights
    take the weights' own uniforms (`weight_uniforms`, numpy, by layer), so the map is SA1's per-weight map."""
    T, s = placement.tiles, placement.size
    f = float(rate)
    def rng(tag: str) -> np.random.Generator:  # one stream per component
        return _rng(seed, instance, shapes, tag)

    out = np.zeros((T, s, s + spares), dtype=bool)
    if f <= 0:
        return out

    def random_cells(threshold: float) -> np.ndarray:
        u = np.concatenate([rng("cells").random((T, s, s)), rng("spare-cells").random((T, s, spares))], axis=2)
        if weight_uniforms is not None:
            for name, lp in placement.layers.items():
                u[lp.tile, lp.row, lp.col] = weight_uniforms[name]
        return u < threshold

    def lines(threshold: float, rows: bool, cols: bool) -> np.ndarray:
        m = np.zeros((T, s, s + spares), dtype=bool)
        if rows:  # a stuck word line spans the whole physical row, spare columns included
            m |= (rng("rows").random((T, s)) < threshold)[:, :, None]
        if cols:
            c = np.concatenate([rng("cols").random((T, s)), rng("spare-cols").random((T, spares))], axis=1)
            m |= (c < threshold)[:, None, :]
        return m

    if spec.model in ("sa1", "sa0"):
        return random_cells(f)
    if spec.model == "rows":
        return lines(f, True, False)
    if spec.model == "cols":
        return lines(f, False, True)
    if spec.model == "clustered":
        side = spec.value
        main = clusters(rng("clusters"), T, s, s, f, side)
        spare = clusters(rng("spare-clusters"), T, s, spares, f, side)  # the spare strip: its own clusters
        return np.concatenate([main, spare], axis=2)
    if spec.model == "mixed":
        m = spec.value
        a, b = 1 - (1 - f) ** m, 1 - (1 - f) ** ((1 - m) / 2)
        return random_cells(a) | lines(b, True, False) | lines(b, False, True)
    raise AssertionError(f"no cell map for {spec.model!r}")
