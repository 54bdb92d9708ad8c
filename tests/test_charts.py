import numpy as np
import pandas as pd

from dse.domain.point import label
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
    table = explore.design_table(store, explore.SA1.at(0.1))
    fronts = explore.fronts(table)
    rec = explore.recommend(table, 89.0)
    fig = charts.pareto(table, fronts["latency_ns"], "latency_ns", selected=POINTS[0].point_id,
                        recommended=rec["point_id"], fault_rate=0.1)
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


def test_fault_rates_read_as_percentages_and_networks_differ_in_colour_and_marker(tmp_path):
    store, _ = build_store(tmp_path)
    cv = explore.curves(store, POINTS[0])
    assert charts.accuracy_vs_fault_rate(cv, "t").layout.xaxis.tickformat == ".0%"
    heat = charts.dropconnect_heatmap(cv, "t")
    assert list(heat.data[0].x) == [charts.pct(f) for f in sorted(cv.fault_rate.unique())]
    assert charts.pct(0.1) == "10%" and charts.pct(0.015) == "1.5%" and charts.pct(0.3) == "30%"
    table = explore.design_table(store, explore.SA1.at(0.1))
    other = table.assign(network="mobilenetv2", point_id=table.point_id + "-m")  # a second network on the chart
    table = pd.concat([table, other], ignore_index=True)
    fig = charts.pareto(table, explore.fronts(table)["latency_ns"], "latency_ns", selected=None, recommended=None,
                        fault_rate=0.1)
    assert "at 10% SA1 faults" in fig.layout.title.text and "0.1" not in fig.layout.title.text
    nets = {t.name: t.marker for t in fig.data if t.name in charts.NETWORK_COLORS}
    assert len(nets) >= 2 and len({m.color for m in nets.values()}) == len(nets)
    assert len({m.symbol for m in nets.values()}) == len(nets)


def test_trained_points_not_evaluated_at_the_rate_show_at_their_cost(tmp_path):
    store, _ = build_store(tmp_path, evaluate_missing=(POINTS[2],))
    table = explore.design_table(store, explore.SA1.at(0.1))
    fig = charts.pareto(table, explore.fronts(table)["energy_uj"], "energy_uj", selected=None, recommended=None,
                        fault_rate=0.1, cost_model="paper", fault_model="sa0")
    assert "at 10% SA0 faults" in fig.layout.title.text
    ticks = next(t for t in fig.data if t.name == "not evaluated at 10% (cost only)")
    assert list(ticks.hovertext) == [label(POINTS[2].__dict__)]
    assert max(ticks.y) < min(table.accuracy.dropna())  # below every measured accuracy, never mistaken for one
    only = table.assign(accuracy=float("nan"))  # nothing evaluated: the costs still show
    fig = charts.pareto(only, explore.fronts(only)["energy_uj"], "energy_uj", selected=None, recommended=None,
                        fault_rate=0.1)
    assert len(next(t for t in fig.data if t.name.startswith("not evaluated")).x) == len(table)
