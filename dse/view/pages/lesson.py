"""Lesson mode, `?lesson=1` (and `&faults=sa0`): four steps on ResNet20 1x, each a picture and one sentence,
large, from the shipped results only; the paper's protocol first, per-chip calibration as the last step."""
from __future__ import annotations

import streamlit as st

from dse.view import lesson
from dse.view.pages import cached

CSS = "<style>.stMarkdown p {font-size: 1.6rem; line-height: 1.4} h1 {font-size: 3rem} h2 {font-size: 2.3rem}</style>"


def render() -> None:
    model = lesson.lesson_fault_model(st.query_params.get("faults"))
    st.markdown(CSS, unsafe_allow_html=True)
    st.title("Why drop-connect helps a chip with stuck cells")
    st.markdown("Four steps on one network (ResNet20), from the results shipped with the explorer. "
                "[Open the full explorer](./)")
    shapes = cached.layer_shapes(cached.architecture(lesson.PLAIN))
    for i, step in enumerate([lesson.tile_step(shapes, model, 0.1), *lesson.curve_steps(cached.store())]):
        st.header(step.title)
        st.plotly_chart(step.figure, key=f"lesson-{i + 1}", theme=None)  # the lesson's own large fonts
        st.markdown(step.sentence)
