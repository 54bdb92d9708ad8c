import numpy as np

from dse import explore
from dse.mapping import POLICIES
from dse.models import list_models, shortcut_kernels
from tests.fixtures import POINTS, accuracy_model, build_store


def test_explorer_space_matches_the_registry():
    assert sorted(explore.NETWORKS) == list_models()
    assert {n: shortcut_kernels(n) for n in list_models()} == explore.SHORTCUT_KERNELS
    assert set(explore.MAPPINGS) <= set(POLICIES)


def test_design_table_at_a_fault_rate(tmp_path):
    store, _ = build_store(tmp_path)
    t = explore.design_table(store, 0.2, "paper")
    assert len(t) == len(POINTS) and t.latency_ns.notna().all()
    for p in POINTS:
        row = t[t.point_id == p.point_id].iloc[0]
        assert np.isclose(row.accuracy, accuracy_model(p, 0.2))
        plain = [q for q in POINTS if q.width == p.width and q.mapping == p.mapping and q.dropconnect == 0]
        base = accuracy_model(plain[0], 0.0) if plain else accuracy_model(p, 0.0)
        assert np.isclose(row.loss, base - accuracy_model(p, 0.2))


def test_stored_cost_and_status(tmp_path):
    store, _ = build_store(tmp_path)
    assert explore.stored_cost(store, POINTS[0], "paper")["latency_ns"] > 0
    assert explore.stored_cost(store, explore.DesignPoint("vgg13", 1.0), "paper") is None
    t = explore.design_table(store, 0.1)
    assert explore.status(t, POINTS[0]).label == "evaluated"
    assert explore.status(t, explore.DesignPoint("vgg13", 1.0)).label == "missing"


def test_default_target_is_met_by_some_designs_and_missed_by_others():
    import pandas as pd

    table = pd.DataFrame({"accuracy": [70.87, 77.97, 76.4, None]})
    assert explore.default_target(table) == 76.0  # median 76.4, rounded down to half a point
    met = (table.accuracy >= explore.default_target(table)).sum()
    assert 0 < met < table.accuracy.notna().sum()
    assert explore.default_target(pd.DataFrame({"accuracy": []}), fallback=85.0) == 85.0
