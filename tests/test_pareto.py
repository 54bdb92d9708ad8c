"""Pareto fronts and the cheapest design meeting an accuracy target, on hand-built tables."""
import numpy as np
import pandas as pd
import pytest

from dse.domain.errors import DSEError
from dse.view.pareto import cheapest_meeting, pareto_front, pareto_fronts


def points(rows, index=None):
    return pd.DataFrame(rows, columns=["name", "latency_ns", "energy_uj", "accuracy"], index=index)


TABLE = points([
    ("a", 1.0, 9.0, 0.50),
    ("b", 2.0, 1.0, 0.70),
    ("c", 2.0, 2.0, 0.60),  # same latency as b, less accurate: dominated
    ("d", 3.0, 3.0, 0.70),  # as accurate as b, slower: dominated
    ("e", 4.0, 8.0, 0.90),
    ("f", 0.5, 9.5, 0.40),
])


def test_front_keeps_only_non_dominated_points_sorted_by_cost():
    front = pareto_front(TABLE, "latency_ns")
    assert list(front["name"]) == ["f", "a", "b", "e"]
    assert list(front.index) == [5, 0, 1, 4]  # original index kept


def test_energy_front_differs_from_latency_front():
    fronts = pareto_fronts(TABLE)
    assert list(fronts["latency_ns"]["name"]) == ["f", "a", "b", "e"]
    assert list(fronts["energy_uj"]["name"]) == ["b", "e"]  # b is cheapest in energy and beats a, c, d, f


def test_exact_duplicates_keep_the_first_row_in_table_order():
    dup = points([("x", 2.0, 1.0, 0.7), ("y", 1.0, 1.0, 0.5), ("z", 2.0, 1.0, 0.7)], index=[10, 11, 12])
    assert list(pareto_front(dup)["name"]) == ["y", "x"]
    assert list(pareto_front(dup.iloc[::-1])["name"]) == ["y", "z"]  # first in the given order
    same = points([("p", 1.0, 1.0, 0.5)] * 4)
    assert list(pareto_front(same).index) == [0]


def test_ties_on_one_axis_keep_the_better_point_only():
    ties = points([("slow", 5.0, 1.0, 0.8), ("fast", 1.0, 1.0, 0.8), ("worse", 1.0, 1.0, 0.6)])
    assert list(pareto_front(ties)["name"]) == ["fast"]


def test_nan_rows_are_left_out_and_empty_tables_give_empty_fronts():
    t = points([("n", np.nan, 1.0, 0.9), ("m", 1.0, 1.0, np.nan), ("ok", 2.0, 1.0, 0.5)])
    assert list(pareto_front(t)["name"]) == ["ok"]
    assert pareto_front(TABLE.iloc[0:0]).empty


def test_front_per_group():
    reversed_accuracy = TABLE.accuracy[::-1].values
    t = pd.concat([TABLE.assign(fault_rate=0.1), TABLE.assign(fault_rate=0.0, accuracy=reversed_accuracy)])
    front = pareto_front(t, by="fault_rate")
    assert list(front["fault_rate"].unique()) == [0.0, 0.1]
    assert list(front[front.fault_rate == 0.1]["name"]) == ["f", "a", "b", "e"]
    assert list(front[front.fault_rate == 0.0]["name"]) == list(pareto_front(t[t.fault_rate == 0.0])["name"])


def brute_force(df, cost, acc):
    """O(n^2) definition: keep a row unless another dominates it, or is identical and comes first."""
    keep = []
    c, a = df[cost].to_numpy(), df[acc].to_numpy()
    for i in range(len(df)):
        dominated = any(
            (c[j] <= c[i] and a[j] >= a[i] and (c[j] < c[i] or a[j] > a[i]))
            or (c[j] == c[i] and a[j] == a[i] and j < i)
            for j in range(len(df)) if j != i
        )
        if not dominated:
            keep.append(df.index[i])
    return sorted(keep)


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_definition_on_random_tables_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    n = 200
    t = pd.DataFrame({"latency_ns": rng.integers(0, 15, n).astype(float),
                      "accuracy": rng.integers(0, 15, n) / 15})
    assert sorted(pareto_front(t).index) == brute_force(t, "latency_ns", "accuracy")


def test_cheapest_meeting_a_target():
    assert cheapest_meeting(TABLE, 0.65)["name"] == "b"
    assert cheapest_meeting(TABLE, 0.70)["name"] == "b"  # meeting the target exactly counts
    assert cheapest_meeting(TABLE, 0.65, cost="energy_uj")["name"] == "b"
    assert cheapest_meeting(TABLE, 0.85)["name"] == "e"
    assert cheapest_meeting(TABLE, 0.0)["name"] == "f"
    assert cheapest_meeting(TABLE, 0.95) is None


def test_cheapest_meeting_breaks_cost_ties_by_accuracy_then_order():
    t = points([("lo", 1.0, 1.0, 0.7), ("hi", 1.0, 1.0, 0.8), ("hi2", 1.0, 1.0, 0.8)])
    assert cheapest_meeting(t, 0.6)["name"] == "hi"


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: pareto_front(TABLE, "power_w"), ["'power_w'", "latency_ns"]),
        (lambda: pareto_front(TABLE, accuracy="name"), ["'name'", "numeric"]),
        (lambda: pareto_front(TABLE, by="fault_rate"), ["'fault_rate'"]),
        (lambda: pareto_front([(1, 2)]), ["DataFrame"]),
        (lambda: cheapest_meeting(TABLE, "high"), ["'high'"]),
        (lambda: cheapest_meeting(TABLE, float("nan")), ["nan"]),
        (lambda: cheapest_meeting(TABLE, 0.5, cost="area"), ["'area'"]),
    ],
)
def test_bad_input_gives_a_clear_error(call, words):
    with pytest.raises(DSEError) as err:
        call()
    assert all(w in str(err.value) for w in words), str(err.value)
