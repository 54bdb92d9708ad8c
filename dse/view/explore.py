"""What the explorer shows, computed from the results store with pandas (no streamlit here): the
design-point table at a fault rate, a point's status, fronts and the recommendation."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dse.core.cost.deployment import calibration_cost  # noqa: F401  the per-chip calibration price the page shows
from dse.core.cost.isaac import DEFAULT as DEFAULT_HARDWARE  # noqa: F401  the hardware knobs the page offers
from dse.core.cost.isaac import COST_VERSION, KNOBS, LIMITS, check_knobs  # noqa: F401
from dse.domain.errors import DSEError
from dse.domain.bn import BN, DEFAULT_BN, Chip, Paper, bn_label, parse_bn
from dse.domain.faultspec import FaultSpec
from dse.domain.paper import WIDTHS
from dse.domain.point import DesignPoint, label
from dse.results.store import Store
from dse.view.pareto import OBJECTIVES as PARETO_OBJECTIVES, cheapest_meeting, pareto_front

MAPPINGS = ("default", "1x1-on-crossbar")  # the mapping policies the page offers (dse.core.crossbar.mapping has more)
ARCH = ["network", "width", "shortcut_kernel", "mapping"]
POINT = ARCH + ["dropconnect"]
COST_COLUMNS = ("latency_ns", "energy_uj", "crossbars", "chips", "interval_ns", "images_per_s", "area_mm2",
                "min_area_mm2", "peak_power_w", "average_power_w", "tops_per_w", "tops_per_mm2", "fits")
OBJECTIVES = PARETO_OBJECTIVES  # the fronts the page offers: latency, interval, energy, area
SA1 = FaultSpec("sa1")  # the paper's fault model, what a query reads unless given another (a curve reads every rate)
DEFAULT_PROTOCOL = parse_bn(DEFAULT_BN)  # the one BN default, typed: Chip(images=DEFAULT_CALIB_IMAGES)


def best_evaluations(evals: pd.DataFrame, *, fault: FaultSpec = SA1, bn: BN = DEFAULT_PROTOCOL) -> pd.DataFrame:
    """One row per (design point, fault rate) under one fault model (`fault`'s name: sa1, a stuck cell reads its
    weight as 0; sa0, as the largest level of its sign; ...; its rate is not read) and BN protocol (Paper():
    Algorithm 1's statistics for p' = f; Chip(images=N): re-estimated through each chip from N training images;
    Batch()), rescaled, the one with most instances on most test images. Its `bn_protocol` column names the
    protocol."""
    if evals.empty:
        return evals.assign(bn_protocol=pd.Series(dtype=str))
    e = evals[(evals.fault_model == fault.name) & (evals.recalibrate == 1) & (evals.rescale == 1)]
    e = e[e.bn == bn.name] if "bn" in e else e
    if isinstance(bn, Chip):
        e = e[e.calib_images == bn.images]
    e = e.sort_values(["test_images", "n", "updated"], ascending=False)
    e = e.drop_duplicates(["point_id", "fault_rate"]).sort_values(POINT + ["fault_rate"])
    return e.assign(bn_protocol=bn.label)


def with_costs(df: pd.DataFrame, costs: pd.DataFrame, cost_model: str) -> pd.DataFrame:
    """The design points with their cost columns. A design that does not fit on the chips given (`fits`
    False) keeps NaN latency and energy, so no front or recommendation picks it."""
    c = costs[costs.cost_model == cost_model].drop(columns=[x for x in ("cost_model", "version") if x in costs])
    if "fits" in c:
        unfit = c.fits.notna() & ~c.fits.astype(bool)
        c = c.assign(**{o: c[o].where(~unfit) for o in OBJECTIVES if o in c})
    for col in ("width",):  # float keys: match on rounded values
        c = c.assign(**{col: c[col].round(4)})
        df = df.assign(**{col: df[col].round(4)})
    return df.merge(c, on=ARCH, how="left")


def design_table(store: Store, fault: FaultSpec, cost_model: str = "paper", *, bn: BN = DEFAULT_PROTOCOL,
                 hardware: dict | None = None, processor: tuple[float, float] | None = None) -> pd.DataFrame:
    """Every trained design point with its accuracy under `fault` (its model at its rate) and BN protocol `bn`
    (NaN where not evaluated), its fault-free accuracy, its loss both ways (against its own fault-free accuracy,
    `loss_own`, the paper's "degradation"; against its architecture's p=0 model, `loss_p0`, NaN where there is
    none), and cost. `bn_protocol` names the protocol of every number. `hardware`: isaac knobs other than ISAAC's
    defaults (check_knobs); `processor`: (GMAC/s, pJ per MAC) of the off-crossbar processor (check_processor).
    Costs under either are computed here; the defaults' come from the store."""
    points = store.points()
    if points.empty:
        return pd.DataFrame(columns=POINT + ["accuracy", "latency_ns", "energy_uj", "bn_protocol"])
    ev = best_evaluations(store.evaluations(), fault=fault, bn=bn)
    at = ev[np.isclose(ev.fault_rate, fault.rate)] if not ev.empty else ev
    cols = ["point_id", "mean", "ci95", "worst", "p5", "n", "test_images", "protocol", "precision"]
    at = at.reindex(columns=list(at.columns) + [c for c in cols if c not in at])  # a store older than a column
    df = points.merge(at[cols] if not at.empty else pd.DataFrame(columns=cols), on="point_id", how="left")
    df = df.rename(columns={"mean": "accuracy"})
    df["accuracy"] = df["accuracy"].astype(float)
    base = baseline_accuracy(points)
    df["baseline"] = [base.get(tuple(r[c] for c in ARCH), np.nan) for _, r in df.iterrows()]
    df["loss_own"] = df["fault_free_accuracy"].astype(float) - df["accuracy"]
    df["loss_p0"] = df["baseline"].astype(float) - df["accuracy"]
    df["bn_protocol"] = bn.label
    df["label"] = [label(r) for _, r in df.iterrows()]
    options = cost_options(cost_model, hardware, processor)
    if options:
        return with_costs(df, computed_costs(points, cost_model, options), cost_model)
    return with_costs(df, store.costs(), cost_model)


def computed_costs(points: pd.DataFrame, cost_model: str, options: dict) -> pd.DataFrame:
    """Costs of every architecture in `points` under `options` (cost_options), in store.costs()'s shape
    (torch: the counts are cached per architecture in dse.core.cost.per_image)."""
    rows = []
    for arch in points[ARCH].drop_duplicates().itertuples(index=False):
        t = estimate_totals(DesignPoint(arch.network, float(arch.width), int(arch.shortcut_kernel), arch.mapping),
                            cost_model, options)
        rows.append({**arch._asdict(), "cost_model": cost_model, **{k: t.get(k) for k in COST_COLUMNS}})
    return pd.DataFrame(rows, columns=ARCH + ["cost_model"] + list(COST_COLUMNS))


# the off-crossbar processor as `dse cost` takes it (--cpu-gmacs, --cpu-pj-per-mac): defaults and allowed ranges,
# torch-free for the page (tests/test_explore.py checks them against dse.core.cost.per_image.Processor)
DEFAULT_PROCESSOR = (100.0, 20.0)
PROCESSOR_LIMITS = {"cpu_gmacs": ("the processor's sustained GMAC/s", 1e-3, 1e7),
                    "cpu_pj_per_mac": ("the processor's energy per MAC in pJ", 1e-3, 1e6)}


def check_processor(cpu_gmacs, cpu_pj_per_mac) -> tuple[float, float]:
    """(GMAC/s, pJ per MAC) as `dse cost` allows them; a bad one raises one line naming it and what is allowed."""
    for name, v in (("cpu_gmacs", cpu_gmacs), ("cpu_pj_per_mac", cpu_pj_per_mac)):
        what, lo, hi = PROCESSOR_LIMITS[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and lo <= v <= hi):
            raise DSEError(f"{name} ({what}) must be a number from {lo:g} to {hi:g}, got {v!r}")
    return float(cpu_gmacs), float(cpu_pj_per_mac)


def cost_options(cost_model: str, hardware: dict | None = None,
                 processor: tuple[float, float] | None = None) -> dict:
    """The cost knobs that make a cost differ from the store's: isaac's (isaac model only) and the processor's
    (both models; GMAC/s, pJ per MAC). Empty: the store's costs serve."""
    options = dict(hardware or {}) if cost_model == "isaac" else {}
    if processor is not None and tuple(processor) != DEFAULT_PROCESSOR:
        options["processor"] = tuple(processor)
    return options


def estimate_totals(point: DesignPoint, cost_model: str, options: dict) -> dict:
    """A point's cost totals computed under `options` (cost_options), as `dse cost` computes them."""
    from dse.core.cost.per_image import Processor, estimate  # torch: only when costs are computed

    knobs = dict(options)
    if "processor" in knobs:
        gmacs, pj = knobs.pop("processor")
        knobs["processor"] = Processor(gmacs * 1e9, pj).check()
    return estimate(point.network, point.width, point.shortcut_kernel, point.mapping, cost_model, **knobs)["totals"]


# the results table as a reader scans it: what the point is, how it holds up, what it costs; then the files
RESULTS_FIRST = POINT + ["accuracy", "ci95", "n", "worst", "fault_free_accuracy", "loss_own", "loss_p0",
                         "latency_ns", "interval_ns", "energy_uj", "bn_protocol", "precision"]
RESULTS_HIDDEN = ("point_id", "checkpoint_sha", "label", "updated", "calibrated_rates")


def results_view(table: pd.DataFrame) -> pd.DataFrame:
    """The design table's columns in reading order, internal keys left out."""
    first = [c for c in RESULTS_FIRST if c in table]
    return table[first + [c for c in table if c not in first and c not in RESULTS_HIDDEN]]


def baseline_accuracy(points: pd.DataFrame) -> dict:
    """Fault-free accuracy of each architecture trained without drop-connect (the paper's baseline)."""
    plain = points[(points.dropconnect == 0) & points.fault_free_accuracy.notna()]
    return {tuple(r[c] for c in ARCH): r["fault_free_accuracy"] for _, r in plain.iterrows()}


def curves(store: Store, point: DesignPoint, *, fault: FaultSpec = SA1, bn: BN = DEFAULT_PROTOCOL) -> pd.DataFrame:
    """Accuracy against fault rate (every rate of `fault`'s model) for every drop-connect rate of the point's
    architecture (Figs. 3-5)."""
    ev = best_evaluations(store.evaluations(), fault=fault, bn=bn)
    if ev.empty:
        return ev
    arch = (ev.network == point.network) & np.isclose(ev.width, point.width) & \
        (ev.shortcut_kernel == point.shortcut_kernel) & (ev.mapping == point.mapping)
    return ev[arch].sort_values(["dropconnect", "fault_rate"])


def mapping_comparison(store: Store, point: DesignPoint, *, fault: FaultSpec = SA1,
                       bn: BN = DEFAULT_PROTOCOL) -> pd.DataFrame:
    """The point's curves under each mapping policy where more than one exists (Fig. 7)."""
    ev = best_evaluations(store.evaluations(), fault=fault, bn=bn)
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


def active_jobs(store: Store, point: DesignPoint) -> pd.DataFrame:
    """The point's queued or running jobs (training, evaluation, ...), newest first."""
    df = store.jobs()
    return df[(df.point_id == point.point_id) & df.state.isin(["queued", "running"])]


def job_status(job) -> str:
    """A running job as the point's status: 'training (running, 42%)'."""
    doing = {"train": "training", "evaluate": "evaluating", "sensitivity": "measuring sensitivity"}
    return f"{doing.get(job.kind, job.kind)} ({job.state}, {float(job.progress or 0):.0%})"


def calibration_curve(store: Store, point: DesignPoint, fault_rate: float) -> pd.DataFrame:
    """Accuracy (mean, CI, spread across chips) at `fault_rate` against the images each chip calibrated its
    BN statistics on: the paper's protocol as N = 0, then every chip-protocol N evaluated (dse calib-curve).
    Only the crossbars all counts share are compared (the same chips for every N)."""
    from scipy import stats

    ev = store.evaluations()
    if ev.empty:
        return ev
    e = ev[(ev.point_id == point.point_id) & np.isclose(ev.fault_rate, fault_rate) & (ev.fault_model == SA1.name)
           & (ev.recalibrate == 1) & (ev.rescale == 1) & ev.bn.isin([Paper.name, Chip.name])]
    e = e.sort_values(["test_images", "n", "updated"], ascending=False).drop_duplicates(["bn", "calib_images"])
    if e.empty:
        return e
    e = e.assign(calib_images=np.where(e.bn == Paper.name, 0, e.calib_images))
    accs = [json.loads(a) for a in e.accuracies]
    k = min(len(a) for a in accs)
    rows = []
    for (_, r), a in zip(e.iterrows(), accs):
        a = np.asarray(a[:k], dtype=float)
        half = float(stats.t.ppf(0.975, k - 1)) * a.std(ddof=1) / math.sqrt(k) if k > 1 else np.nan
        rows.append({"calib_images": int(r.calib_images), "bn_protocol": bn_label(r.bn, r.calib_images),
                     "mean": a.mean(), "ci95": half, "std": a.std(ddof=1) if k > 1 else 0.0,
                     "worst": a.min(), "best": a.max(), "n": k, "test_images": int(r.test_images)})
    return pd.DataFrame(rows).sort_values("calib_images").reset_index(drop=True)


def fronts(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One front per objective (OBJECTIVES), each over the points that have that cost."""
    out = {}
    for obj in OBJECTIVES:
        t = table.dropna(subset=["accuracy", obj]) if obj in table else table.iloc[0:0]
        out[obj] = pareto_front(t, objective=obj, accuracy="accuracy") if not t.empty else t
    return out


def breakdown_rows(costs: dict[str, dict], what: str = "energy") -> pd.DataFrame:
    """Long-form energy (uJ) or area (mm^2) by component for a few design points ({label: totals}): the page's
    stacked bar for the selected point and its neighbours. Totals without a breakdown are left out."""
    from dse.core.cost.isaac import BREAKDOWN_LABELS

    key = "energy_breakdown_uj" if what == "energy" else "area_breakdown_mm2"
    rows = [{"design": name, "component": BREAKDOWN_LABELS[k], "value": v}
            for name, t in costs.items() if t and key in t for k, v in t[key].items()]
    return pd.DataFrame(rows, columns=["design", "component", "value"])


def neighbours(table: pd.DataFrame, point: DesignPoint, n: int = 2) -> list[DesignPoint]:
    """The selected point's architecture and the nearest widths of its network, shortcut and mapping (n each
    side): what its cost is compared with."""
    same = table[(table.network == point.network) & (table.shortcut_kernel == point.shortcut_kernel)
                 & (table.mapping == point.mapping)]
    widths = sorted(set(same.width.round(4)) | {round(float(w), 4) for w in WIDTHS} | {round(point.width, 4)})
    i = widths.index(round(point.width, 4))
    return [DesignPoint(point.network, w, point.shortcut_kernel, point.mapping, point.dropconnect)
            for w in widths[max(0, i - n): i + n + 1]]


def recommend(table: pd.DataFrame, target: float, objective: str = "latency_ns") -> dict | None:
    """The cheapest design (by latency or energy) whose accuracy at the table's fault rate is >= target."""
    t = table.dropna(subset=["accuracy", objective])
    if t.empty:
        return None
    row = cheapest_meeting(t, target, cost=objective, accuracy="accuracy")
    return None if row is None else dict(row)


def default_target(table: pd.DataFrame, fallback: float = 85.0) -> float:
    """A first accuracy target that some evaluated designs meet and others miss: their median, rounded down
    to half a point, so the first recommendation already shows a trade-off. With nothing evaluated at this
    rate, `fallback` (the page passes the target shown before, so it never jumps to an arbitrary value)."""
    acc = table["accuracy"].dropna() if "accuracy" in table else pd.Series(dtype=float)
    return fallback if acc.empty else math.floor(float(acc.median()) * 2) / 2


def stored_cost(store: Store, point: DesignPoint, cost_model: str) -> dict | None:
    """The point's cost totals from the store, when they were computed before by this cost model version."""
    return store.cost_totals(point, cost_model, COST_VERSION)


def open_results(path=None) -> tuple[Store, dict]:
    """The results store, filled from the checkpoint folders (catalog.sync): what the page reads."""
    from dse.results.catalog import sync
    from dse.results.store import open_store

    store = open_store(path)
    return store, sync(store)


def point_cost(store: Store, point: DesignPoint, cost_model: str, hardware: dict | None = None,
               processor: tuple[float, float] | None = None) -> dict:
    """A point's cost totals: from the store when known (no torch import), else computed once and stored.
    With isaac knobs other than the defaults (`hardware`) or another processor, computed (the caller caches them)."""
    options = cost_options(cost_model, hardware, processor)
    if options:
        return estimate_totals(point, cost_model, options)
    totals = stored_cost(store, point, cost_model)
    if totals is None:
        from dse.results.catalog import ensure_costs

        ensure_costs(store, [point])
        totals = stored_cost(store, point, cost_model)
    return totals


def sample_label(ev: pd.DataFrame) -> str:
    """The sample behind a figure's faulty points: '20-100 chips x 10,000 images' (chips: crossbar instances
    per point; the fault-free points are one network each)."""
    ev = ev[ev.n.notna()] if ev is not None and "n" in ev else None
    if ev is None or ev.empty:
        return "no evaluations"
    faulty = ev[ev.fault_rate > 0] if "fault_rate" in ev else ev
    faulty = faulty if not faulty.empty else ev
    lo, hi = int(faulty.n.min()), int(faulty.n.max())
    chips = f"{lo} chips" if lo == hi else f"{lo}-{hi} chips"
    imgs = ev.test_images.dropna() if "test_images" in ev else pd.Series(dtype=float)
    images = "" if imgs.empty else (f" × {int(imgs.min()):,} images" if imgs.min() == imgs.max()
                                    else f" × {int(imgs.min()):,}-{int(imgs.max()):,} images")
    return (chips if hi > 1 else "1 chip") + images


def fault_free_note(ev: pd.DataFrame, point: DesignPoint, header: float | None, *, bn: BN) -> str | None:
    """Why the curve's f = 0 point of the selected design may differ from the header's fault-free accuracy:
    None when they agree to 0.01 points (or either is missing), else one sentence naming both."""
    if ev is None or ev.empty or header is None or pd.isna(header):
        return None
    at0 = ev[np.isclose(ev.fault_rate, 0.0) & np.isclose(ev.dropconnect, point.dropconnect)]
    if at0.empty or abs(float(at0["mean"].iloc[0]) - float(header)) < 0.005:
        return None
    return (f"At f = 0 the curve shows {float(at0['mean'].iloc[0]):.2f}% for p = {point.dropconnect:g} where the header "
            f"says {float(header):.2f}%: the curve is the 8-bit network on the crossbars with the {bn.name} "
            "protocol's BN statistics, the header the float network with its trained ones (the checkpoint's test "
            "accuracy).")
