"""Units that fit the numbers (dse/view/units.py), on the page's metrics and the Pareto chart's axis alike."""
import numpy as np
import pandas as pd
import pytest

from dse.view import charts, units


@pytest.mark.parametrize("values, column, unit", [
    ([15.74, 87.83], "latency_ns", "ns"),
    ([2.19e6, 7.27e6], "latency_ns", "ms"),
    ([819_200.0], "interval_ns", "µs"),
    ([3.6e9], "ns", "s"),
    ([0.4], "latency_ns", "ns"),  # below the smallest step: the base unit
    ([113.32, 632.16], "energy_uj", "µJ"),
    ([1773.1, 42_874.0], "energy_uj", "mJ"),
    ([0.25], "uJ", "nJ"),
    ([float("nan"), 7.27e6], "latency_ns", "ms"),  # NaN ignored
])
def test_unit_for_a_column(values, column, unit):
    assert units.unit_for(values, column)[0] == unit


def test_fmt_scales_one_value():
    assert units.fmt(15.74, "ns") == "15.74 ns"
    assert units.fmt(7_273_028.0, "latency_ns") == "7.27 ms"
    assert units.fmt(58_927.0, "uJ") == "58.93 mJ"
    assert units.fmt(float("nan"), "ns") == "—"
    with pytest.raises(ValueError):
        units.unit_for([1.0], "accuracy")


def _table(latencies):
    n = len(latencies)
    return pd.DataFrame({"point_id": [f"p{i}" for i in range(n)], "label": [f"p{i}" for i in range(n)],
                         "network": ["resnet20"] * n, "accuracy": np.linspace(70, 80, n), "ci95": 0.5,
                         "worst": 60.0, "n": 10, "latency_ns": latencies, "energy_uj": 100.0})


def test_pareto_axis_uses_the_unit_of_its_values_and_names_the_measure():
    t = _table([2.19e6, 5.11e6, 7.27e6])
    fig = charts.pareto(t, t.iloc[[0]], "latency_ns", selected=None, recommended=None, fault_rate=0.1,
                        cost_model="isaac")
    assert fig.layout.xaxis.title.text == "latency of one image (ms)"
    assert max(fig.data[0].x) == pytest.approx(7.27)  # ticks in ms, as the metric says
    assert units.fmt(7.27e6, "latency_ns").endswith("ms")
    paper = charts.pareto(_table([15.74, 39.11]), _table([15.74]), "latency_ns", selected=None, recommended=None,
                          fault_rate=0.1, cost_model="paper")
    assert paper.layout.xaxis.title.text == "latency of one image (64 ISAAC chips at peak rate, then the processor) (ns)"
    assert "front ranked by latency of one image" in paper.layout.title.text


def test_a_front_of_one_point_is_still_drawn():
    t = _table([2.19e6, 5.11e6])
    fig = charts.pareto(t, t.iloc[[0]], "latency_ns", selected=None, recommended=None, fault_rate=0.1,
                        cost_model="isaac")
    front = next(d for d in fig.data if d.name == "Pareto front")
    assert len(front.x) == 1 and "markers" in front.mode  # a marker, so the legend's entry is on the chart


def test_a_cost_axis_spanning_more_than_10x_is_logarithmic_and_units_are_typeset():
    t = _table([2.6e3, 8.1e5, 2.0e6]).rename(columns={"latency_ns": "interval_ns"})
    wide = charts.pareto(t, t.iloc[[0]], "interval_ns", selected=None, recommended=None, fault_rate=0.1,
                         cost_model="isaac")
    assert wide.layout.xaxis.type == "log" and "log scale" in wide.layout.xaxis.title.text
    assert "(ms)" in wide.layout.xaxis.title.text and "interval" in wide.layout.title.text
    narrow = charts.pareto(_table([15.74, 39.11]), _table([15.74]), "latency_ns", selected=None, recommended=None,
                           fault_rate=0.1, cost_model="paper")
    assert narrow.layout.xaxis.type != "log"
    assert units.fmt(2.5, "min_area_mm2") == "2.50 mm²" and units.fmt(819_200.0, "interval_ns") == "819.20 µs"


def test_breakdown_bars_stack_components_per_design():
    rows = pd.DataFrame({"design": ["1x", "1x", "1.6x", "1.6x"], "component": ["ADC", "DAC", "ADC", "DAC"],
                         "value": [300.0, 5.0, 600.0, 8.0]})
    fig = charts.breakdown(rows, "energy", "energy by component")
    assert fig.layout.barmode == "stack" and {t.name for t in fig.data} == {"ADC", "DAC"}
    assert "µJ" in fig.layout.yaxis.title.text


def test_a_value_beside_a_chart_reads_in_the_charts_unit():
    from dse.view.units import fmt_like

    assert fmt_like(16.55, [16.55, 812_119.0], "latency_ns") == "0.0166 µs"  # not "16.55 ns" beside a µs axis
    assert fmt_like(2_660.0, [16.55, 812_119.0], "latency_ns") == "2.66 µs"
    assert fmt_like(float("nan"), [1.0], "energy_uj") == "—"
