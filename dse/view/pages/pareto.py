"""Pareto & recommendation: accuracy against each cost with its front, the cheapest design meeting a target,
and energy and area by component for the selected point beside its neighbouring widths."""
from __future__ import annotations

import streamlit as st

from dse.view import charts, explore, units
from dse.view.pages import cached
from dse.view.state import PageState


def render(state: PageState) -> None:
    fronts(state)
    breakdown(state)


def fronts(state: PageState) -> None:
    f, table = state.fault_rate, cached.design_table(state)
    c1, c2 = st.columns([1, 3])
    context = (f, state.bn)  # a target set for other numbers starts over from their median
    if st.session_state.get("target_context") != context:
        st.session_state.target_context = context
        st.session_state.target = explore.default_target(table, st.session_state.get("target", 85.0))
    target = c1.number_input(f"Accuracy target at {charts.pct(f)} faults (%)", 0.0, 100.0, step=0.5, key="target",
                             persist_state="session")
    objective = c1.radio("Front and cheapest by", list(explore.OBJECTIVES), key="objective",
                         format_func=lambda o: charts.AXIS[o], persist_state="session")
    rec = explore.recommend(table, target, objective)
    with c1:
        if rec:
            st.success(f"**{rec['label']}**: {rec['accuracy']:.2f}% at {charts.pct(f)} faults, "
                       f"{units.fmt_like(rec[objective], table[objective].dropna(), objective)} "
                       f"({charts.SHORT.get(objective, objective)}, in the chart's unit)")
        else:
            st.warning(f"No evaluated design reaches {target:.1f}% at {charts.pct(f)} faults.")
        unfit = int((table.fits == False).sum()) if state.cost.model == "isaac" and "fits" in table else 0  # noqa: E712
        if unfit:
            st.caption(f"{unfit} design point(s) do not fit on the chips given and are left out.")
    with c2:
        for obj in dict.fromkeys((objective, "energy_uj" if objective != "energy_uj" else "interval_ns")):
            fig = cached.pareto_figure(state, obj, rec["point_id"] if rec else None)
            st.plotly_chart(fig, key=f"pareto-{obj}")
            st.download_button("Download this chart (HTML)", data=lambda fig=fig: fig.to_html(include_plotlyjs=True),
                               file_name=f"pareto-{obj}-f{f:g}.html", mime="text/html", on_click="ignore",
                               key=f"dl-{obj}")


def breakdown(state: PageState) -> None:
    """Energy and area by component for the selected point and its neighbouring widths."""
    for col, what, fig in zip(st.columns(2), ("energy", "area"), cached.breakdown_figures(state)):
        col.plotly_chart(fig, key=f"breakdown-{what}")
