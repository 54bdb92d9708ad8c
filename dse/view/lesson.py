"""Lesson mode (`?lesson=1`): four steps on one design point for a class, each a picture and one sentence, from
the shipped results alone (no CIFAR-10 needed): a layer's stuck cells, accuracy against fault rate without
drop-connect, with drop-connect, and with per-chip BN calibration. The paper's protocol is the lesson's
baseline; per-chip calibration is its last step. Torch only for the first picture's layer shapes (meta device).
No streamlit: the page lays the steps out."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dse.domain.bn import BN, DEFAULT_CALIB_IMAGES, Chip, Paper
from dse.domain.faultspec import fault_model_label
from dse.domain.point import DesignPoint
from dse.results.store import Store
from dse.view import explore, teaching

PLAIN = DesignPoint("resnet20", 1.0, 1, "default", 0.0)  # the lesson's network, trained without drop-connect
TRAINED = DesignPoint("resnet20", 1.0, 1, "default", 0.3)  # the same, trained with drop-connect at p = 0.3
FONT = 22  # large enough to read from the back of a room
COLORS = {"no drop-connect": "#c44e52", "drop-connect p = 0.3": "#4c72b0"}
LESSON_FAULTS = ("sa1", "sa0")  # a tile's cells under either; the curves are the shipped (SA1) evaluations


@dataclass(frozen=True)
class Step:
    title: str
    figure: go.Figure
    sentence: str


def lesson_fault_model(value) -> str:
    """The fault model a lesson link asks for (`&faults=sa0`); SA1, the paper's, otherwise."""
    v = str(value or "sa1").lower()
    return v if v in LESSON_FAULTS else "sa1"


def pick_layer(shapes: dict) -> str:
    """The layer whose weight matrix is closest to square (among those of 1,000 cells or more): a picture that
    reads at a glance, drawn as large as the layer really is."""
    sizes = {k: teaching.matrix_size(s) for k, s in shapes.items()}
    big = {k: v for k, v in sizes.items() if v[0] * v[1] >= 1000} or sizes
    return min(big, key=lambda k: (abs(math.log(big[k][0] / big[k][1])), list(big).index(k)))


def big(fig: go.Figure, height: int = 520) -> go.Figure:
    fig.update_layout(font=dict(size=FONT), title_font=dict(size=FONT + 4), height=height,
                      margin=dict(t=90, l=80, r=30, b=80), legend=dict(font=dict(size=FONT)))
    return fig


def inputs_title(shape: tuple, rows: int) -> str:
    return (f"{rows} inputs ({shape[1]} channels x {shape[2]}x{shape[3]} kernel)" if len(shape) == 4
            else f"{rows} inputs")


def tile_step(shapes: dict, fault_model: str, rate: float) -> Step:
    layer = pick_layer(shapes)
    fmap = teaching.fault_map(shapes, layer, 0, rate)
    rows, cols = fmap.shape
    # drawn lying down (outputs as rows) so a tall, narrow layer fills a wide screen; every cell at its place
    fig = go.Figure(go.Heatmap(z=fmap.T.astype(np.uint8), colorscale=[[0, "#e8e8e8"], [1, "#b2182b"]],
                               showscale=False, hoverinfo="skip", xgap=1, ygap=1))
    fig.update_yaxes(scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False,
                     title=f"{cols} outputs", autorange="reversed")
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, title=inputs_title(shapes[layer], rows))
    fig.update_layout(plot_bgcolor="white")
    fig.update_layout(title=f"{fault_model_label(fault_model)}: one chip's stuck cells in layer {layer}")
    sentence = (f"Each red square is a stuck cell: on this chip {int(fmap.sum())} of the {rows * cols:,} cells of one "
                f"layer ({rows}x{cols}) are stuck at a fault rate of {100 * rate:g}%. "
                f"{teaching.stuck_reads(fault_model)}")
    return Step("1. A chip's stuck cells", big(fig, 620), sentence)


def _curve(store: Store, point: DesignPoint, bn: BN) -> pd.DataFrame:
    cv = explore.curves(store, point, fault=explore.SA1, bn=bn)
    return cv[np.isclose(cv.dropconnect, point.dropconnect)] if not cv.empty else cv


def _lines(series: dict[str, pd.DataFrame], title: str) -> go.Figure:
    fig = go.Figure()
    for name, cv in series.items():
        if cv.empty:
            continue
        dash = "dot" if "per-chip" in name else "solid"
        color = COLORS["drop-connect p = 0.3" if "p = 0.3" in name else "no drop-connect"]
        fig.add_trace(go.Scatter(x=100 * cv.fault_rate, y=cv["mean"], mode="lines+markers", name=name,
                                 line=dict(color=color, width=5, dash=dash), marker=dict(size=14)))
    fig.update_layout(title=title, xaxis_title="stuck cells (%)", yaxis_title="test accuracy (%)",
                      yaxis_range=[0, 100])
    big(fig, 600)
    fig.update_layout(legend=dict(orientation="h", y=-0.3, font=dict(size=FONT)), margin=dict(b=150))
    return fig


def _at(cv: pd.DataFrame, rate: float) -> float | None:
    hit = cv[np.isclose(cv.fault_rate, rate)] if not cv.empty else cv
    return None if hit.empty else float(hit["mean"].iloc[0])


def worst_rate(*curves: pd.DataFrame) -> float | None:
    """The highest fault rate every curve was evaluated at (the lesson's numbers are read there)."""
    sets = [set(np.round(cv.fault_rate, 6)) for cv in curves if not cv.empty]
    common = set.intersection(*sets) if sets and len(sets) == len(curves) else set()
    common.discard(0.0)
    return max(common) if common else None


def curve_steps(store: Store) -> list[Step]:
    """Steps 2 to 4: accuracy against fault rate without drop-connect, with it, and with per-chip calibration."""
    plain, trained = _curve(store, PLAIN, Paper()), _curve(store, TRAINED, Paper())
    chip = Chip(DEFAULT_CALIB_IMAGES)
    plain_chip, trained_chip = _curve(store, PLAIN, chip), _curve(store, TRAINED, chip)
    f = worst_rate(plain, trained, plain_chip, trained_chip) or worst_rate(plain, trained)
    if f is None:
        return [Step(t, big(go.Figure()), "The shipped results have no evaluations of ResNet20 1x to show here.")
                for t in ("2. Without drop-connect", "3. With drop-connect", "4. With per-chip calibration")]
    pct, n = f"{100 * f:g}%", int(plain[np.isclose(plain.fault_rate, f)].n.iloc[0])
    a0, a, b = _at(plain, 0.0), _at(plain, f), _at(trained, f)
    s2 = (f"Without drop-connect, ResNet20 falls from {a0:.1f}% with no stuck cells to {a:.1f}% when {pct} of its "
          f"cells are stuck (mean of {n} simulated chips, the paper's protocol).")
    s3 = (f"Trained with drop-connect (p = 0.3), the same network keeps {b:.1f}% at {pct} stuck cells instead of "
          f"{a:.1f}%.")
    ca, cb = _at(plain_chip, f), _at(trained_chip, f)
    s4 = ("The shipped results have no per-chip calibration at this rate." if ca is None or cb is None else
          f"If each chip re-estimates its BatchNorm statistics from {DEFAULT_CALIB_IMAGES} unlabeled images, both "
          f"recover: {ca:.1f}% without drop-connect and {cb:.1f}% with it at {pct} stuck cells.")
    paper = "paper's protocol (BN: Algorithm 1)"
    return [Step("2. Without drop-connect", _lines({"no drop-connect": plain}, f"ResNet20, {paper}"), s2),
            Step("3. With drop-connect", _lines({"no drop-connect": plain, "drop-connect p = 0.3": trained},
                                                f"ResNet20, {paper}"), s3),
            Step("4. With per-chip calibration",
                 _lines({"no drop-connect": plain, "drop-connect p = 0.3": trained,
                         "no drop-connect, per-chip BN": plain_chip, "drop-connect p = 0.3, per-chip BN": trained_chip},
                        "ResNet20: the paper's protocol (solid) and per-chip BN (dotted)"), s4)]
