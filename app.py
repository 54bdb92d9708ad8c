"""rram-dse: the design-space explorer. `streamlit run app.py`

The page's frame: its settings, the sidebar (one PageState a run), the header over every section, and the
section bar. Only the open section is drawn (each is a module of dse/view/pages/ with a `render(state)`), so
a first render reads the results store alone and imports no torch; Teaching and Spatial defects import it when
opened. The page never trains or evaluates in its own thread: dse.run.jobs runs that in worker processes.
"""
from __future__ import annotations

import time

import streamlit as st

from dse.domain.errors import DSEError
from dse.view.pages import (cached, calibration, faults, header, jobs, lesson, mapping, pareto, results, sidebar,
                            spatial, teaching, yields)

st.set_page_config(page_title="rram-dse: RRAM fault-tolerance explorer", layout="wide")

SECTIONS = {  # the section bar's labels (also `?section=` in a link) and what draws each
    "Pareto & recommendation": pareto.render,
    "Fault tolerance": faults.render,
    "1x1 mapping (Fig. 7)": mapping.render,
    "Calibration images": calibration.render,
    "Teaching": teaching.render,
    "Jobs": jobs.render,
    "Results table": results.render,
    "Yield": yields.render,
    "Spatial defects": spatial.render,
}


def main() -> None:
    t0 = time.perf_counter()
    store, report = cached.store_and_report()
    if st.query_params.get("lesson") == "1":
        lesson.render()
        return
    state = sidebar.render()
    cached.refresh_version()
    st.title("RRAM fault-tolerance design-space explorer")
    st.caption("Drop-connect training against stuck-at crossbar faults (Xiang et al.): accuracy over many "
               "simulated chips against ISAAC latency and energy.")
    for problem in report["problems"]:
        st.warning(problem)
    header.render(state)
    # a tab bar that reruns on a switch and reports which tab is open: only that one is drawn
    tabs = st.tabs(list(SECTIONS), key="section", on_change="rerun", bind="query-params")
    for tab, render in zip(tabs, SECTIONS.values()):
        if tab.open:
            with tab:
                try:
                    render(state)
                except DSEError as e:  # a bad value typed in a section: one line there, the rest of the page stands
                    st.error(str(e))
    st.caption(f"Rendered in {time.perf_counter() - t0:.2f} s from {store.path}")


try:
    main()
except DSEError as e:
    st.error(str(e))
