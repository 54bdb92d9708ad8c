"""Calibration images: how many unlabeled images a chip needs to re-estimate its BN statistics
(`dse calib-curve`), at the sidebar's fault rate."""
from __future__ import annotations

import streamlit as st

from dse.view import charts, tables
from dse.view.pages import cached
from dse.view.state import PageState


def render(state: PageState) -> None:
    p, f = state.point, state.fault_rate
    curve, fig = cached.calibration_figure(state, f"{state.arch}, p={p.dropconnect:g} at {charts.pct(f)} SA1 faults: "
                                                  "accuracy vs calibration images per chip")
    if curve.empty or (curve.calib_images > 0).sum() == 0:
        st.info(f"No per-chip calibration sweep for this design point at {charts.pct(f)} yet. Run it with "
                f"`python -m dse calib-curve CKPT --fault-rate {f:g} --images 32,100,500,2000`; N = 0 is the "
                "paper's protocol.")
        return
    st.plotly_chart(fig, key="calib-curve")
    st.caption(f"The same {int(curve.n.min())} crossbars for every N; N = 0 is the paper's Algorithm 1 statistics. "
               "Each chip runs N unlabeled training images through itself once, at deployment, with its weights "
               "frozen; only BN statistics (in the digital periphery) change.")
    st.dataframe(tables.calibration(curve), hide_index=True)
