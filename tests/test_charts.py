import numpy as np
import pandas as pd

from dse.view import charts, explore
from tests.fixtures import POINTS, build_store


def test_curves_and_heatmap_mark_the_best_rate(tmp_path):
    store, _ = build_store(tmp_path)
    cv = explore.curves(store, POINTS[0])
    fig = charts.accuracy_vs_fault_rate(cv, "t")
    assert sorted(t.name for t in fig.data) == ["p=0", "p=0.3"]
    heat = charts.dropconnect_heatmap(cv, "t")
    best = next(t for t in heat.data if t.name == "best p per fault rate")
    grid = cv.pivot_table(index="dropconnect", columns="fault_rate", values="mean")
    assert list(best.y) == [f"{p:g}" for p in grid.idxmax(axis=0)]


def test_pareto_chart_marks_front_selection_and_recommendation(tmp_path):
    store, _ = build_store(tmp_path)
    table = explore.design_table(store, 0.1)
    fronts = explore.fronts(table)
    rec = explore.recommend(table, 89.0)
    fig = charts.pareto(table, fronts["latency_ns"], "latency_ns", POINTS[0].point_id, rec["point_id"], 0.1)
    names = [t.name for t in fig.data]
    assert {"Pareto front", "selected", "recommended"} <= set(names)
    rec_trace = fig.data[names.index("recommended")]
    assert np.isclose(rec_trace.y[0], rec["accuracy"])


def test_empty_data_gives_a_message_not_an_error():
    fig = charts.accuracy_vs_fault_rate(pd.DataFrame(), "t")
    assert "no evaluations" in fig.layout.annotations[0].text


def test_fault_map_image():
    fm = np.zeros((4, 5), dtype=bool)
    fm[1, 2] = True
    fig = charts.fault_map(fm, "t")
    assert np.asarray(fig.data[0].z).sum() == 1
