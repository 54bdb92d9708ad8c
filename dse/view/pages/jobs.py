"""Jobs: every background job, live, with Cancel and Retry; when one finishes the whole page reruns to show
its results."""
from __future__ import annotations

import streamlit as st

from dse.run import jobs
from dse.view import joblist
from dse.view.pages import cached
from dse.view.state import PageState


def render(state: PageState) -> None:
    job_panel()


@st.fragment(run_every=2)
def job_panel() -> None:
    store = cached.store()
    df = store.jobs()
    active = df[df.state.isin(["queued", "running"])]
    seen = st.session_state.setdefault("active_jobs", set())
    finished = seen - set(active.job_id)
    st.session_state.active_jobs = set(active.job_id)
    if finished:
        st.rerun(scope="app")
    if df.empty:
        st.caption("No jobs yet. Train or evaluate a missing design point to start one.")
        return
    for r in df.head(12).itertuples():
        cols = st.columns([3, 4, 1])
        cols[0].markdown(f"**{joblist.job_title(r)}**  \n`{r.state}` · {r.source}")
        if r.state in ("queued", "running"):
            cols[1].progress(float(r.progress or 0), text=joblist.job_status(r))
            if cols[2].button("Cancel", key=f"cancel-{r.job_id}"):
                jobs.cancel(store, r.job_id)
                st.rerun()  # the whole page: the point's status changes too
        elif r.state in ("failed", "cancelled"):
            (cols[1].error if r.state == "failed" else cols[1].caption)(r.error or r.message or r.state)
            if cols[2].button("Retry", key=f"retry-{r.job_id}"):
                jobs.retry(store, r.job_id)
                st.rerun()  # the whole page: the point's status changes too
        else:
            cols[1].caption(r.message or r.state)
