"""1x1 mapping (the paper's Fig. 7): the selected point's curves with its 1x1 layers on the processor and on
the crossbar, where both were evaluated."""
from __future__ import annotations

import streamlit as st

from dse.view.pages import cached
from dse.view.state import PageState


def render(state: PageState) -> None:
    st.plotly_chart(cached.mapping_figure(state), key="fig7")
