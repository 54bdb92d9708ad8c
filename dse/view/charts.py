"""Plotly figures of the explorer (plain functions of DataFrames, so the app only lays them out)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from dse.core.protocol import fault_model_label
from dse.view import units

# cost axes carry no unit here: pareto() adds the one that fits the plotted values (dse.view.units)
AXIS = {"latency_ns": "latency of one image", "interval_ns": "interval between images (1/throughput)",
        "energy_uj": "energy per image", "min_area_mm2": "area of one copy of the weights",
        "accuracy": "accuracy (%)", "fault_rate": "SA1 fault rate", "dropconnect": "drop-connect rate p"}
SHORT = {"latency_ns": "latency", "interval_ns": "interval", "energy_uj": "energy", "min_area_mm2": "area"}
LOG_SPAN = 10.0  # a cost axis whose values span more than this factor is drawn on a log scale


# one colour and marker per network, distinct in hue (not two blues) and for colour-blind readers
NETWORK_COLORS = {"resnet20": "#1f77b4", "vgg13": "#2ca02c", "mobilenetv2": "#d62728"}
NETWORK_SYMBOLS = {"resnet20": "circle", "vgg13": "square", "mobilenetv2": "diamond"}


def pct(rate: float) -> str:
    """A fault rate as the sidebar shows it: 0.1 -> '10%', 0.015 -> '1.5%'."""
    return f"{100 * float(rate):.4g}%"


def empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font=dict(size=14))
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=320)
    return fig


def accuracy_vs_fault_rate(curves: pd.DataFrame, title: str) -> go.Figure:
    """One line per drop-connect rate, 95% CI as error bars (the paper's Figs. 3-5)."""
    if curves.empty:
        return empty("no evaluations for this architecture yet")
    d = curves.assign(p=curves.dropconnect.map(lambda p: f"p={p:g}"))
    fig = px.line(d, x="fault_rate", y="mean", color="p", error_y="ci95", markers=True,
                  hover_data={"n": True, "worst": ":.2f", "ci95": ":.2f", "p": False},
                  labels={**AXIS, "mean": AXIS["accuracy"], "p": "drop-connect"}, title=title)
    fig.update_xaxes(tickformat=".0%")
    fig.update_layout(height=380, legend_title_text="drop-connect")
    return fig


def dropconnect_heatmap(curves: pd.DataFrame, title: str) -> go.Figure:
    """Accuracy over drop-connect rate x fault rate, best drop-connect rate per fault rate marked (Fig. 6)."""
    if curves.empty:
        return empty("no evaluations for this architecture yet")
    grid = curves.pivot_table(index="dropconnect", columns="fault_rate", values="mean")
    fig = px.imshow(grid.values, x=[pct(f) for f in grid.columns], y=[f"{p:g}" for p in grid.index],
                    color_continuous_scale="Viridis", aspect="auto", text_auto=".1f", origin="lower",
                    labels={"x": AXIS["fault_rate"], "y": AXIS["dropconnect"], "color": "accuracy %"}, title=title)
    rated = grid.notna().sum(axis=0) >= 2  # a "best p" needs at least two drop-connect rates to choose from
    best = grid.loc[:, rated].idxmax(axis=0)
    # an open square around the best cell keeps its value readable
    fig.add_trace(go.Scatter(x=[pct(f) for f in best.index], y=[f"{p:g}" for p in best.values], mode="markers",
                             marker=dict(symbol="square-open", size=34, color="red", line=dict(width=3)),
                             name="best p per fault rate", hoverinfo="skip"))
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    fig.update_layout(height=420, legend=dict(orientation="h", y=-0.25), margin=dict(t=90))
    return fig


# what a cost model's figure is, where the two models differ
MEASURE = {("latency_ns", "paper"): "latency of one image (64 ISAAC chips at peak rate, then the processor)",
           ("interval_ns", "paper"): "interval between images (64 ISAAC chips at peak rate, processor pipelined)",
           ("interval_ns", "isaac"): "interval between images (layers replicated onto the budget)",
           ("min_area_mm2", "paper"): "area (the paper's 64 ISAAC chips)"}


def cost_axis(objective: str, values, cost_model: str | None = None) -> tuple[str, float]:
    """An axis title naming what the cost is and the unit that fits `values`, and that unit's size."""
    unit, size = units.unit_for(values, objective)
    return f"{MEASURE.get((objective, cost_model), AXIS[objective])} ({unit})", size


def pareto(table: pd.DataFrame, front: pd.DataFrame, objective: str, *, selected: str | None,
           recommended: str | None, fault_rate: float, cost_model: str | None = None,
           fault_model: str = "sa1") -> go.Figure:
    """Accuracy against cost for all evaluated design points; front, selection and recommendation marked.
    Trained points not evaluated at this rate sit as ticks along the bottom, at their (known) cost.
    The cost axis is in the unit that fits its values; a front of one point still shows, as a marker."""
    faults = f"{pct(fault_rate)} {fault_model_label(fault_model)} faults"
    costed = table.dropna(subset=[objective])
    t, u = costed[costed.accuracy.notna()], costed[costed.accuracy.isna()]
    if costed.empty:
        return empty(f"no design point evaluated at {faults} yet")
    title, size = cost_axis(objective, costed[objective], cost_model)
    t, u = (d.assign(**{objective: d[objective] / size}) for d in (t, u))
    values = costed[objective][costed[objective] > 0]
    log = not values.empty and values.max() / values.min() > LOG_SPAN  # no point squeezed onto x = 0
    hover = {"label": True, "ci95": ":.2f", "worst": ":.2f", "n": True, objective: ":.4g", "network": False}
    fig = px.scatter(t, x=objective, y="accuracy", color="network", symbol="network", hover_name="label",
                     hover_data=hover, labels={**AXIS, objective: title},
                     color_discrete_map=NETWORK_COLORS, symbol_map=NETWORK_SYMBOLS,
                     title=f"accuracy vs {SHORT.get(objective, objective)} at {faults} "
                           f"({cost_model or 'cost'} model: front ranked by {AXIS[objective]})")
    if not u.empty:  # their accuracy is unknown, not low: a tick on the floor, said so in the legend and hover
        floor = float(t.accuracy.min()) - 3 if not t.empty else 0.0
        fig.add_trace(go.Scatter(x=u[objective], y=[floor] * len(u), mode="markers", hovertext=u["label"],
                                 marker=dict(symbol="line-ns-open", size=16, color="grey", line=dict(width=2)),
                                 name=f"not evaluated at {pct(fault_rate)} (cost only)",
                                 hovertemplate="%{hovertext}: not evaluated at this rate<extra></extra>"))
    f = front.sort_values(objective)
    fig.add_trace(go.Scatter(x=f[objective] / size, y=f["accuracy"], mode="lines+markers",
                             line=dict(color="black", dash="dot"), marker=dict(color="black", size=6, symbol="x"),
                             line_shape="hv", name="Pareto front", hoverinfo="skip"))
    for pid, name, style in ((selected, "selected", dict(symbol="circle-open", size=22, color="red", line=dict(width=3))),
                             (recommended, "recommended", dict(symbol="star", size=20, color="gold",
                                                                line=dict(color="black", width=1)))):
        hit = t[t.point_id == pid] if pid else t.iloc[0:0]
        if not hit.empty:
            fig.add_trace(go.Scatter(x=hit[objective], y=hit["accuracy"], mode="markers", marker=style, name=name,
                                     hovertext=hit["label"]))
    if log:
        fig.update_xaxes(type="log", title_text=f"{title}, log scale")
    fig.update_layout(height=420)
    return fig


def breakdown(rows: pd.DataFrame, what: str, title: str) -> go.Figure:
    """Energy or area by component, one stacked bar per design (the selected point and its neighbours)."""
    if rows.empty:
        return empty("no cost breakdown for these design points")
    unit, size = units.unit_for(rows.groupby("design").value.sum(), "uJ" if what == "energy" else "mm2")
    d = rows.assign(value=rows.value / size)
    label = f"{'energy per image' if what == 'energy' else 'area'} ({unit})"
    fig = px.bar(d, x="design", y="value", color="component", labels={"value": label, "design": "design point"},
                 title=title)
    fig.update_layout(height=400, barmode="stack", legend_title_text="component")
    return fig


def mapping_comparison(ev: pd.DataFrame, title: str) -> go.Figure:
    """1x1 layers on the processor vs on the crossbar (the paper's Fig. 7)."""
    if ev.empty:
        return empty("needs this point trained under both mappings")
    fig = px.line(ev, x="fault_rate", y="mean", color="mapping", error_y="ci95", markers=True,
                  labels={**AXIS, "mean": AXIS["accuracy"]}, title=title)
    fig.update_xaxes(tickformat=".0%")
    fig.update_layout(height=380)
    return fig


def fault_map(faulty: np.ndarray, title: str) -> go.Figure:
    """A layer's cells (or one tile of them): rows are inputs (in x k x k), columns are outputs; dark cells are stuck."""
    fig = px.imshow(faulty.astype(np.uint8), color_continuous_scale=[[0, "#f2f2f2"], [1, "#b2182b"]],
                    labels={"x": "column (output channel)", "y": "row (input x kernel position)", "color": "stuck"},
                    title=title)
    fig.update_coloraxes(showscale=False)
    fig.update_layout(height=460, margin=dict(t=90))
    return fig


def sensitivity(df: pd.DataFrame, title: str) -> go.Figure:
    """Accuracy drop when only one layer has faults."""
    if df.empty:
        return empty("run the sensitivity analysis to see this chart")
    fig = px.bar(df, x="layer", y="drop", hover_data={"accuracy": ":.2f", "weights": True},
                 labels={"drop": "accuracy drop (points)", "layer": "crossbar layer"}, title=title)
    fig.update_layout(height=380, xaxis_tickangle=-45)
    return fig


def subtitle(fig: go.Figure, text: str) -> go.Figure:
    """The figure with `text` under its title (which protocol its numbers come from)."""
    title = fig.layout.title.text or ""
    fig.update_layout(title_text=f"{title}<br><sup>{text}</sup>" if title else text)
    fig.update_layout(margin=dict(t=max(90, (fig.layout.margin.t or 0))))  # two lines of title, unclipped
    return fig


def calibration_curve(curve: pd.DataFrame, title: str) -> go.Figure:
    """Accuracy under faults against the unlabeled images each chip calibrates BN on: mean with its 95% CI,
    and the spread across chips (worst to best) as a band; N = 0 is the paper's protocol."""
    if curve.empty:
        return empty("no calibration sweep for this design point yet")
    d = curve.assign(N=curve.calib_images.map(lambda n: "0 (paper)" if n == 0 else str(n)))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=d.N, y=d.best, mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=d.N, y=d.worst, mode="lines", line=dict(width=0), fill="tonexty",
                             fillcolor="rgba(31,119,180,0.2)", name="chips: worst to best"))
    fig.add_trace(go.Scatter(x=d.N, y=d["mean"], mode="lines+markers", error_y=dict(type="data", array=d.ci95),
                             name="mean (95% CI)", line=dict(color="#1f77b4"),
                             customdata=np.stack([d["std"], d.n], axis=1),
                             hovertemplate="N=%{x}: %{y:.2f}% (chip std %{customdata[0]:.2f}, %{customdata[1]} chips)"))
    fig.update_xaxes(type="category", title="calibration images per chip (N)")
    fig.update_yaxes(title=AXIS["accuracy"])
    fig.update_layout(title=title, height=400, legend=dict(orientation="h", y=-0.2))
    return fig


def yield_curve(curve: pd.DataFrame, title: str, target: float | None = None) -> go.Figure:
    """Chip yield (share of chips at or above an accuracy target) against the target, in percent, with its
    Clopper-Pearson interval as a band (dse.view.yields.yield_curve); the chosen target as a dashed line."""
    if curve.empty:
        return empty("no evaluation of this design point at this fault rate and BN protocol yet")
    d = curve.assign(y=100 * curve["yield"], lo=100 * curve["low"], hi=100 * curve["high"])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=d.target, y=d.hi, mode="lines", line=dict(width=0), showlegend=False,
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=d.target, y=d.lo, mode="lines", line=dict(width=0), fill="tonexty",
                             fillcolor="rgba(31,119,180,0.2)", name="95% Clopper-Pearson interval", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=d.target, y=d.y, mode="lines", line=dict(color="#1f77b4"), name="yield",
                             customdata=np.stack([d.k, d.n, d.lo, d.hi], axis=1),
                             hovertemplate="target %{x:.2f}%: yield %{y:.1f}% (%{customdata[0]} of %{customdata[1]} "
                                           "chips; interval %{customdata[2]:.1f}-%{customdata[3]:.1f}%)<extra></extra>"))
    if target is not None:
        fig.add_vline(x=float(target), line=dict(color="red", dash="dash"), annotation_text=f"target {target:g}%")
    fig.update_xaxes(title="accuracy target (%)")
    fig.update_yaxes(title="chip yield (%)", range=[-2, 102])
    fig.update_layout(title=title, height=400, legend=dict(orientation="h", y=-0.2))
    return fig
