"""Spatial defects, for a teacher: one tile's defects under the sidebar's fault model and rate, blind and
remapped, and an evaluation of the point under it; then the shipped report's accuracy and a lifetime curve.
Drawn when the section opens (the tile maps import torch, so only then)."""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from dse.domain.faultspec import (FAULT_PARAMS, MAX_SPARES, WEIGHT_BITS, FaultSpec, fault_model_label,
                                  fault_model_name, parse_fault_model)
from dse.run import jobs
from dse.view import charts, explore, spatial, teaching
from dse.view.pages import cached
from dse.view.state import PageState


def render(state: PageState) -> None:
    rate = state.fault_rate
    st.caption(f"Fault model, rate and BN protocol come from the sidebar: {state.results.fault_label} at "
               f"{charts.pct(rate)}, BN: {state.results.bn_label}.")
    fault = tile(state)  # this section's faults
    s = cached.point_status(state)
    if s.trained and state.can_run and st.button(
            f"Evaluate this design point under {fault.name} at {charts.pct(rate)} ({state.instances} chips, "
            f"BN {state.bn.name}; background job)", key="sp_eval"):
        started = jobs.submit(cached.store(), state.evaluate_task(s.checkpoint, replace(state.spec, fault=fault)))[1]
        st.toast("Evaluation started; see Jobs" if started else "Already evaluated")
    stored = explore.curves(cached.store(), state.point, fault=fault, bn=state.bn)
    if not stored.empty:
        st.plotly_chart(charts.subtitle(charts.accuracy_vs_fault_rate(stored, f"Evaluated in the store: accuracy "
                                                                              f"under {fault.name}"),
                                        f"BN: {state.results.bn_label} · {explore.sample_label(stored)} per point"),
                        key="sp_stored")
    results(state, teaching.base_model(state.fault.name))


def tile(state: PageState) -> FaultSpec:
    """One tile of one chip under the sidebar's fault model with this section's parameter and remapping, drawn;
    returns those faults at the sidebar's rate."""
    spec, rate = state.fault, state.fault_rate
    arch = cached.architecture(state.point)
    shapes = cached.layer_shapes(arch)
    c1, c2, c3 = st.columns([1, 1, 1])
    param = None
    if spec.model in FAULT_PARAMS:
        what, default, lo, hi = FAULT_PARAMS[spec.model]
        param = c1.slider(what, lo, min(hi, 16.0), default, key="sp_param", persist_state="session")
    remap = c2.toggle("Remap to the chip's known map", key="sp_remap", persist_state="session")
    spares = c2.number_input("Spare columns per tile", 0, MAX_SPARES, 0, key="sp_spares", disabled=not remap,
                             persist_state="session")
    layer = c3.selectbox("Crossbar layer", list(shapes), key="sp_layer")
    instance = int(c3.number_input("Chip (crossbar instance)", 0, 999, 0, key="sp_instance", persist_state="session"))
    bits = spec.bits_per_cell if spec.bits_per_cell != WEIGHT_BITS else None
    name = fault_model_name(spec.model, param, remap, int(spares) if remap else 0, bits)
    maps = cached.tile_maps(arch, layer, name, rate, instance)
    m1, m2 = st.columns(2)
    m1.plotly_chart(charts.fault_map(maps["stuck"], f"{fault_model_label(name)}: one tile of {layer}, "
                                                    f"chip {instance}, at {charts.pct(rate)} (physical)"), key="sp_map")
    if remap:
        m2.plotly_chart(charts.fault_map(maps["stuck_remapped"], "as the remapped weights see them"), key="sp_remapped")
    occ = maps["occupied"]
    st.caption(f"Cells holding a weight: {occ.sum():,} of {occ.size:,}; stuck among them as placed: "
               f"{(maps['stuck'][:, :occ.shape[1]] & occ).sum():,}. {teaching.stuck_reads(name)} The remapping "
               "moves the least important weights (of a freshly initialised model here) onto stuck cells.")
    return parse_fault_model(name, rate)


def results(state: PageState, model: str) -> None:
    """The spatial-defects results' accuracy for the point under `model` (from the store), and its lifetime
    curve."""
    report = spatial.report(cached.store().evaluations(), point_ids=[state.point.point_id], bn=state.bn.name)
    point = state.label
    rows = spatial.report_rows(report)
    if rows.empty or point not in set(rows.point) or model not in set(rows[rows.point == point].fault_model):
        st.info(f"No spatial-defects results for {point} under {fault_model_label(model)}; "
                "`python -m dse spatial-report CKPT --data PATH` makes them.")
        return
    st.plotly_chart(charts.subtitle(spatial.accuracy_figure(report, point, [model]), spatial.sample_label(report)),
                    key="sp_accuracy")
    note = spatial.protocol_note(report, bn=state.bn)
    if note:
        st.caption(note)
    st.markdown("**Lifetime** (accuracy interpolated between the evaluated rates; `python -m dse lifetime` "
                "evaluates each month)")
    l1, l2, l3 = st.columns([2, 1, 1])
    text = l1.text_input("Fault-rate trajectory f(t)", "weibull:fmax=0.3,eta=60,beta=2", key="sp_traj",
                         persist_state="session")
    target = l2.number_input("Accuracy target (%)", 0.0, 100.0, 75.0, key="sp_target", persist_state="session")
    layout = l3.radio("Layout", sorted(set(rows[rows.point == point].layout)), key="sp_layout")
    trajectory = spatial.parse_trajectory(text)  # a bad one is a DSEError: one line on the page
    months = list(range(0, 121, 6))
    curve = spatial.lifetime_curve(report, point, model, layout, trajectory, months)
    when = spatial.months_until(list(curve.month), list(curve["mean"]), target)
    st.plotly_chart(spatial.lifetime_figure(curve, target, f"{point}, {model}, {layout}: "
                                            + (f"below {target:g}% after {when:.0f} months" if when is not None
                                               else f"above {target:g}% for {months[-1]} months")),
                    key="sp_lifetime")
    if curve.extrapolated.any():
        st.caption("Beyond the largest evaluated rate the curve holds its last value: evaluate higher rates to see "
                   "further.")
