"""Fault tolerance: accuracy against fault rate per drop-connect rate, and the best rate per fault rate (the
paper's Figs. 3-6), for the selected architecture under the sidebar's fault model and BN protocol."""
from __future__ import annotations

import streamlit as st

from dse.view import explore
from dse.view.pages import cached
from dse.view.state import PageState


def render(state: PageState) -> None:
    accuracy, heatmap, cv = cached.curve_figures(state)
    c1, c2 = st.columns(2)
    c1.plotly_chart(accuracy, key="curves")
    c2.plotly_chart(heatmap, key="heatmap")
    row = cached.point_status(state).row or {}
    note = explore.fault_free_note(cv, state.point, row.get("fault_free_accuracy"), bn=state.bn)
    if note:
        st.caption(note)
