import numpy as np
import pytest

from dse.view import explore
from dse.core.mapping import POLICIES
from dse.core.models import list_models, shortcut_kernels
from tests.fixtures import POINTS, accuracy_model, build_store


def test_explorer_space_matches_the_registry():
    assert sorted(explore.NETWORKS) == list_models()
    assert {n: shortcut_kernels(n) for n in list_models()} == explore.SHORTCUT_KERNELS
    assert set(explore.MAPPINGS) <= set(POLICIES)


@pytest.mark.parametrize("bn, name", [("paper", "paper (Algorithm 1)"), ("chip", "chip (N=500)")])
def test_design_table_at_a_fault_rate(tmp_path, bn, name):
    store, _ = build_store(tmp_path)
    t = explore.design_table(store, 0.2, "paper", bn=bn)
    assert len(t) == len(POINTS) and t.latency_ns.notna().all()
    for p in POINTS:
        row = t[t.point_id == p.point_id].iloc[0]
        assert np.isclose(row.accuracy, accuracy_model(p, 0.2, bn))
        plain = [q for q in POINTS if q.width == p.width and q.mapping == p.mapping and q.dropconnect == 0]
        if plain:
            assert np.isclose(row.loss_p0, accuracy_model(plain[0], 0.0) - accuracy_model(p, 0.2, bn))
        else:  # no p=0 model of this architecture: no baseline, rather than a silent stand-in
            assert np.isnan(row.loss_p0)
        assert np.isclose(row.loss_own, row.fault_free_accuracy - accuracy_model(p, 0.2, bn))
        assert row.bn_protocol == name


def test_protocols_never_stand_in_for_each_other(tmp_path):
    store, _ = build_store(tmp_path)
    assert explore.design_table(store, 0.2, bn="batch").accuracy.isna().all()  # none evaluated that way
    assert explore.design_table(store, 0.2, bn="chip", calib_images=32).accuracy.isna().all()


def test_calibration_curve_compares_the_same_chips(tmp_path):
    from tests.fixtures import fake_result

    store, _ = build_store(tmp_path)
    p = POINTS[1]
    sha = store.points().set_index("point_id").checkpoint_sha[p.point_id]
    store.add_evaluation(p.point_id, sha, fake_result(0.3, 70.0, n=4, bn="chip", calib_images=32), {})
    c = explore.calibration_curve(store, p, 0.3)
    assert list(c.calib_images) == [0, 32, 500]  # 0: the paper's protocol
    assert (c.n == 4).all()  # cut to the crossbars every count has
    assert c.bn_protocol.tolist() == ["paper (Algorithm 1)", "chip (N=32)", "chip (N=500)"]


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
