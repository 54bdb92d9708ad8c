"""A chip's lifetime: a fault-rate trajectory f(t) over months, accuracy against time, and the months until the
mean accuracy (or the chip yield) falls below a target.

A trajectory is given as points, "0:0.01,12:0.05,24:0.12" (month:rate, linear between points, the last rate
held after), or as a named model: "constant:0.1", or "weibull:fmax=0.3,eta=60,beta=2,f0=0.01", a Weibull
wear-out f(t) = f0 + (fmax - f0)(1 - exp(-(t/eta)^beta)) (eta, the scale, in months; beta > 1 for wear-out).
Why Weibull: RRAM cell failures under cycling and retention stress are commonly fitted with Weibull
statistics (e.g. B. Chen et al., "Physical mechanisms of endurance degradation in TMO-RRAM", IEDM 2011); the
parameters here are placeholders to be fitted to a device's data, not measured ones.
Because fault maps are nested across rates (dse/core/faults/draws.py, dse/core/faults/spatial.py), crossbar
instance i is one chip whose defects only accumulate as f(t) grows. Each month is an ordinary evaluation at f(t) under the
chosen BN protocol (`chip`: statistics re-estimated through each faulty chip, as a deployed chip would).
Torch-free but for `evaluate_lifetime`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from dse.core.errors import DSEError
from dse.core.stats import chip_yield

MODELS = {"constant": ("rate",), "weibull": ("fmax", "eta", "beta", "f0")}
WEIBULL_DEFAULTS = {"beta": 2.0, "f0": 0.0}
DEFAULT_MONTHS = tuple(range(0, 61, 6))  # a named model's months when none are given: five years
FORMS = ('points "0:0.01,12:0.05,24:0.12" (month:rate), "constant:RATE" or '
         '"weibull:fmax=F,eta=MONTHS[,beta=B][,f0=F0]"')


@dataclass(frozen=True)
class Trajectory:
    text: str  # as given; the evaluation's name for it
    months: tuple[float, ...] = ()  # points (empty for a named model)
    rates: tuple[float, ...] = ()
    model: str = "points"
    params: tuple[tuple[str, float], ...] = ()

    def rate(self, month: float) -> float:
        """f(month), a fault rate in [0, 1)."""
        if self.model == "points":
            return float(np.interp(month, self.months, self.rates))
        p = dict(self.params)
        if self.model == "constant":
            return p["rate"]
        t = max(0.0, float(month))
        return p["f0"] + (p["fmax"] - p["f0"]) * (1.0 - math.exp(-((t / p["eta"]) ** p["beta"])))

    def default_months(self) -> tuple[float, ...]:
        return self.months if self.model == "points" else tuple(float(m) for m in DEFAULT_MONTHS)


def _float(text: str, what: str, whole: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not math.isfinite(v):
        raise DSEError(f"{what} must be a number, got {text!r} in trajectory {whole!r}; use {FORMS}")
    return v


def _rate(v: float, text: str, whole: str) -> float:
    if not 0 <= v < 1:
        raise DSEError(f"fault rate {text!r} in trajectory {whole!r} must be in [0, 1)")
    return v


def parse_trajectory(text: str) -> Trajectory:
    """A Trajectory from its text (DSEError, one line naming the bad part and the forms allowed)."""
    if not isinstance(text, str) or not text.strip():
        raise DSEError(f"empty fault-rate trajectory {text!r}; use {FORMS}")
    whole = text.strip()
    head, colon, rest = whole.partition(":")
    if head in MODELS:
        return _named(head, rest, whole)
    if not colon or head.isalpha():
        raise DSEError(f"unknown fault-rate trajectory {whole!r}; use {FORMS}")
    points = []
    for part in whole.split(","):
        m, sep, r = part.strip().partition(":")
        if not sep:
            raise DSEError(f"trajectory point {part.strip()!r} in {whole!r} is not month:rate; use {FORMS}")
        month = _float(m, "month", whole)
        if month < 0:
            raise DSEError(f"month {m!r} in trajectory {whole!r} must be >= 0")
        points.append((month, _rate(_float(r, "fault rate", whole), r, whole)))
    months, rates = zip(*points)
    if any(b <= a for a, b in pairwise(months)):
        raise DSEError(f"months in trajectory {whole!r} must increase, got {', '.join(f'{m:g}' for m in months)}")
    if any(b < a for a, b in pairwise(rates)):  # nested maps: a chip's defects only accumulate
        raise DSEError(f"fault rates in trajectory {whole!r} must not decrease over time (defects accumulate), "
                       f"got {', '.join(f'{r:g}' for r in rates)}")
    return Trajectory(whole, tuple(months), tuple(rates))


def _named(model: str, rest: str, whole: str) -> Trajectory:
    if model == "constant":
        return Trajectory(whole, model=model, params=(("rate", _rate(_float(rest, "fault rate", whole), rest, whole)),))
    params = dict(WEIBULL_DEFAULTS)
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key not in MODELS["weibull"]:
            raise DSEError(f"weibull parameter {part!r} in {whole!r} is not one of "
                           f"{', '.join(k + '=' for k in MODELS['weibull'])}")
        params[key] = _float(value, key, whole)
    missing = [k for k in MODELS["weibull"] if k not in params]
    if missing:
        raise DSEError(f"weibull trajectory {whole!r} needs {', '.join(k + '=' for k in missing)}; use {FORMS}")
    _rate(params["f0"], f"f0={params['f0']:g}", whole)
    _rate(params["fmax"], f"fmax={params['fmax']:g}", whole)
    if params["fmax"] < params["f0"]:
        raise DSEError(f"weibull fmax {params['fmax']:g} must be >= f0 {params['f0']:g} in {whole!r}")
    for k in ("eta", "beta"):
        if params[k] <= 0:
            raise DSEError(f"weibull {k} must be > 0, got {params[k]:g} in {whole!r}")
    return Trajectory(whole, model="weibull", params=tuple((k, params[k]) for k in MODELS["weibull"]))


def months_until(months, values, threshold: float) -> float | None:
    """The first month at which `values` falls below `threshold`, linear between evaluated months; 0 if it
    starts below, None if it never does within the months evaluated."""
    for i, (m, v) in enumerate(zip(months, values)):
        if v < threshold:
            if i == 0:
                return 0.0
            m0, v0 = months[i - 1], values[i - 1]
            return float(m0 + (m - m0) * (v0 - threshold) / (v0 - v))
    return None


def lifetime_table(months, rates, results: dict[float, dict], target: float, min_yield: float | None = None) -> dict:
    """Per month: f(t), the evaluation's mean and interval, and the chip yield at `target`; plus the months until
    the mean (and, with min_yield, the yield) falls below its target. results: evaluate()'s result by rate."""
    rows = []
    for m, f in zip(months, rates):
        r = results[f]
        y = chip_yield(r["accuracies"], target)
        rows.append({"month": float(m), "fault_rate": f, "n": r["n"], "mean": r["mean"], "ci_low": r["ci_low"],
                     "ci_high": r["ci_high"], "worst": r["worst"], "yield": y["yield"], "yield_low": y["low"],
                     "yield_high": y["high"], "accuracies": r["accuracies"]})
    means, yields = [r["mean"] for r in rows], [r["yield"] for r in rows]
    out = {"target": target, "rows": rows, "months_to_target": months_until(months, means, target)}
    if min_yield is not None:
        out["min_yield"] = min_yield
        out["months_to_min_yield"] = months_until(months, yields, min_yield)
    return out


def evaluate_lifetime(ckpt, test_x, test_y, trajectory: Trajectory, *, months, protocol, target: float,
                      min_yield: float | None = None, device="cpu", progress: bool = True, batch_size: int = 500,
                      calib_x=None, precision: str | None = None) -> dict:
    """Accuracy against time: one evaluation (dse/core/evaluation/evaluate.py) at each distinct f(month), then
    lifetime_table. A month whose rate repeats another's reuses its result (the same chips)."""
    from dse.core.evaluation.evaluate import evaluate  # lazy: the page draws lifetime curves from here, torch-free

    months = [float(m) for m in months]
    if not months or any(m < 0 for m in months) or any(b <= a for a, b in pairwise(months)):
        raise DSEError(f"months must be increasing and >= 0, got {', '.join(f'{m:g}' for m in months) or 'none'}")
    rates = [round(trajectory.rate(m), 12) for m in months]
    distinct = sorted(set(rates))
    ev = evaluate(ckpt, test_x, test_y, distinct, protocol=protocol, device=device, progress=progress,
                  batch_size=batch_size, calib_x=calib_x,
                  precision=precision)
    by_rate = dict(zip(distinct, ev["results"]))
    table = lifetime_table(months, rates, by_rate, target, min_yield)
    return {**{k: v for k, v in ev.items() if k != "results"}, "trajectory": trajectory.text, **table}
