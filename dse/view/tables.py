"""Tables for people: the design table with readable column names that carry their units, accuracies rounded
to the precision their confidence intervals support, costs in the unit that fits the column at three
significant figures, and a dash (never None) where there is no value. Torch-free, no streamlit."""
from __future__ import annotations

import math

import pandas as pd

from dse.view import units

MAPPING_SHORT = {"default": "processor", "1x1-on-crossbar": "crossbar"}
ACCURACIES = {"accuracy": "accuracy %", "worst": "worst chip %", "fault_free_accuracy": "fault-free %",
              "loss_own": "loss pts"}
COSTS = {"latency_ns": "latency", "interval_ns": "interval", "energy_uj": "energy", "area_mm2": "area"}
HELP = {"design point": "network, width multiplier, shortcut kernel, drop-connect rate p",
        "1x1 convs": "where the 1x1 convolutions run: on the processor (the paper's) or on the crossbar",
        "accuracy %": "mean test accuracy over the chips (crossbar instances) at this fault rate",
        "± CI95": "half-width of the 95% confidence interval of the mean, in points",
        "chips": "simulated chips (crossbar instances) evaluated", "worst chip %": "the worst chip's accuracy",
        "fault-free %": "the network's own accuracy without faults",
        "loss pts": "fault-free minus accuracy under faults (the paper's degradation)",
        "BN": "how BatchNorm statistics were obtained"}


def accuracy_decimals(ci95: pd.Series) -> int:
    """Decimals an accuracy deserves: one past the CI half-width's first significant digit, 1 to 2
    (±0.3 -> 2, ±1.2 -> 1); 2 without a CI."""
    ci = pd.to_numeric(ci95, errors="coerce").dropna()
    ci = ci[ci > 0]
    if ci.empty:
        return 2
    return int(min(2, max(1, 1 - math.floor(math.log10(float(ci.median()))))))


def significant(x: float, digits: int = 3) -> float:
    """x rounded to `digits` significant figures (NaN stays NaN)."""
    if x is None or not math.isfinite(float(x)) or x == 0:
        return x
    return round(float(x), digits - 1 - math.floor(math.log10(abs(float(x)))))


def _dash(col: pd.Series, fmt: str) -> pd.Series:
    """A column with a missing value as text ('—' for the gap), else left numeric so it sorts as numbers."""
    return col.map(lambda v: "—" if pd.isna(v) else format(v, fmt)) if col.isna().any() else col


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The design table as the Results tab shows it: one row per design point, readable columns with units."""
    if table.empty:
        return pd.DataFrame(columns=list(HELP))
    out = pd.DataFrame({"design point": table.label if "label" in table else table.get("point_id"),
                        "1x1 convs": table.mapping.map(lambda m: MAPPING_SHORT.get(m, m))})
    d = accuracy_decimals(table.get("ci95", pd.Series(dtype=float)))
    for col, name in ACCURACIES.items():
        if col in table:
            out[name] = _dash(pd.to_numeric(table[col], errors="coerce").round(d), f".{d}f")
        if col == "accuracy" and "ci95" in table:
            out["± CI95"] = _dash(pd.to_numeric(table.ci95, errors="coerce").round(d), f".{d}f")
            out["chips"] = _dash(pd.to_numeric(table.n, errors="coerce"), ".0f")
    for col, name in COSTS.items():
        if col in table:
            values = pd.to_numeric(table[col], errors="coerce")
            unit, size = units.unit_for(values, col)
            out[f"{name} {unit}"] = _dash((values / size).map(significant), ".3g")
    if "bn_protocol" in table:
        out["BN"] = table.bn_protocol.fillna("—")
    return out.reset_index(drop=True)  # the checkpoint files are in the CSV download: the table fits 1600 px


def help_for(column: str) -> str | None:
    """A column's tooltip: what it is (costs: per image, in the column's unit)."""
    if column in HELP:
        return HELP[column]
    name = column.split(" ")[0]
    return {"latency": "one image's latency", "interval": "time between images (1/throughput)",
            "energy": "energy per image", "area": "chip area the design occupies"}.get(name)


def no_gaps(df: pd.DataFrame) -> bool:
    """True when no cell is None or NaN (what a table for people needs)."""
    return not df.isna().any().any() and not (df.astype(str) == "None").any().any()



CALIBRATION = {"calib_images": "images per chip (0: paper)", "bn_protocol": "BN", "mean": "accuracy %",
               "ci95": "± CI95", "worst": "worst chip %", "best": "best chip %", "n": "chips",
               "test_images": "test images"}


def calibration(curve: pd.DataFrame) -> pd.DataFrame:
    """The calibration-images sweep (explore.calibration_curve) for people: named columns, CI-rounded."""
    d = accuracy_decimals(curve.get("ci95", pd.Series(dtype=float)))
    out = curve[[c for c in CALIBRATION if c in curve]].copy()
    for c in ("mean", "ci95", "worst", "best"):
        if c in out:
            out[c] = _dash(pd.to_numeric(out[c], errors="coerce").round(d), f".{d}f")
    return out.rename(columns=CALIBRATION)
