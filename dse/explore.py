"""What the explorer shows, computed from the results store with pandas (no streamlit here): the
design-point table at a fault rate, a point's status, fronts and the recommendation."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dse.pareto import cheapest_meeting, pareto_front
from dse.store import DesignPoint, Store

# the design space the explorer offers (torch-free, so the page renders without importing torch;
# tests/test_explore.py checks it against the model registry)
NETWORKS = ("resnet20", "vgg13", "mobilenetv2")
SHORTCUT_KERNELS = {"resnet20": (1, 3), "vgg13": (1,), "mobilenetv2": (1,)}
MAPPINGS = ("default", "1x1-on-crossbar")
WIDTHS = (1.0, 1.2, 1.4, 1.6)  # the paper's widths
DROPCONNECT_RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
FAULT_RATES = (0.0, 0.1, 0.2, 0.3)  # the calibrated rates p'
ARCH = ["network", "width", "shortcut_kernel", "mapping"]
POINT = ARCH + ["dropconnect"]
CHANCE_ACCURACY = 10.0  # CIFAR-10 has ten classes: guessing scores 10%
CHANCE_MARGIN = 3.0  # points above chance that still count as guessing


def at_chance(accuracy) -> bool:
    """A mean accuracy no better than guessing: the network has collapsed under these faults (a result,
    not an error)."""
    return accuracy is not None and accuracy == accuracy and float(accuracy) <= CHANCE_ACCURACY + CHANCE_MARGIN


def best_evaluations(evals: pd.DataFrame) -> pd.DataFrame:
    """One row per (design point, fault rate): SA1, recalibrated and rescaled (the paper's protocol),
    the one with most instances on most test images."""
    if evals.empty:
        return evals
    e = evals[(evals.fault_model == "sa1") & (evals.recalibrate == 1) & (evals.rescale == 1)]
    e = e.sort_values(["test_images", "n", "updated"], ascending=False)
    return e.drop_duplicates(["point_id", "fault_rate"]).sort_values(POINT + ["fault_rate"])


def with_costs(df: pd.DataFrame, costs: pd.DataFrame, cost_model: str) -> pd.DataFrame:
    c = costs[costs.cost_model == cost_model].drop(columns="cost_model")
    for col in ("width",):  # float keys: match on rounded values
        c = c.assign(**{col: c[col].round(4)})
        df = df.assign(**{col: df[col].round(4)})
    return df.merge(c, on=ARCH, how="left")


def design_table(store: Store, fault_rate: float, cost_model: str = "paper") -> pd.DataFrame:
    """Every trained design point with its accuracy at `fault_rate` (NaN where not evaluated), its
    fault-free accuracy, loss against the fault-free baseline, and cost."""
    points = store.points()
    if points.empty:
        return pd.DataFrame(columns=POINT + ["accuracy", "latency_ns", "energy_uj"])
    ev = best_evaluations(store.evaluations())
    at = ev[np.isclose(ev.fault_rate, fault_rate)] if not ev.empty else ev
    cols = ["point_id", "mean", "ci95", "worst", "p5", "n", "test_images", "protocol"]
    df = points.merge(at[cols] if not at.empty else pd.DataFrame(columns=cols), on="point_id", how="left")
    df = df.rename(columns={"mean": "accuracy"})
    df["accuracy"] = df["accuracy"].astype(float)
    base = baseline_accuracy(points)
    df["baseline"] = [base.get(tuple(r[c] for c in ARCH), r["fault_free_accuracy"]) for _, r in df.iterrows()]
    df["loss"] = df["baseline"] - df["accuracy"]
    df["label"] = [label(r) for _, r in df.iterrows()]
    return with_costs(df, store.costs(), cost_model)


def baseline_accuracy(points: pd.DataFrame) -> dict:
    """Fault-free accuracy of each architecture trained without drop-connect (the paper's baseline)."""
    plain = points[(points.dropconnect == 0) & points.fault_free_accuracy.notna()]
    return {tuple(r[c] for c in ARCH): r["fault_free_accuracy"] for _, r in plain.iterrows()}


def label(r) -> str:
    sk = f" k{int(r['shortcut_kernel'])}" if r["network"] == "resnet20" else ""
    mp = "" if r["mapping"] == "default" else f" [{r['mapping']}]"
    return f"{r['network']} {r['width']:g}x{sk} p={r['dropconnect']:g}{mp}"


def curves(store: Store, point: DesignPoint) -> pd.DataFrame:
    """Accuracy against fault rate for every drop-connect rate of the point's architecture (Figs. 3-5)."""
    ev = best_evaluations(store.evaluations())
    if ev.empty:
        return ev
    arch = (ev.network == point.network) & np.isclose(ev.width, point.width) & \
        (ev.shortcut_kernel == point.shortcut_kernel) & (ev.mapping == point.mapping)
    return ev[arch].sort_values(["dropconnect", "fault_rate"])


def mapping_comparison(store: Store, point: DesignPoint) -> pd.DataFrame:
    """The point's curves under each mapping policy where more than one exists (Fig. 7)."""
    ev = best_evaluations(store.evaluations())
    if ev.empty:
        return ev
    same = (ev.network == point.network) & np.isclose(ev.width, point.width) & \
        (ev.shortcut_kernel == point.shortcut_kernel) & np.isclose(ev.dropconnect, point.dropconnect)
    ev = ev[same]
    return ev if ev.mapping.nunique() > 1 else ev.iloc[0:0]


@dataclass
class PointStatus:
    trained: bool
    evaluated: bool
    row: dict | None  # the design-table row, when trained
    checkpoint: str | None
    error: str | None

    @property
    def label(self) -> str:
        if self.error:
            return "unreadable checkpoint"
        return "evaluated" if self.evaluated else "trained, not evaluated at this fault rate" if self.trained else "missing"


def status(table: pd.DataFrame, point: DesignPoint) -> PointStatus:
    hit = table[table.point_id == point.point_id] if "point_id" in table else table.iloc[0:0]
    if hit.empty:
        return PointStatus(False, False, None, None, None)
    r = hit.iloc[0].to_dict()
    err = r.get("error") if isinstance(r.get("error"), str) else None
    trained = isinstance(r.get("checkpoint"), str) and not err
    return PointStatus(trained, trained and not pd.isna(r.get("accuracy")), r, r.get("checkpoint"), err)


def fronts(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    t = table.dropna(subset=["accuracy", "latency_ns", "energy_uj"])
    if t.empty:
        return {obj: t for obj in ("latency_ns", "energy_uj")}
    return {obj: pareto_front(t, objective=obj, accuracy="accuracy") for obj in ("latency_ns", "energy_uj")}


def recommend(table: pd.DataFrame, target: float, objective: str = "latency_ns") -> dict | None:
    """The cheapest design (by latency or energy) whose accuracy at the table's fault rate is >= target."""
    t = table.dropna(subset=["accuracy", objective])
    if t.empty:
        return None
    row = cheapest_meeting(t, target, cost=objective, accuracy="accuracy")
    return None if row is None else dict(row)


def default_target(table: pd.DataFrame, fallback: float = 85.0) -> float:
    """A first accuracy target that some evaluated designs meet and others miss: their median, rounded down
    to half a point, so the first recommendation already shows a trade-off."""
    acc = table["accuracy"].dropna() if "accuracy" in table else pd.Series(dtype=float)
    return fallback if acc.empty else math.floor(float(acc.median()) * 2) / 2


def stored_cost(store: Store, point: DesignPoint, cost_model: str) -> dict | None:
    """The point's cost totals from the store, when they were computed before."""
    df = store.read_sql("SELECT detail FROM costs WHERE network=? AND ABS(width-?)<1e-6 AND shortcut_kernel=? "
                        "AND mapping=? AND cost_model=?",
                        (point.network, point.width, point.shortcut_kernel, point.mapping, cost_model))
    return None if df.empty else json.loads(df.detail.iloc[0])["totals"]
