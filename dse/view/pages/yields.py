"""Yield: the share of simulated chips (crossbar instances) whose accuracy reaches a target, with its exact 95%
interval; the cheapest design whose yield reaches a minimum by the interval's LOW end; and one click to
evaluate the selected point on as many chips as that minimum needs."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from dse.domain.evalspec import Budget
from dse.run import jobs
from dse.view import charts, explore, units, yields
from dse.view.pages import cached
from dse.view.state import PageState


def render(state: PageState) -> None:
    f, how, p = state.fault_rate, state.results.bn_label, state.point
    if st.session_state.get("yield_context") != (f, state.bn):  # new numbers: their median
        st.session_state.yield_context = (f, state.bn)
        st.session_state.yield_target = explore.default_target(cached.design_table(state),
                                                               st.session_state.get("yield_target", 85.0))
    c1, c2 = st.columns([1, 3])
    target = float(c1.number_input(f"Accuracy target at {charts.pct(f)} faults (%)", 0.0, 100.0, step=0.5,
                                   key="yield_target", persist_state="session"))
    ytable = cached.yield_table(state, target)
    mine = ytable[ytable.point_id == p.point_id] if "point_id" in ytable else ytable.iloc[0:0]
    if mine.empty or pd.isna(mine["yield"].iloc[0]):
        c1.metric("Chip yield", "—", help=f"BN: {how}")
        c1.caption(f"Not evaluated at {charts.pct(f)} faults under BN: {how}.")
    else:
        r = mine.iloc[0]
        c1.metric("Chip yield", f"{r['yield']:.1%}", help=f"share of chips with accuracy >= {target:g}%; BN: {how}")
        c1.caption(f"{int(r['chips_meeting'])} of {int(r['chips'])} chips >= {target:g}% · 95% Clopper-Pearson "
                   f"[{r['yield_low']:.1%}, {r['yield_high']:.1%}] · BN: {how}")
    _, fig = cached.yield_figure(state, target, f"{state.arch}, p={p.dropconnect:g} at {charts.pct(f)} "
                                                f"{state.results.fault_label} faults: chip yield vs accuracy target")
    c2.plotly_chart(fig, key="yield-curve")
    min_yield = recommendation(c1, ytable, target, f, how)
    with c2:
        more_chips(state, 0 if mine.empty or pd.isna(mine["chips"].iloc[0]) else int(mine["chips"].iloc[0]),
                   min_yield)


def recommendation(col, ytable: pd.DataFrame, target: float, f: float, how: str) -> float:
    """The cheapest design whose yield at `target` is at least Y%, judged by the interval's lower bound; the
    first minimum is one the evaluated chips can prove (yields.default_min_yield), and the page says how many
    chips a claim needs."""
    context = (f, how, yields.most_chips(ytable))
    if st.session_state.get("yield_min_context") != context:
        st.session_state.yield_min_context = context
        st.session_state.yield_min = 100 * yields.default_min_yield(ytable)
    min_yield = col.number_input("Minimum yield (%)", 0.0, 100.0, step=1.0, key="yield_min", persist_state="session")
    objective = col.radio("Cheapest by", list(explore.OBJECTIVES), key="yield_objective", persist_state="session",
                          format_func=lambda o: charts.AXIS[o].split(" per")[0])
    col.info(yields.sample_note(ytable, min_yield / 100))
    rec = yields.recommend(ytable, min_yield / 100, objective)
    if rec:
        col.success(f"**{rec['label']}**: yield >= {rec['yield_low']:.1%} (lower 95% bound; estimate "
                    f"{rec['yield']:.1%}, {int(rec['chips_meeting'])} of {int(rec['chips'])} chips) at target "
                    f"{target:g}% at {charts.pct(f)} faults, "
                    f"{units.fmt_like(rec[objective], ytable[objective].dropna(), objective)}"
                    f" · BN: {how}")
    else:
        col.warning(f"No evaluated design's yield at {target:g}% reaches {min_yield:g}% by the lower end of its 95% "
                    f"interval at {charts.pct(f)} faults · BN: {how}")
    col.caption("A design qualifies when the LOW end of its 95% Clopper-Pearson interval reaches the minimum "
                "yield (conservative: few chips cannot prove a high yield). Each crossbar instance is one chip.")
    return min_yield / 100


def more_chips(state: PageState, chips: int, min_yield: float) -> None:
    """One click to evaluate the selected point on as many chips as `min_yield` needs (a background job)."""
    if min_yield >= 1.0:
        return  # no number of chips proves 100% (sample_note says so)
    need = yields.chips_needed(min_yield)
    if chips >= need:
        return
    s = cached.point_status(state)
    what = f"{need} chips ({need - chips} more than the {chips} evaluated)" if chips else f"{need} chips"
    if not s.trained or s.error:
        st.caption(f"Train this design point to evaluate it on {what}.")
    elif not state.can_run:
        st.caption(f"To evaluate it on {what}, give a CIFAR-10 data path under *Training and data*, or run "
                   f"`{yields.more_chips_command(s.checkpoint, state.results, need)}`.")
    elif st.button(f"Evaluate this point on {what} (background job)", key="yield_more"):
        task = state.evaluate_task(s.checkpoint, replace(state.spec, budget=Budget(need)))
        st.toast("Evaluation started; see Jobs" if jobs.submit(cached.store(), task)[1]
                 else "Already evaluated or running")
