import numpy as np
import pytest

from dse.domain.bn import Batch, Chip, Paper, parse_bn
from dse.domain.faultspec import FAULT_MODEL_NAMES, FaultSpec
from dse.domain.point import DesignPoint
from dse.view import explore
from dse.view.explore import SA1
from dse.core.crossbar.mapping import POLICIES
from tests.fixtures import POINTS, accuracy_model, add_result, build_store


def test_explorer_space_is_what_the_backend_implements():
    assert set(explore.MAPPINGS) <= set(POLICIES)
    from dse.core.faults.stuck_at import FAULT_MODELS
    assert set(FAULT_MODEL_NAMES) == set(FAULT_MODELS)


def test_the_pages_processor_knobs_are_dse_costs():
    """The page checks --cpu-gmacs and --cpu-pj-per-mac torch-free: the same defaults and ranges as Processor."""
    from dse.core.cost.per_image import PROCESSOR, Processor
    from dse.domain.errors import DSEError

    assert explore.DEFAULT_PROCESSOR == (PROCESSOR.macs_per_s / 1e9, PROCESSOR.pj_per_mac)
    (_, glo, ghi), (_, plo, phi) = explore.PROCESSOR_LIMITS.values()
    for gmacs, pj in ((glo, plo), (ghi, phi)):
        assert explore.check_processor(gmacs, pj) == (gmacs, pj)
        Processor(gmacs * 1e9, pj).check()
    for gmacs, pj in ((glo / 2, plo), (ghi * 2, phi), (glo, plo / 2), (glo, phi * 2), (float("nan"), plo)):
        with pytest.raises(DSEError):
            explore.check_processor(gmacs, pj)
        with pytest.raises(DSEError):
            Processor(gmacs * 1e9, pj).check()


def test_another_processor_recomputes_both_cost_models(tmp_path):
    from dse.core.cost.per_image import Processor, estimate

    store, _ = build_store(tmp_path)
    slow = (10.0, 20.0)  # a tenth of the default rate
    for model in ("paper", "isaac"):
        table = explore.design_table(store, SA1.at(0.1), model, bn=Paper(), processor=slow).set_index("point_id")
        default = explore.design_table(store, SA1.at(0.1), model, bn=Paper()).set_index("point_id")
        r = table.loc[POINTS[1].point_id]  # the paper's mapping: 1x1 shortcuts and fc on the processor
        want = estimate(r.network, r.width, int(r.shortcut_kernel), r.mapping, model, processor=Processor(10e9, 20.0))
        assert r.latency_ns == pytest.approx(want["totals"]["latency_ns"])
        assert r.latency_ns > default.latency_ns[POINTS[1].point_id]
    assert explore.cost_options("paper", {"xbar_size": 256}, explore.DEFAULT_PROCESSOR) == {}  # the store's


@pytest.mark.parametrize("bn, name", [("paper", "paper (Algorithm 1)"), ("chip", "chip (N=500)")])
def test_design_table_at_a_fault_rate(tmp_path, bn, name):
    store, _ = build_store(tmp_path)
    t = explore.design_table(store, SA1.at(0.2), "paper", bn=parse_bn(bn))
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
    assert explore.design_table(store, SA1.at(0.2), bn=Batch()).accuracy.isna().all()  # none evaluated that way
    assert explore.design_table(store, SA1.at(0.2), bn=Chip(32)).accuracy.isna().all()


def test_calibration_curve_compares_the_same_chips(tmp_path):
    from tests.fixtures import fake_result

    store, _ = build_store(tmp_path)
    p = POINTS[1]
    sha = store.points().set_index("point_id").checkpoint_sha[p.point_id]
    add_result(store, p, sha, fake_result(0.3, 70.0, n=4, bn="chip", calib_images=32))
    c = explore.calibration_curve(store, p, 0.3)
    assert list(c.calib_images) == [0, 32, 500]  # 0: the paper's protocol
    assert (c.n == 4).all()  # cut to the crossbars every count has
    assert c.bn_protocol.tolist() == ["paper (Algorithm 1)", "chip (N=32)", "chip (N=500)"]


def test_stored_cost_and_status(tmp_path):
    store, _ = build_store(tmp_path)
    assert explore.stored_cost(store, POINTS[0], "paper")["latency_ns"] > 0
    assert explore.stored_cost(store, DesignPoint("vgg13", 1.0), "paper") is None
    t = explore.design_table(store, SA1.at(0.1))
    assert explore.status(t, POINTS[0]).label == "evaluated"
    assert explore.status(t, DesignPoint("vgg13", 1.0)).label == "missing"


def test_default_target_is_met_by_some_designs_and_missed_by_others():
    import pandas as pd

    table = pd.DataFrame({"accuracy": [70.87, 77.97, 76.4, None]})
    assert explore.default_target(table) == 76.0  # median 76.4, rounded down to half a point
    met = (table.accuracy >= explore.default_target(table)).sum()
    assert 0 < met < table.accuracy.notna().sum()
    assert explore.default_target(pd.DataFrame({"accuracy": []}), fallback=85.0) == 85.0


def test_stale_cached_costs_are_recomputed(tmp_path):
    """Totals stored by another cost-model version read as unknown and are recomputed (COST_VERSION)."""
    from dse.core.cost.isaac import COST_VERSION
    from dse.results.catalog import ensure_costs

    store, _ = build_store(tmp_path)
    p = POINTS[0]
    stale = {"totals": {"latency_ns": 1.0, "energy_uj": 1.0}}  # as an older cost model stored it: no version
    store.add_cost(p.network, p.width, p.shortcut_kernel, p.mapping, "paper", stale)
    assert store.cost_totals(p, "paper") == stale["totals"]  # there, but
    assert explore.stored_cost(store, p, "paper") is None  # stale: unknown to the page
    totals = explore.point_cost(store, p, "paper")  # recomputed once and stored
    assert totals["latency_ns"] != 1.0 and {"area_mm2", "peak_power_w", "average_power_w", "tops_per_w"} <= set(totals)
    costs = store.costs()
    assert (costs.version == COST_VERSION).all()
    store.add_cost(p.network, p.width, p.shortcut_kernel, p.mapping, "isaac", stale)
    ensure_costs(store)  # what the page's start (catalog.sync) does
    row = store.costs().query("cost_model == 'isaac' and mapping == @p.mapping and width == @p.width")
    assert row.version.iloc[0] == COST_VERSION and row.latency_ns.iloc[0] != 1.0
    assert explore.design_table(store, SA1.at(0.1), "isaac").area_mm2.notna().all()


def test_hardware_knobs_recompute_the_design_tables_costs(tmp_path):
    store, _ = build_store(tmp_path)
    base = explore.design_table(store, SA1.at(0.1), "isaac").set_index("point_id")
    big = explore.design_table(store, SA1.at(0.1), "isaac", hardware={"xbar_size": 256}).set_index("point_id")
    assert not np.allclose(big.latency_ns, base.latency_ns)  # the ADC-bound cycle doubles; replication follows
    assert (big.min_area_mm2 != base.min_area_mm2).all()  # 256x256 crossbars with 15-bit ADCs
    assert explore.design_table(store, SA1.at(0.1), "paper", hardware={"xbar_size": 256}).latency_ns.equals(
        explore.design_table(store, SA1.at(0.1), "paper").latency_ns)  # the knobs are isaac mode's
    unfit = explore.design_table(store, SA1.at(0.1), "isaac", hardware={"chips": 1, "tiles_per_chip": 1})
    assert (~unfit.fits.astype(bool)).any()
    assert unfit[~unfit.fits.astype(bool)].latency_ns.isna().all()  # left out of fronts and recommendations
    p = POINTS[1]
    assert explore.point_cost(store, p, "isaac", {"adc_bits": 10})["energy_uj"] < explore.point_cost(
        store, p, "isaac")["energy_uj"]  # a 10-bit ADC (lossy for 8-bit cells) against the 14 bits they need


def test_a_figures_sample_is_named_and_a_table_without_evaluations_says_so():
    import pandas as pd

    from dse.view import explore

    ev = pd.DataFrame({"fault_rate": [0.0, 0.1, 0.3], "n": [1, 20, 100], "test_images": [10000] * 3})
    assert explore.sample_label(ev) == "20-100 chips × 10,000 images"
    assert explore.sample_label(pd.DataFrame({"n": [float("nan")] * 2, "test_images": [float("nan")] * 2})) == \
        "no evaluations"  # SA0 at a rate nothing was evaluated at: no crash


def test_the_pages_state_is_typed_and_its_spec_is_built_without_parsing():
    """ResultsSpec carries a FaultSpec and a BN (frozen: they key the page's caches), and PageState.spec passes
    them whole to the EvalSpec the Evaluate buttons run."""
    from dse.domain.faultspec import parse_fault_model
    from dse.view.state import PageState, ResultsSpec

    default = ResultsSpec()
    assert (default.fault, default.bn, default.fault_rate) == (SA1.at(0.1), Chip(500), 0.1)
    assert default.bn_label == "chip (N=500)" and default.fault_label == "SA1"
    fault = parse_fault_model("clustered:8+remap", 0.2)
    results = ResultsSpec(fault, Paper())
    assert hash(results) == hash(ResultsSpec(parse_fault_model("clustered:8+remap", 0.2), Paper()))
    assert results != ResultsSpec(fault, Chip(500)) and ResultsSpec(bn=Chip(32)) != ResultsSpec(bn=Chip(500))
    spec = PageState(POINTS[0], results, instances=7).spec
    assert spec.fault is fault and spec.bn == Paper() and spec.budget.instances == 7


def test_queries_read_the_fault_model_and_protocol_they_are_given(tmp_path):
    from tests.fixtures import fake_result

    store, _ = build_store(tmp_path)
    p = POINTS[1]
    sha = store.points().set_index("point_id").checkpoint_sha[p.point_id]
    add_result(store, p, sha, {**fake_result(0.2, 42.0, bn="chip", calib_images=32), "fault_model": "sa0"})
    sa0 = explore.design_table(store, FaultSpec("sa0", rate=0.2), bn=Chip(32)).set_index("point_id")
    assert sa0.accuracy[p.point_id] == pytest.approx(42.0) and sa0.accuracy.drop(p.point_id).isna().all()
    assert set(sa0.bn_protocol) == {"chip (N=32)"}
    cv = explore.curves(store, p, fault=FaultSpec("sa0"), bn=Chip(32))
    assert list(cv.fault_rate) == [0.2] and cv["mean"].tolist() == pytest.approx([42.0])
    assert explore.curves(store, p, fault=SA1, bn=Chip(32)).empty  # the sa1 rows are at N = 500
