"""Units that fit the numbers (dse/view/units.py), on the page's metrics and the Pareto chart's axis alike."""
import numpy as np
import pandas as pd
import pytest

from dse.view import charts, units


@pytest.mark.parametrize("values, column, unit", [
    ([15.74, 87.83], "latency_ns", "ns"),
    ([2.19e6, 7.27e6], "latency_ns", "ms"),
    ([819_200.0], "interval_ns", "us"),
    ([3.6e9], "ns", "s"),
    ([0.4], "latency_ns", "ns"),  # below the smallest step: the base unit
    ([113.32, 632.16], "energy_uj", "uJ"),
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
    fig = charts.pareto(t, t.iloc[[0]], "latency_ns", None, None, 0.1, "isaac")
    assert fig.layout.xaxis.title.text == "latency of one image (ms)"
    assert max(fig.data[0].x) == pytest.approx(7.27)  # ticks in ms, as the metric says
    assert units.fmt(7.27e6, "latency_ns").endswith("ms")
    paper = charts.pareto(_table([15.74, 39.11]), _table([15.74]), "latency_ns", None, None, 0.1, "paper")
    assert paper.layout.xaxis.title.text == "time per image at the 64-chip peak rate (ns)"


def test_a_front_of_one_point_is_still_drawn():
    t = _table([2.19e6, 5.11e6])
    fig = charts.pareto(t, t.iloc[[0]], "latency_ns", None, None, 0.1, "isaac")
    front = next(d for d in fig.data if d.name == "Pareto front")
    assert len(front.x) == 1 and "markers" in front.mode  # a marker, so the legend's entry is on the chart
