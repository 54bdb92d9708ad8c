"""Remapping a known fault map: permute each tile's rows and columns so its stuck cells hit the least
important weights, optionally onto S spare columns per tile.

A tile stores a logical matrix (rows = inputs, columns = outputs; dse/core/crossbar/placement.py); which physical word
line carries which input, and which bit line which output, is free at programming time (input and output
routing), so any row permutation and any injective map of the columns onto the size + S physical columns is a
valid layout. Choosing both to minimise the weight lost on stuck cells is a quadratic assignment problem; we
alternate two linear ones (scipy.optimize.linear_sum_assignment): rows with the columns fixed, then columns with
the rows fixed. Each step is optimal given the other and the current layout is one of its candidates, so the
lost magnitude never increases from the identity layout. The idea follows fault-aware mapping of RRAM crossbars
(L. Xia et al., "Stuck-at fault tolerance in RRAM computing systems", IEEE JETCAS 8(1), 2018; W. Huangfu et
al., "Computation-oriented fault-tolerance schemes for RRAM computing systems", ASP-DAC 2017). Pure numpy/scipy.
"""
from __future__ import annotations

import numpy as np

ROUNDS = 4  # alternations; the loss usually stops falling after two or three


def lost(fault: np.ndarray, cost: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """The cost of the weights on stuck cells when logical (i, j) sits at physical (rows[i], cols[j])."""
    return float((cost * fault[np.ix_(rows, cols)]).sum())


def remap_tile(fault: np.ndarray, cost: np.ndarray, rounds: int = ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """Row and column permutations of one tile: fault (size, size + spares) bool, cost (size, size) >= 0, what
    each logical weight would lose on a stuck cell. Returns rows (size,) and cols (size,), the physical row and
    column of each logical one; the identity (spares unused) when nothing better is found."""
    from scipy.optimize import linear_sum_assignment  # lazy: half a second to import, and only +remap needs it

    n = cost.shape[0]
    rows, cols = np.arange(n), np.arange(n)
    best = lost(fault, cost, rows, cols)
    if best == 0:
        return rows, cols
    f = fault.astype(np.float64)
    for _ in range(rounds):
        r = linear_sum_assignment(cost @ f[:, cols].T)[1]  # logical row i -> physical row r[i]
        c = linear_sum_assignment(cost.T @ f[r, :])[1]  # logical column j -> physical column c[j]
        now = lost(fault, cost, r, c)
        if now >= best:  # no gain (ties included): keep the layout we have
            break
        rows, cols, best = r, c, now
    return rows, cols


def remap_tiles(fault: np.ndarray, cost: np.ndarray, rounds: int = ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """remap_tile for every tile: fault (tiles, size, size + spares), cost (tiles, size, size) ->
    rows (tiles, size), cols (tiles, size)."""
    out = [remap_tile(fault[t], cost[t], rounds) for t in range(len(fault))]
    return np.stack([r for r, _ in out]), np.stack([c for _, c in out])


def to_physical(matrix: np.ndarray, rows: np.ndarray, cols: np.ndarray, width: int) -> np.ndarray:
    """A tile's logical (size, size) matrix as programmed onto its (size, width) cells (unused cells 0)."""
    out = np.zeros((matrix.shape[0], width), dtype=matrix.dtype)
    out[np.ix_(rows, cols)] = matrix
    return out


def to_logical(physical: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """What the tile's logical matrix reads back as from its programmed cells."""
    return physical[np.ix_(rows, cols)]
