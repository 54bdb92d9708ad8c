"""Above every section: the selected design point on its chip (accuracy, cost cards in their groups, status),
and what can be started for it: Train or Evaluate, or its running job, live."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dse.domain.bn import Chip
from dse.domain.stats import CHANCE_ACCURACY, at_chance
from dse.run import jobs
from dse.view import cards, charts, explore, joblist, units
from dse.view.pages import cached
from dse.view.state import PageState


def render(state: PageState) -> None:
    s = cached.point_status(state)
    st.subheader(f"{state.label} on a chip with {charts.pct(state.fault_rate)} {state.results.fault_label} faults")
    if s.error:
        st.error(f"This design point's checkpoint cannot be used: {s.error}")
    accuracy_cards(state, s)
    isaac = cached.point_cost(state.point, state.cost.of("isaac"))
    cost_details(state, cached.point_cost(state.point, state.cost), isaac)
    busy = explore.active_jobs(cached.store(), state.point)
    what = "a job is working on it (live below)" if not busy.empty else s.label
    x = state.cost.of("isaac").xbar_size
    st.caption(f"Status: **{what}** · {isaac['crossbars_one_copy']} crossbars of {x}x{x} hold its weights once "
               f"(on {isaac['chips']} chip(s)) · costs per 32x32 image")
    if isinstance(state.bn, Chip):
        cal = explore.calibration_cost(cached.point_cost(state.point, state.cost), state.bn.images)
        st.caption(f"Per-chip BN calibration ({state.cost.model} cost model): {state.bn.images} forward passes "
                   f"once per chip at deployment, {units.fmt(cal['calib_latency_ns'], 'ns')} and "
                   f"{units.fmt(cal['calib_energy_uj'], 'uJ')}")
    actions(state, s, busy)


def accuracy_cards(state: PageState, s: explore.PointStatus) -> None:
    f, how = state.fault_rate, state.results.bn_label
    r = s.row or {}
    if s.evaluated and at_chance(r["accuracy"]):  # a result worth saying plainly, not an error
        st.warning(f"At {charts.pct(f)} faults this design point is at chance level ({r['accuracy']:.2f}%; guessing "
                   f"scores {CHANCE_ACCURACY:g}%): the network has collapsed under these faults.")
    c = st.columns(4)  # accuracy here, cost below: six to a row would cut values short
    if s.evaluated:
        c[0].metric("Accuracy under faults", f"{r['accuracy']:.2f}%", help=f"mean over crossbar instances; BN: {how}")
        c[0].caption((f"95% CI ±{r['ci95']:.2f} · n={int(r['n'])}" if r["n"] > 1 else "one network (no faults)")
                     + f" · BN: {how}")
        c[1].metric("Worst crossbar", f"{r['worst']:.2f}%", help=f"BN: {how}")
        c[3].metric("Loss vs own fault-free", f"{r['loss_own']:.2f} pts",
                    help="against this design point's own fault-free accuracy (the paper's 'degradation')")
        c[3].caption("Loss vs p=0 model: " + (f"{r['loss_p0']:.2f} pts" if pd.notna(r.get("loss_p0")) else
                                              "— (no p=0 model of this architecture)"))
    else:
        c[0].metric("Accuracy under faults", "—")
        c[0].caption(f"BN: {how}")
        c[1].metric("Worst crossbar", "—")
        c[3].metric("Loss vs own fault-free", "—")
    c[2].metric("Fault-free accuracy", f"{r['fault_free_accuracy']:.2f}%"
                if s.trained and pd.notna(r.get("fault_free_accuracy")) else "—")


def cost_details(state: PageState, cost: dict, isaac: dict) -> None:
    """The cost cards in labelled groups (dse.view.cards): per image, the system the cost model counts, and the
    design's own footprint; then the figures to compare across the two models."""
    m = state.cost.model
    for title, group in cards.groups(cost, isaac, m, state.cost.of("isaac").xbar_size):
        st.markdown(f"**{title}**")
        for col, (label, value, why) in zip(st.columns(5), group):
            col.metric(label, value, help=why)
    paper = cost if m == "paper" else cached.point_cost(state.point, state.cost.of("paper"))
    st.caption(f"Like with like: paper's interval {units.fmt(paper['interval_ns'], 'ns')} is a time per image at the "
               f"64-chip peak rate (Table II's mapping-blind cell, a MAC = 1 op: "
               f"{units.fmt(paper['table_ii_latency_ns'], 'ns')}); isaac's interval is "
               f"{units.fmt(isaac['interval_ns'], 'ns')}; one image alone takes {units.fmt(isaac['latency_ns'], 'ns')} "
               "(isaac latency).")
    if not isaac.get("fits", True):
        st.warning(f"This design does not fit the budget ({isaac['chips_available']} chip(s)): one copy of its weights "
                   f"needs {isaac['chips']}. In isaac mode it is left out of the Pareto fronts and the recommendation.")


def actions(state: PageState, s: explore.PointStatus, busy: pd.DataFrame) -> None:
    """Train / Evaluate buttons for what is missing; the work runs in a worker process."""
    if not busy.empty:  # one job at a time per point: its progress here, Cancel in the Jobs tab
        point_job(busy.iloc[0].job_id)
        return
    if s.evaluated and not s.error:
        return
    if state.data_error:
        st.error(state.data_error)
        return
    if not state.data:
        st.info("To train or evaluate this point, give a CIFAR-10 data path under *Training and data*.")
        return
    if not s.trained or s.error:
        if st.button(f"Train this design point ({state.epochs} epochs)", type="primary", key="train"):
            _, new = jobs.submit(cached.store(), state.train_task(str(cached.runs_dir() / "checkpoints")))
            st.toast("Training started" if new else "Already training: showing the running job")
            st.rerun()  # the point's status and progress from now on
    elif st.button(f"Evaluate at {charts.pct(state.fault_rate)} {state.results.fault_label} faults "
                   f"({state.instances} crossbars, BN {state.bn.name})", type="primary", key="evaluate"):
        _, new = jobs.submit(cached.store(), state.evaluate_task(s.checkpoint))
        st.toast("Evaluation started" if new else "Already evaluating: showing the running job")
        st.rerun()


@st.fragment(run_every=2)
def point_job(jid: str) -> None:
    """The selected point's running job, live; when it ends the page reruns to show the point's new state."""
    job = cached.store().job(jid)
    if job is None or job["state"] not in ("queued", "running"):
        st.rerun(scope="app")
    st.progress(float(job["progress"] or 0), text=f"**{joblist.job_title(job)}** · {joblist.job_status(job)} "
                                                  "(Cancel in the Jobs tab)")
