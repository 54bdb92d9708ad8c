"""The page logic with Streamlit's AppTest, on small stores built by tests/fixtures.py."""
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dse.results.store import DesignPoint, Store
from tests.fixtures import POINTS, accuracy_model, build_store

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def app(tmp_path, monkeypatch, data: str = "") -> AppTest:
    monkeypatch.setenv("DSE_STORE", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("DSE_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("DSE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("DSE_DATA", data)
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    return at.run()


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


@pytest.fixture()
def store(tmp_path):
    return build_store(tmp_path, evaluate_missing=(POINTS[2],))[0]


def test_opens_on_the_store_and_shows_the_selected_point(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    assert not at.exception
    p = DesignPoint("resnet20", 1.0, 1, "default", 0.3)  # the default selection
    assert metric(at, "Accuracy under faults") == f"{accuracy_model(p, 0.1):.2f}%"
    assert metric(at, "Fault-free accuracy") == f"{accuracy_model(p, 0.0):.2f}%"
    assert metric(at, "Loss vs own fault-free") == f"{accuracy_model(p, 0.0) - accuracy_model(p, 0.1):.2f} pts"
    base = accuracy_model(DesignPoint("resnet20", 1.0, 1, "default", 0.0), 0.0)
    assert f"Loss vs p=0 model: {base - accuracy_model(p, 0.1):.2f} pts" in [c.value for c in at.caption]
    assert metric(at, "Latency (paper)") == "15.74 ns"
    assert any("BN: chip (N=500)" in c.value for c in at.caption)  # the app opens on the per-chip protocol


def test_the_protocol_selector_switches_every_number(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    p = DesignPoint("resnet20", 1.0, 1, "default", 0.3)
    at.sidebar.radio(key="bn").set_value("paper").run()
    assert not at.exception
    assert metric(at, "Accuracy under faults") == f"{accuracy_model(p, 0.1, 'paper'):.2f}%"
    assert any("BN: paper (Algorithm 1)" in c.value for c in at.caption)
    assert not any("Per-chip BN calibration" in c.value for c in at.caption)
    at.sidebar.radio(key="bn").set_value("chip").run()
    assert any("Per-chip BN calibration (paper cost model): 500 forward passes" in c.value for c in at.caption)


def test_controls_change_the_shown_point(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    at.sidebar.select_slider(key="dropconnect").set_value(0.0).run()
    at.sidebar.select_slider(key="fault_rate").set_value(0.3).run()
    assert not at.exception
    p = DesignPoint("resnet20", 1.0, 1, "default", 0.0)
    assert metric(at, "Accuracy under faults") == f"{accuracy_model(p, 0.3):.2f}%"
    at.sidebar.radio(key="cost_model").set_value("isaac").run()
    assert metric(at, "Latency (isaac)").endswith("ms")


def test_only_valid_combinations_can_be_chosen(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    assert [r for r in at.sidebar.radio if r.key == "shortcut_kernel"]
    at.sidebar.selectbox(key="network").set_value("vgg13").run()
    assert not at.exception
    assert not [r for r in at.sidebar.radio if r.key == "shortcut_kernel"]  # VGG13 has no shortcuts
    assert metric(at, "Latency (paper)") == "87.83 ns"


def test_missing_point_offers_training(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    at.sidebar.select_slider(key="width").set_value(1.4).run()
    assert "train" not in [b.key for b in at.button]
    assert any("give a CIFAR-10 data path" in i.value for i in at.info)  # no data yet: says what is needed
    at = app(tmp_path, monkeypatch, data=str(tmp_path / "no-such-data"))
    at.sidebar.select_slider(key="width").set_value(1.4).run()
    assert "missing" in " ".join(c.value for c in at.caption)
    at.button(key="train").click().run()
    assert not at.exception
    jobs = Store(tmp_path / "results.sqlite").jobs()
    assert len(jobs) == 1 and jobs.kind.iloc[0] == "train"


def test_trained_but_unevaluated_point_offers_evaluation(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch, data="somewhere")
    at.sidebar.radio(key="mapping").set_value("1x1-on-crossbar").run()
    assert metric(at, "Accuracy under faults") == "—"
    assert "Evaluate at 10% faults" in at.button(key="evaluate").label


def test_recommendation_picks_the_cheapest_point_meeting_the_target(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    at.sidebar.radio(key="bn").set_value("paper").run()  # the accuracies below are the paper protocol's
    assert at.success and at.number_input(key="target").value < 89.0  # the first target is met by some designs
    at.number_input(key="target").set_value(89.0).run()  # only the 1.6x point reaches 89% at 10% faults
    assert "resnet20 1.6x k1 p=0.3**" in at.success[0].value
    at.number_input(key="target").set_value(88.6).run()  # now the cheaper 1.0x p=0.3 (88.8%) qualifies
    assert "resnet20 1x k1 p=0.3**" in at.success[0].value
    at.number_input(key="target").set_value(99.0).run()
    assert "No evaluated design reaches" in at.warning[0].value


def test_damaged_checkpoint_is_shown_and_the_rest_works(tmp_path, monkeypatch, store):
    bad = tmp_path / "checkpoints" / "broken.safetensors"
    bad.write_bytes(b"\x80\x04 not a checkpoint")
    at = app(tmp_path, monkeypatch)
    assert not at.exception
    assert any("broken.safetensors" in w.value and "pickle" in w.value for w in at.warning)
    assert metric(at, "Accuracy under faults") != "—"


def test_first_render_from_a_filled_store_needs_no_torch(tmp_path, store):
    """Startup speed by construction: with the store filled (second start on), the first page renders
    without importing torch (the slowest import by far) or reading any checkpoint."""
    import subprocess
    import sys

    from dse.results.catalog import sync

    sync(store, [tmp_path / "checkpoints"])  # what the first start does
    code = ("import sys; from streamlit.testing.v1 import AppTest; "
            f"at = AppTest.from_file({APP!r}, default_timeout=120).run(); "
            "assert not at.exception, at.exception; print('torch' in sys.modules)")
    env = {**__import__("os").environ, "DSE_STORE": str(tmp_path / "results.sqlite"),
           "DSE_CHECKPOINTS": str(tmp_path / "checkpoints"), "DSE_RUNS": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_the_calibration_tab_draws_the_images_sweep_when_there_is_one(tmp_path, monkeypatch, store):
    from tests.fixtures import fake_result

    at = app(tmp_path, monkeypatch)
    at.sidebar.radio(key="mapping").set_value("1x1-on-crossbar").run()  # a point not evaluated at all
    assert any("No per-chip calibration sweep" in i.value for i in at.info)
    p = DesignPoint("resnet20", 1.0, 1, "default", 0.3)
    sha = store.points().set_index("point_id").checkpoint_sha[p.point_id]
    store.add_evaluation(p.point_id, sha, fake_result(0.1, 80.0, bn="chip", calib_images=32), {})
    at = app(tmp_path, monkeypatch)
    assert not at.exception and not any("No per-chip calibration sweep" in i.value for i in at.info)
    curve = next(d for d in at.dataframe if "calib_images" in d.value.columns).value
    assert list(curve.calib_images) == [0, 32, 500] and list(curve["mean"].round(2)) == [
        round(accuracy_model(p, 0.1, "paper"), 2), 80.0, round(accuracy_model(p, 0.1, "chip"), 2)]
