"""Units that fit the numbers: one choice of unit for a column of values (ns/µs/ms/s, nJ/µJ/mJ/J, µm²/mm²/cm²), used by
the page's metrics and by the charts' axes alike, so a value and its axis never disagree."""
from __future__ import annotations

import math
from collections.abc import Iterable

# a base unit's ladder: (unit, size in the base unit), smallest first
LADDERS = {
    "ns": (("ns", 1.0), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)),
    "uJ": (("nJ", 1e-3), ("µJ", 1.0), ("mJ", 1e3), ("J", 1e6)),
    "mm2": (("µm²", 1e-6), ("mm²", 1.0), ("cm²", 1e2)),
}
SUFFIX = {"_ns": "ns", "_uj": "uJ", "_mm2": "mm2"}  # a column's base unit from its name: latency_ns, energy_uj, ...


def base_unit(column_or_unit: str) -> str:
    """"ns", "uJ" or "mm2" from a column name (latency_ns, energy_uj, ...) or from the unit itself."""
    if column_or_unit in LADDERS:
        return column_or_unit
    for suffix, unit in SUFFIX.items():
        if column_or_unit.lower().endswith(suffix):
            return unit
    raise ValueError(f"no unit ladder for {column_or_unit!r}; columns end in {', '.join(SUFFIX)}")


def unit_for(values: Iterable[float] | float, column_or_unit: str) -> tuple[str, float]:
    """(unit, size in the base unit) for a column of values: the largest unit its largest magnitude
    reaches one of (7.27e6 ns -> ms; 15.74 ns -> ns; 0.5 ns -> ns). NaNs are ignored."""
    ladder = LADDERS[base_unit(column_or_unit)]
    values = [values] if isinstance(values, (int, float)) else list(values)
    finite = [abs(float(v)) for v in values if v is not None and math.isfinite(float(v))]
    top = max(finite, default=0.0)
    fits = [(u, s) for u, s in ladder if top >= s]
    base = next((u, s) for u, s in ladder if s == 1.0)
    return fits[-1] if fits else base


def fmt(value: float, column_or_unit: str, digits: int = 2) -> str:
    """One value with the unit that fits it: fmt(7273028, "latency_ns") == "7.27 ms"."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    unit, size = unit_for(value, column_or_unit)
    return f"{value / size:,.{digits}f} {unit}"


def fmt_like(value: float, values: Iterable[float], column_or_unit: str) -> str:
    """One value in the unit that fits a whole column of `values` (the unit its chart axis uses), so a
    recommendation beside a chart reads in the axis's unit: 16.55 ns among values up to 812 µs -> "0.0166 µs"."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    unit, size = unit_for(values, column_or_unit)
    v = value / size
    return f"{v:,.2f} {unit}" if abs(v) >= 1 or v == 0 else f"{v:.3g} {unit}"
