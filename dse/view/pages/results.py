"""Results table: the design table for people (dse.view.tables); the CSVs keep every column by its store name."""
from __future__ import annotations

import streamlit as st

from dse.view import charts, explore, tables
from dse.view.pages import cached
from dse.view.state import PageState


def render(state: PageState) -> None:
    table = cached.design_table(state)
    readable = tables.readable(table)
    st.dataframe(readable, hide_index=True, key="results",
                 column_config={c: st.column_config.Column(help=tables.help_for(c)) for c in readable})
    st.caption(f"At {charts.pct(state.fault_rate)} {state.results.fault_label} faults; BN: {state.results.bn_label}; "
               f"costs per image ({state.cost.model} cost model); accuracies rounded to what their 95% CIs support; "
               "— where there is no value.")
    c1, c2 = st.columns(2)
    c1.download_button("Download design points (CSV)", explore.results_view(table).to_csv(index=False).encode(),
                       file_name=f"design-points-f{state.fault_rate:g}.csv", mime="text/csv", key="dl_points")
    c2.download_button("Download all evaluations (CSV)", cached.evaluations_csv(), file_name="evaluations.csv",
                       mime="text/csv", key="dl_evals")
