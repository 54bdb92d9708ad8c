"""What the spatial-defects report and the app's fault-model tab show, read from the results store (the
evaluations `python -m dse spatial-report` records; the shipped ones come with checkpoints/manifest.json):
docs/spatial.md's tables, accuracy against fault rate per fault model and layout, one tile's stuck cells under
each fault model (blind and remapped), and an interpolated lifetime curve. Backend only: pandas and plotly
(torch is imported only when a tile map is drawn)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dse.core.evaluation.lifetime import months_until, parse_trajectory  # noqa: F401  the tab's lifetime curve (torch-free)
from dse.domain.bn import BN, BN_PROTOCOLS, Chip, bn_label
from dse.domain.faultspec import FAULT_MODEL_NAMES, WEIGHT_BITS, parse_fault_model
from dse.domain.point import label as point_label

SAMPLE = ["bn", "calib_images", "seed", "test_images", "protocol"]  # what the rows of one report share
LAYOUTS = {"blind": "blind (as placed)", "remap": "remapped"}


def layout_label(remap: bool, spares: int) -> str:
    return "remapped" + (f" + {spares} spare columns" if spares else "") if remap else "blind (as placed)"


def report(evals: pd.DataFrame, *, point_ids=None, fault_models=None, fault_rates=None, sample: dict | None = None,
           bn: str | None = None) -> dict:
    """The spatial-defects report from the store's evaluations (store.evaluations(): those of the current
    checkpoints): per design point, the rows of one sample (BN protocol, seed, test images and crossbar budget: the
    one with the most remapped or spatial rows among those matching `sample`'s fields, under `bn` when it has
    any) whose fault model is
    a blind or remapped one at 8 bits per cell, and the f = 0 accuracy on the same images (fault_free). Narrowed to
    `point_ids`, `fault_models` (their base names, "clustered:8" or "rows") and `fault_rates` when given."""
    if evals is None or evals.empty:
        return {"rows": []}
    e = evals[(evals.recalibrate == 1) & (evals.rescale == 1)]
    if point_ids is not None:
        e = e[e.point_id.isin(list(point_ids))]
    specs = {name: parse_fault_model(name) for name in set(e.fault_model)}
    e = e[e.fault_model.map(lambda m: specs[m].bits_per_cell == WEIGHT_BITS).astype(bool)]  # a mask even when empty
    out, used = [], None
    for pid, g in e.groupby("point_id", sort=False):
        if sample:  # the sample asked, its fields not given the largest one recorded
            g = g[np.logical_and.reduce([g[k] == v for k, v in sample.items()])]
        chosen = _best_sample(g, specs, bn)
        if chosen is None:
            continue
        used = chosen
        g = g[np.logical_and.reduce([g[k] == v for k, v in chosen.items()])]
        zero = g[g.fault_rate == 0]
        fault_free = float(zero["mean"].iloc[0]) if len(zero) else float(g.quantized_accuracy.dropna().iloc[0]) \
            if g.quantized_accuracy.notna().any() else float("nan")
        for r in g[g.fault_rate > 0].itertuples():
            f = specs[r.fault_model]
            base = replace(f, remap=False, spares=0).name
            if (fault_models is not None and base not in fault_models) or \
                    (fault_rates is not None and not np.isclose(fault_rates, r.fault_rate).any()):
                continue
            out.append({"point": point_label(r._asdict()), "fault_free": fault_free, "fault_model": base,
                        "layout": layout_label(f.remap, f.spares), "spec": r.fault_model, "fault_rate": r.fault_rate,
                        "n": int(r.n), "mean": r.mean, "ci95": r.ci95, "worst": r.worst,
                        "accuracies": json.loads(r.accuracies), "_order": _order(f, fault_models)})
    out.sort(key=lambda r: (r["point"], r.pop("_order"), r["fault_rate"]))
    n = parse_budget_instances(used["protocol"]) if used else None
    return {**({k: used[k] for k in ("bn", "calib_images", "seed", "test_images")} if used else {}),
            "instances": n, "rows": out}


def _best_sample(g: pd.DataFrame, specs: dict, bn: str | None) -> dict | None:
    """The sample with the most remapped or spatial rows (ties: the larger), under `bn` when it has any."""
    spatial = g[g.fault_model.map(lambda m: specs[m].remap or specs[m].model not in ("sa1", "sa0")).astype(bool)]
    if spatial.empty:
        return None
    if bn is not None and (spatial.bn == bn).any():
        spatial = spatial[spatial.bn == bn]
    counts = spatial.groupby(SAMPLE).size().reset_index(name="rows")
    best = counts.sort_values(["rows", "test_images"], ascending=False).iloc[0]
    return {k: (best[k].item() if hasattr(best[k], "item") else best[k]) for k in SAMPLE}


def _order(f, fault_models) -> tuple:
    """Rows in the order the command lists its fault models (else the model names'), then blind, remapped, spares."""
    base = replace(f, remap=False, spares=0).name
    first = list(fault_models).index(base) if fault_models is not None else FAULT_MODEL_NAMES.index(f.model)
    return (first, base, f.remap, f.spares)


def parse_budget_instances(protocol: str) -> int | None:
    """The crossbar count of a fixed budget's name ('fixed(5)' -> 5); None for an adaptive one."""
    return int(protocol[6:-1]) if str(protocol).startswith("fixed(") else None


def report_rows(report: dict) -> pd.DataFrame:
    """One row per checkpoint, fault model, layout and rate: mean, ci95, n, accuracies."""
    return pd.DataFrame(report["rows"]) if report and report.get("rows") else pd.DataFrame()


def doc_table(report: dict) -> pd.DataFrame:
    """Accuracy (mean ± 95% CI half-width, %) with one row per checkpoint, fault model and layout and one column
    per fault rate; the fault-free 8-bit accuracy on the same images beside it."""
    rows = report_rows(report)
    out = []
    for (label, model, layout), g in rows.groupby(["point", "fault_model", "layout"], sort=False):
        cells = {f"f={r.fault_rate:g}": f"{r.mean:.2f} ± {r.ci95:.2f}" for r in g.itertuples()}
        out.append({"design point": label, "fault-free (%)": f"{g.fault_free.iloc[0]:.2f}", "faults": model,
                    "layout": layout, **cells})
    return pd.DataFrame(out)


def gain_table(report: dict) -> pd.DataFrame:
    """Accuracy a remapping adds over the blind layout on the same chips (paired: mean of per-chip differences)."""
    rows = report_rows(report)
    out = []
    for (label, model), g in rows.groupby(["point", "fault_model"], sort=False):
        blind = g[g.layout == LAYOUTS["blind"]].set_index("fault_rate")
        for layout, h in g[g.layout != LAYOUTS["blind"]].groupby("layout", sort=False):
            cells = {}
            for r in h.itertuples():
                d = np.subtract(r.accuracies, blind.loc[r.fault_rate].accuracies)
                cells[f"f={r.fault_rate:g}"] = f"{d.mean():+.2f}"
            out.append({"design point": label, "faults": model, "layout": layout, **cells})
    return pd.DataFrame(out)


def accuracy_figure(report: dict, point: str, fault_models: list[str] | None = None) -> go.Figure:
    """Accuracy against fault rate for one design point: a line per fault model and layout, 95% CI bars."""
    rows = report_rows(report)
    rows = rows[rows.point == point]
    fig = go.Figure()
    palette = dict(zip(dict.fromkeys(rows.fault_model), ["#4c72b0", "#dd8452", "#c44e52", "#55a868", "#8172b3",
                                                          "#937860", "#da8bc3"] * 4))
    dashes = dict(zip(dict.fromkeys(rows.layout), ["solid", "dot", "dash", "dashdot"] * 4))
    for (model, layout), g in rows.groupby(["fault_model", "layout"], sort=False):
        if fault_models and model not in fault_models:
            continue
        x = [0.0, *g.fault_rate]
        y = [g.fault_free.iloc[0], *g["mean"]]
        err = [0.0, *g.ci95]
        fig.add_trace(go.Scatter(x=[100 * v for v in x], y=y, error_y={"type": "data", "array": err},
                                 mode="lines+markers", name=f"{model}, {layout}",
                                 line={"color": palette[model], "dash": dashes[layout]},
                                 marker={"color": palette[model]}))
    fig.update_layout(title=f"{point}: accuracy vs cell fault rate", xaxis_title="cell fault rate f (%)",
                      yaxis_title="test accuracy (%)", legend_title="faults, layout (colour: faults; line: layout)",
                      height=560, width=1000)
    return fig


def sample_label(report: dict) -> str:
    """The report's sample and protocol, as its figures state it: 'BN: chip (N=500) · 5 chips x 1,000 images per
    point; f = 0: the 8-bit network on the same images'."""
    bn = report.get("bn")
    how = bn_label(bn, report.get("calib_images")) if bn in BN_PROTOCOLS else "not recorded"
    return (f"BN: {how} · {report.get('instances', '?')} chips × {int(report.get('test_images') or 10000):,} images "
            "per point; f = 0: the 8-bit network on the same images")


def protocol_note(report: dict, *, bn: BN) -> str | None:
    """Why the report's curve may not match the rest of the page (under BN protocol `bn`): its own protocol and
    smaller sample."""
    if not report.get("rows"):
        return None
    theirs = (report.get("bn"), int(report.get("calib_images") or 0) if report.get("bn") == Chip.name else 0)
    ours = (bn.name, bn.images)  # images: 0 but under Chip, as the report's
    sample = (f"The spatial-defects results shown use {report.get('instances', '?')} chips × "
              f"{int(report.get('test_images') or 10000):,} test images, so its f = 0 point (the 8-bit network on "
              "those images) differs from the header's fault-free accuracy (the float network on 10,000).")
    if theirs == ours:
        return sample
    if theirs[0] not in BN_PROTOCOLS:
        return f"{sample} Its BN protocol is not recorded in the report."
    return (f"{sample} It was made under BN: {bn_label(theirs[0], theirs[1])}, not the sidebar's "
            f"{bn.label}: the Evaluate button above evaluates the point under the sidebar's protocol.")


def lifetime_curve(report: dict, point: str, fault_model: str, layout: str, trajectory, months) -> pd.DataFrame:
    """Accuracy against months along `trajectory` (dse/core/evaluation/lifetime.py), interpolated linearly between the
    report's evaluated rates (fault-free at 0): a quick look; `python -m dse lifetime` evaluates each month."""
    rows = report_rows(report)
    g = rows[(rows.point == point) & (rows.fault_model == fault_model) & (rows.layout == layout)]
    if g.empty:
        return pd.DataFrame(columns=["month", "fault_rate", "mean", "extrapolated"])
    x = np.array([0.0, *g.fault_rate])
    y = np.array([g.fault_free.iloc[0], *g["mean"]])
    rates = np.array([trajectory.rate(m) for m in months])
    return pd.DataFrame({"month": list(months), "fault_rate": rates, "mean": np.interp(rates, x, y),
                         "extrapolated": rates > x.max()})


def lifetime_figure(curve: pd.DataFrame, target: float, title: str) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=curve.month, y=curve["mean"], mode="lines+markers", name="mean accuracy",
                             customdata=100 * curve.fault_rate,
                             hovertemplate="month %{x:g}: %{y:.2f}% at f = %{customdata:.1f}%<extra></extra>"))
    fig.add_hline(y=target, line_dash="dash", annotation_text=f"target {target:g}%")
    fig.update_layout(title=title, xaxis_title="months in the field", yaxis_title="mean test accuracy (%)",
                      height=380)
    return fig


def tile_maps(network: str, width: float, shortcut_kernel: int, mapping: str, layer: str, *, fault_model: str,
              rate: float, instance: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """One tile (the layer's first) of one chip: `stuck` (rows x columns + spares, bool), `occupied` (which cells
    hold a weight), and with +remap in the fault model `stuck_remapped`: the stuck cells as the remapped weights
    see them (logical layout), so the two can be compared cell for cell. Untrained weights: magnitudes for the
    remapping come from a freshly initialised model (a teaching view, not a result)."""
    import torch

    from dse.core.faults.injector import FaultInjector
    from dse.core.models import build_model
    from dse.core.faults.remap import remap_tile

    torch.manual_seed(0)
    inj = FaultInjector(build_model(network, width, shortcut_kernel), mapping)
    spec = parse_fault_model(fault_model)
    t = inj.placement.layers[layer].first_tile
    cells = inj.cell_maps(instance, rate, seed, fault_model)[t]
    out = {"stuck": cells, "occupied": inj.placement.occupancy()[t]}
    if spec.remap:
        rows, cols = remap_tile(cells, inj.loss_cells(spec.model)[t])
        out["stuck_remapped"] = cells[np.ix_(rows, cols)]
    return out


def tile_gallery(network: str, width: float, shortcut_kernel: int, mapping: str, layer: str, *, models: list[str],
                 rate: float, instance: int = 0) -> go.Figure:
    """One tile of one chip under each fault model side by side (the physical map; dark cells are stuck)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, horizontal_spacing=0.02)
    for k, model in enumerate(models):
        stuck = tile_maps(network, width, shortcut_kernel, mapping, layer, fault_model=model, rate=rate,
                          instance=instance)["stuck"]
        fig.add_trace(go.Heatmap(z=stuck.astype(np.uint8)[::-1], colorscale=[[0, "#f2f2f2"], [1, "#b2182b"]],
                                 showscale=False), row=1, col=k + 1)
        fig.update_xaxes(showticklabels=False, row=1, col=k + 1)
        fig.update_yaxes(showticklabels=False, scaleanchor=f"x{k + 1 if k else ''}", row=1, col=k + 1)
    fig.update_layout(title=f"One 128x128 tile ({layer}) of chip {instance} at a cell fault rate of {rate:.0%}",
                      height=330, width=260 * len(models), margin={"l": 10, "r": 10, "t": 70, "b": 10})
    return fig
