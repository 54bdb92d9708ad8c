"""The page's cached reads of the results store, keyed by the page's state (its `results` and `cost` specs)
and the store's version, so a landed result refreshes them without a restart. Each public function takes the
PageState; the cached function under it takes only what its answer depends on."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

from dse.domain.point import DesignPoint
from dse.results.store import Store
from dse.view import charts, explore, spatial, teaching, yields
from dse.view.state import CostSpec, PageState, ResultsSpec


def runs_dir() -> Path:
    """Where the page's own work goes (trained checkpoints, the default store): $DSE_RUNS, else ./runs."""
    return Path(os.environ.get("DSE_RUNS", "runs"))


@st.cache_resource(show_spinner="Opening the results store and reading the shipped checkpoints...")
def store_and_report() -> tuple[Store, dict]:
    """One store handle per server process; filled from the checkpoint folders on first start."""
    return explore.open_results(os.environ.get("DSE_STORE", runs_dir() / "results.sqlite"))


def store() -> Store:
    return store_and_report()[0]


def refresh_version() -> None:
    """Read the store's version once a run (app.py); a result that lands refreshes every cache below."""
    st.session_state["store_version"] = store().version()


def version() -> str:
    """Changes whenever a result lands: part of every cache key below (read once a run, refresh_version)."""
    return st.session_state.get("store_version") or store().version()


def design_table(state: PageState) -> pd.DataFrame:
    return _design_table(store(), version(), state.results, state.cost)


@st.cache_data(ttl=600, show_spinner=False)
def _design_table(_store: Store, version: str, results: ResultsSpec, cost: CostSpec) -> pd.DataFrame:
    return explore.design_table(_store, results.fault, cost.model, bn=results.bn, hardware=cost.knobs,
                                processor=cost.processor)


def point_status(state: PageState) -> explore.PointStatus:
    """The selected point's row in the design table: trained, evaluated, its checkpoint."""
    return explore.status(design_table(state), state.point)


def point_cost(point: DesignPoint, cost: CostSpec) -> dict:
    """A point's totals: from the store at the default knobs (no torch), else computed once and cached."""
    return _point_cost(store(), point, cost)


@st.cache_data(show_spinner=False)
def _point_cost(_store: Store, point: DesignPoint, cost: CostSpec) -> dict:
    return explore.point_cost(_store, point, cost.model, cost.knobs, cost.processor)


# Building plotly figures is most of a page's server time, and they are only read afterwards: each is built
# once per store version and selection and shared by every session (cache_resource: no copy per session).
def pareto_figure(state: PageState, objective: str, recommended: str | None):
    return _pareto_figure(store(), version(), state.results, state.cost, objective,
                          marked=(state.point.point_id, recommended))


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def _pareto_figure(_store: Store, version: str, results: ResultsSpec, cost: CostSpec, objective: str, *,
                   marked: tuple[str, str | None]):
    """marked: (the selected point's id, the recommended one's or None)."""
    table = _design_table(_store, version, results, cost)
    fig = charts.pareto(table, explore.fronts(table)[objective], objective, selected=marked[0],
                        recommended=marked[1], fault_rate=results.fault_rate, cost_model=cost.model,
                        fault_model=results.fault.name)
    return charts.subtitle(fig, f"BN: {results.bn_label} · {explore.sample_label(table)} per point")


def breakdown_figures(state: PageState) -> tuple:
    """(energy, area) by component for the selected point and its neighbouring widths, as stacked bars."""
    return _breakdown_figures(store(), version(), state.point, state.cost, state.results, state.label)


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def _breakdown_figures(_store: Store, version: str, point: DesignPoint, cost: CostSpec, results: ResultsSpec,
                       label: str) -> tuple:
    costs = {}
    for q in explore.neighbours(_design_table(_store, version, results, cost), point):
        selected = abs(q.width - point.width) < 1e-6
        # neighbours from the store only (no torch on a first render), unless knobs make costs computed anyway
        t = _point_cost(_store, q, cost) if selected or cost.computed else explore.stored_cost(_store, q, cost.model)
        if t is not None:
            costs[f"{q.width:g}x" + (" (selected)" if selected else "")] = t
    return tuple(charts.breakdown(explore.breakdown_rows(costs, what), what,
                                  f"{label}: {what} by component ({cost.model} cost model)")
                 for what in ("energy", "area"))


def curve_figures(state: PageState) -> tuple:
    """(accuracy against fault rate, best drop-connect rate per fault rate, their evaluations)."""
    return _curve_figures(store(), version(), state.point, state.results, state.arch)


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def _curve_figures(_store: Store, version: str, point: DesignPoint, results: ResultsSpec, arch: str) -> tuple:
    cv = explore.curves(_store, point, fault=results.fault, bn=results.bn)
    how = f"BN: {results.bn_label} · {explore.sample_label(cv)} per point"
    model = results.fault_label
    return (charts.subtitle(charts.accuracy_vs_fault_rate(cv, f"{arch}: accuracy vs {model} fault rate"), how),
            charts.subtitle(charts.dropconnect_heatmap(cv, f"{arch}: best drop-connect rate per {model} fault rate"),
                            how + " · best p marked where two or more were evaluated"), cv)


def mapping_figure(state: PageState):
    title = f"{state.arch}, p={state.point.dropconnect:g}: 1x1 layers on the processor vs on the crossbar"
    return _mapping_figure(store(), version(), state.point, state.results, title)


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def _mapping_figure(_store: Store, version: str, point: DesignPoint, results: ResultsSpec, title: str):
    ev = explore.mapping_comparison(_store, point, fault=results.fault, bn=results.bn)
    return charts.subtitle(charts.mapping_comparison(ev, title),
                           f"BN: {results.bn_label} · {explore.sample_label(ev)} per point")


def calibration_figure(state: PageState, title: str) -> tuple:
    """(the images-per-chip sweep at the sidebar's rate, its figure)."""
    return _calibration_figure(store(), version(), state.point, state.fault_rate, title)


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def _calibration_figure(_store: Store, version: str, point: DesignPoint, fault_rate: float, title: str) -> tuple:
    curve = explore.calibration_curve(_store, point, fault_rate)
    fig = charts.calibration_curve(curve, title)
    if curve.empty:
        return curve, fig
    return curve, charts.subtitle(fig, f"BN: paper at N = 0, per chip above · the same {explore.sample_label(curve)}")


def yield_table(state: PageState, target: float) -> pd.DataFrame:
    """The design table with each point's chip yield at `target` (dse.view.yields)."""
    return _yield_table(store(), version(), state.results, state.cost, target)


@st.cache_data(ttl=600, show_spinner=False)
def _yield_table(_store: Store, version: str, results: ResultsSpec, cost: CostSpec, target: float) -> pd.DataFrame:
    table = _design_table(_store, version, results, cost)
    return yields.with_yields(table, _store.evaluations(), results.fault, target, bn=results.bn)


def yield_figure(state: PageState, target: float, title: str) -> tuple:
    return _yield_figure(store(), version(), state.point, state.results, target, title)


@st.cache_resource(max_entries=64, ttl=600, show_spinner=False)
def _yield_figure(_store: Store, version: str, point: DesignPoint, results: ResultsSpec, target: float,
                  title: str) -> tuple:
    r = results
    curve = yields.yield_curve(_store.evaluations(), point.point_id, r.fault, bn=r.bn)
    fig = charts.yield_curve(curve, title, target)
    row = yields.evaluation(_store.evaluations(), point.point_id, r.fault, bn=r.bn)
    sample = f" · {int(row['n'])} chips × {int(row['test_images']):,} images" if row else ""
    return curve, charts.subtitle(fig, f"BN: {r.bn_label}{sample}")


def evaluations_csv() -> bytes:
    return _evaluations_csv(store(), version())


@st.cache_data(ttl=600, show_spinner=False)
def _evaluations_csv(_store: Store, version: str) -> bytes:
    return _store.evaluations().to_csv(index=False).encode()


def architecture(point: DesignPoint) -> DesignPoint:
    """The point without its drop-connect rate: what layer shapes and tile maps depend on."""
    return replace(point, dropconnect=0.0)


@st.cache_data(show_spinner=False)
def layer_shapes(arch: DesignPoint) -> dict:
    """The crossbar layers' weight shapes (imports torch: a model built on the meta device)."""
    return teaching.layer_shapes(arch.network, arch.width, arch.shortcut_kernel, arch.mapping)


@st.cache_resource(max_entries=64, show_spinner=False)
def fault_map_figure(arch: DesignPoint, layer: str, fault_model: str, rate: float, instance: int) -> tuple:
    """(the stuck cells of `layer` on chip `instance`, their figure) for the Teaching section (imports torch)."""
    shapes = layer_shapes(arch)
    if teaching.base_model(fault_model) in teaching.PER_WEIGHT:
        fmap = teaching.fault_map(shapes, layer, instance, rate)
    else:  # lines and clusters live on the physical tiles
        fmap = tile_maps(arch, layer, fault_model, rate, instance)["stuck"]
    return fmap, charts.fault_map(fmap, teaching.map_title(fault_model, layer, shapes[layer], fmap, rate))


@st.cache_data(show_spinner=False)
def tile_maps(arch: DesignPoint, layer: str, fault_model: str, rate: float, instance: int) -> dict:
    """One tile of one chip under `fault_model` (imports torch)."""
    return spatial.tile_maps(arch.network, arch.width, arch.shortcut_kernel, arch.mapping, layer,
                             fault_model=fault_model, rate=rate, instance=instance)
