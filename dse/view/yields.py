"""Chip yield from the results store: each crossbar instance of an evaluation is one simulated chip, and a
design's yield at an accuracy target is the share of its chips that reach it, with an exact (Clopper-Pearson)
interval. Torch-free, no streamlit.

Units: yields (and their interval ends) are fractions in [0, 1]; accuracies and targets are percent.
A design "has a yield of at least Y" when the LOW end of its interval is >= Y (conservative: with few chips
a point estimate of 100% says little), which is what `recommend` and the page use; the point estimate is
shown beside it.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from dse.domain.errors import DSEError
from dse.domain.bn import BN, Chip
from dse.domain.faultspec import FaultSpec
from dse.domain.stats import chip_yield, chips_needed, number_in, provable_yield
from dse.view.explore import DEFAULT_PROTOCOL, SA1, best_evaluations
from dse.view.pareto import cheapest_meeting

LEVEL = 0.95  # the confidence level of every yield interval the page and the command show
BOUNDS = {"low": "yield_low", "estimate": "yield"}  # what "a yield of at least Y" compares against


def _chips(row) -> list[float]:
    a = row["accuracies"]
    return json.loads(a) if isinstance(a, str) else list(a)


def evaluation(evals: pd.DataFrame, point_id: str, fault: FaultSpec, *, bn: BN = DEFAULT_PROTOCOL) -> dict | None:
    """The evaluation a design point's yield is read from under `fault` (its model at its rate) and BN protocol
    `bn` (the one the design table shows: explore.best_evaluations), or None when there is none."""
    ev = best_evaluations(evals, fault=fault, bn=bn)
    if ev.empty:
        return None
    hit = ev[(ev.point_id == point_id) & np.isclose(ev.fault_rate, fault.rate)]
    return None if hit.empty else hit.iloc[0].to_dict()


def point_yield(evals: pd.DataFrame, point_id: str, fault: FaultSpec, target: float, *, bn: BN = DEFAULT_PROTOCOL,
                level: float = LEVEL) -> dict | None:
    """chip_yield of one design point's chips under `fault` and accuracy `target` (percent), with the
    protocol that produced them (`bn_protocol`) and the evaluation's test images; None when not evaluated."""
    row = evaluation(evals, point_id, fault, bn=bn)
    if row is None:
        return None
    y = chip_yield(_chips(row), target, level)
    return {**y, "fault_rate": float(row["fault_rate"]), "bn_protocol": bn.label,
            "test_images": int(row["test_images"]), "mean": row["mean"], "worst": row["worst"]}


def default_targets(accuracies, points: int = 201) -> np.ndarray:
    """Targets spanning the chips' accuracies with a point either side (clipped to [0, 100])."""
    a = np.asarray(accuracies, dtype=float)
    lo, hi = max(0.0, math.floor(a.min()) - 1.0), min(100.0, math.ceil(a.max()) + 1.0)
    return np.round(np.linspace(lo, hi, points), 4)


def yield_curve(evals: pd.DataFrame, point_id: str, fault: FaultSpec, *, bn: BN = DEFAULT_PROTOCOL, targets=None,
                level: float = LEVEL) -> pd.DataFrame:
    """Yield against accuracy target for one design point: columns target, yield, low, high, k, n,
    bn_protocol (empty when the point has no evaluation under `fault` and `bn`)."""
    row = evaluation(evals, point_id, fault, bn=bn)
    cols = ["target", "yield", "low", "high", "k", "n", "bn_protocol"]
    if row is None:
        return pd.DataFrame(columns=cols)
    chips = _chips(row)
    ts = default_targets(chips) if targets is None else targets
    rows = [chip_yield(chips, t, level) for t in ts]
    return pd.DataFrame(rows).assign(bn_protocol=bn.label)[cols]


def with_yields(table: pd.DataFrame, evals: pd.DataFrame, fault: FaultSpec, target: float, *,
                bn: BN = DEFAULT_PROTOCOL, level: float = LEVEL) -> pd.DataFrame:
    """The design table (explore.design_table under the same faults and protocol) with each point's yield at
    `target`: yield, yield_low, yield_high (fractions), chips_meeting, chips (NaN where not evaluated)."""
    ev = best_evaluations(evals, fault=fault, bn=bn)
    at = ev[np.isclose(ev.fault_rate, fault.rate)] if not ev.empty else ev
    found = {}
    for _, r in at.iterrows():
        chips = _chips(r)
        if chips:
            y = chip_yield(chips, target, level)
            found[r["point_id"]] = (y["yield"], y["low"], y["high"], y["k"], y["n"])
    empty = (np.nan,) * 5
    vals = [found.get(pid, empty) for pid in table["point_id"]] if "point_id" in table else []
    cols = ["yield", "yield_low", "yield_high", "chips_meeting", "chips"]
    out = table.copy()
    for i, c in enumerate(cols):
        out[c] = pd.Series([v[i] for v in vals], index=out.index, dtype=float)
    return out.assign(bn_protocol=bn.label, yield_target=float(target))


def check_min_yield(min_yield) -> float:
    return number_in(min_yield, 0.0, 1.0, "minimum yield must be a fraction in [0, 1] (e.g. 0.9 for 90%), got ")


def recommend(table: pd.DataFrame, min_yield: float, objective: str = "latency_ns", bound: str = "low") -> dict | None:
    """The cheapest design (by `objective`: latency_ns or energy_uj, the design table's cost columns) whose
    yield at the table's target is at least `min_yield` (a fraction), judged by the interval's low end
    (bound="low", the default and what the page uses) or the point estimate (bound="estimate"); None if none."""
    if bound not in BOUNDS:
        raise DSEError(f"unknown yield bound {bound!r}; choose one of {', '.join(BOUNDS)}")
    y = check_min_yield(min_yield)
    col = BOUNDS[bound]
    t = table.dropna(subset=[col, objective]) if col in table else table.iloc[0:0]
    if t.empty:
        return None
    row = cheapest_meeting(t, y, cost=objective, accuracy=col)
    return None if row is None else dict(row)


MINIMUMS = (0.95, 0.9, 0.8, 0.75, 0.5)  # the page's first minimum yield: the highest of these the data can prove


def most_chips(table: pd.DataFrame) -> int:
    """The most chips any design in a yield table (with_yields) was evaluated on; 0 when none was."""
    n = table["chips"].dropna() if "chips" in table else pd.Series(dtype=float)
    return 0 if n.empty else int(n.max())


def default_min_yield(table: pd.DataFrame, level: float = LEVEL) -> float:
    """The highest of MINIMUMS that the table's largest chip sample could prove (all of them passing); the
    lowest of MINIMUMS when nothing is evaluated or even that is out of reach."""
    n = most_chips(table)
    reachable = [m for m in MINIMUMS if n and provable_yield(n, level) >= m]
    return reachable[0] if reachable else MINIMUMS[-1]


def sample_note(table: pd.DataFrame, min_yield: float, level: float = LEVEL) -> str:
    """One sentence on what the evaluated chips can prove against `min_yield` (a fraction) and how many
    chips the claim needs: '... 20 chips prove at most 83.2% ...; 90% needs 36 chips (all passing)'."""
    if min_yield >= 1.0:
        return "A yield of 100% can never be proved by a finite number of chips: choose a minimum below 100%."
    need = chips_needed(min_yield, level)
    n = most_chips(table)
    claim = f"A yield of at least {min_yield:.0%} needs {need} chips all meeting the target"
    if n == 0:
        return f"{claim}; no design is evaluated at this fault rate yet."
    best = provable_yield(n, level)
    if n >= need:
        return f"{claim}; the largest sample here ({n} chips) is enough if its chips pass."
    return (f"{claim}: with at most {n} chips per design here, even all of them passing proves at most "
            f"{best:.1%}, so no design can qualify until {need} chips are evaluated.")


def more_chips_command(checkpoint: str, results, chips: int) -> str:
    """The command line that evaluates a point on `chips` chips under the page's fault model, rate and protocol
    (`results`: a dse.view.state.ResultsSpec)."""
    fault, bn = results.fault, results.bn
    how = f" --bn {bn.name}" + (f" --calib-images {bn.images}" if isinstance(bn, Chip) else "")
    model = "" if fault.name == SA1.name else f" --fault-model {fault.name}"
    return (f"python -m dse evaluate {checkpoint} --fault-rate {fault.rate:g} --instances {chips}{how}{model} "
            "--data PATH")
