"""Pareto fronts over design points: accuracy up, cost (latency, interval, energy or area) down. O(n log n).

Ties: a point is kept only if no other point is at least as good on both axes and better on one.
Exact duplicates (same cost and same accuracy) are one point on the front: the first in table order
is kept and the rest dropped, so the result never depends on anything but the input order.
Rows with NaN cost or accuracy cannot be compared and are left out.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dse.domain.errors import DSEError

OBJECTIVES = ("latency_ns", "interval_ns", "energy_uj", "min_area_mm2")  # the page's fronts (cost model totals)


def _check(df: pd.DataFrame, columns: list[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DSEError(f"expected a pandas DataFrame of design points, got {type(df).__name__}")
    for c in columns:
        if c not in df.columns:
            raise DSEError(f"column {c!r} not in the table; columns are {', '.join(map(str, df.columns))}")
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            raise DSEError(f"column {c!r} must be numeric, got dtype {df[c].dtype}")


def _order(df: pd.DataFrame, cost: str, accuracy: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Comparable rows, and their positions sorted by cost ascending, then accuracy descending,
    then table order (np.lexsort is stable)."""
    data = df[df[cost].notna() & df[accuracy].notna()]
    c = data[cost].to_numpy(dtype=float)
    a = data[accuracy].to_numpy(dtype=float)
    return data, np.lexsort((-a, c))


def _front(df: pd.DataFrame, cost: str, accuracy: str) -> pd.DataFrame:
    data, order = _order(df, cost, accuracy)
    if len(order) == 0:
        return data
    a = data[accuracy].to_numpy(dtype=float)[order]
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(a)[:-1]))
    # everything sorted before a point costs no more; it survives only by being strictly more accurate
    return data.iloc[order[a > best_before]]


def pareto_front(df: pd.DataFrame, objective: str = "latency_ns", accuracy: str = "accuracy",
                 by: str | list[str] | None = None) -> pd.DataFrame:
    """The non-dominated rows for (accuracy up, objective down), sorted by objective ascending (so
    accuracy ascending too), with the original index. `by` (e.g. "fault_rate") computes one front per
    group and concatenates them in group order."""
    groups = [] if by is None else [by] if isinstance(by, str) else list(by)
    _check(df, [objective, accuracy])
    for g in groups:
        if g not in df.columns:
            raise DSEError(f"column {g!r} not in the table; columns are {', '.join(map(str, df.columns))}")
    if not groups:
        return _front(df, objective, accuracy)
    parts = [_front(part, objective, accuracy) for _, part in df.groupby(groups, sort=True, dropna=False)]
    return pd.concat(parts) if parts else df.iloc[0:0]


def pareto_fronts(df: pd.DataFrame, accuracy: str = "accuracy", objectives=None,
                  by: str | list[str] | None = None) -> dict[str, pd.DataFrame]:
    """One front per cost objective, e.g. {"latency_ns": ..., "energy_uj": ...}; by default every one of
    OBJECTIVES the table has."""
    objectives = [o for o in OBJECTIVES if o in df] if objectives is None else objectives
    return {o: pareto_front(df, o, accuracy, by) for o in objectives}


def cheapest_meeting(df: pd.DataFrame, target: float, cost: str = "latency_ns",
                     accuracy: str = "accuracy") -> pd.Series | None:
    """The lowest-cost row with accuracy >= target (ties: the more accurate, then the first in table
    order), or None when no row meets the target. The row is always on the Pareto front."""
    try:
        t = float(target)
    except (TypeError, ValueError):
        raise DSEError(f"accuracy target must be a number, got {target!r}") from None
    if math.isnan(t):
        raise DSEError(f"accuracy target must be a number, got {target!r}")
    _check(df, [cost, accuracy])
    meeting = df[df[accuracy] >= t]
    data, order = _order(meeting, cost, accuracy)
    if len(order) == 0:
        return None
    return data.iloc[order[0]]
