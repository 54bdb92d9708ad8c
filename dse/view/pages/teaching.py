"""Teaching: one chip's stuck cells on one crossbar layer under the sidebar's fault model and rate, drawn as
large as the layer is, then the per-layer sensitivity. Drawn when the section opens (it imports torch for the
layer shapes, so only then)."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dse.run import jobs
from dse.run.tasks import task_id
from dse.view import charts, teaching
from dse.view.pages import cached
from dse.view.state import PageState


def render(state: PageState) -> None:
    f, model = state.fault_rate, state.fault.name
    st.caption(f"Fault model and rate from the sidebar: {state.results.fault_label} at {charts.pct(f)}. "
               "For a class, `?lesson=1` walks through four pictures without any controls.")
    arch = cached.architecture(state.point)
    shapes = cached.layer_shapes(arch)
    c1, c2 = st.columns([1, 2])
    layer = c1.selectbox("Crossbar layer", list(shapes), key="teach_layer")
    instance = int(c1.number_input("Chip (crossbar instance)", 0, 999, 0, key="teach_instance",
                                   persist_state="session"))
    fmap, figure = cached.fault_map_figure(arch, layer, model, f, instance)
    c1.markdown(f"Layer `{layer}`: weights {shapes[layer]}; the map shows {fmap.shape[0]}x{fmap.shape[1]} cells, "
                f"**{fmap.sum()}** stuck ({fmap.mean():.1%}). {teaching.stuck_reads(model)} "
                "Every chip draws a new map; drop-connect training makes the network indifferent to which.")
    if f == 0:
        c1.info("No faults at f = 0%: choose a fault rate in the sidebar to see stuck cells.")
    c2.plotly_chart(figure, key="faultmap")
    sensitivity(state)


def sensitivity(state: PageState) -> None:
    """Per-layer fault sensitivity of the selected point: a background job, drawn once it is done."""
    st.markdown("**Per-layer fault sensitivity**: accuracy drop when only one layer has faults.")
    s = cached.point_status(state)
    if not s.trained:
        st.caption("Train this design point first.")
        return
    if not state.can_run:
        st.caption("Give a CIFAR-10 data path under *Training and data* to run it.")
        return
    rate = max(state.fault_rate, 0.01)
    task = state.sensitivity_task(s.checkpoint, rate)
    job = cached.store().job(task_id(task))
    if job and job["state"] == "done" and job["result"]:
        st.plotly_chart(charts.sensitivity(pd.DataFrame(json.loads(job["result"])),
                                           f"fault rate {charts.pct(rate)}, 3 crossbars, 2,000 test images"), key="sens")
    elif st.button("Run sensitivity analysis (background job)", key="sens_run"):
        jobs.submit(cached.store(), task)
        st.toast("Sensitivity analysis started; see Jobs")
