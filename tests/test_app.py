"""The page logic with Streamlit's AppTest, on small stores built by tests/fixtures.py."""
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dse.domain.point import DesignPoint
from dse.results.store import Store
from dse.run.tasks import train_task
from tests.fixtures import POINTS, accuracy_model, add_result, build_store

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


def open_section(at, section: str) -> AppTest:
    """Click a tab of the section bar: only the open section is drawn."""
    at.session_state["section"] = section
    return at.run()


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
    # paper mode, mapping-aware: the 1x1 shortcuts and fc run on the processor, a pipeline stage of their own
    assert metric(at, "Interval (paper)") == "2.63 µs" and metric(at, "Latency (paper)") == "2.66 µs"
    assert metric(at, "Table II figure") == "15.74 ns"  # the paper's own, every layer on ISAAC
    assert metric(at, "TOPS/W (paper)") == "0.354"  # a MAC = 2 ops: below ISAAC's peak, not twice its source
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
    at.sidebar.number_input(key="fault_rate").set_value(30.0).run()
    assert not at.exception
    p = DesignPoint("resnet20", 1.0, 1, "default", 0.0)
    assert metric(at, "Accuracy under faults") == f"{accuracy_model(p, 0.3):.2f}%"
    at.sidebar.radio(key="cost_model").set_value("isaac").run()
    assert metric(at, "Latency (isaac)").endswith("µs") and metric(at, "ADC resolution (isaac)") == "14 bits"


def test_only_valid_combinations_can_be_chosen(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    assert [r for r in at.sidebar.radio if r.key == "shortcut_kernel"]
    at.sidebar.selectbox(key="network").set_value("vgg13").run()
    assert not at.exception
    assert not [r for r in at.sidebar.radio if r.key == "shortcut_kernel"]  # VGG13 has no shortcuts
    assert metric(at, "Table II figure") == "87.83 ns"


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


def test_a_running_job_is_the_points_status_and_a_cancelled_one_can_be_retried(tmp_path, monkeypatch, store):
    from dse.run import jobs

    started = []
    monkeypatch.setattr(jobs, "start_worker", lambda st_, jid: started.append(jid))  # no process in this test
    point = DesignPoint("resnet20", 1.4, 1, "default", 0.3)  # missing in the store
    jid, _ = jobs.submit(store, train_task(point, epochs=2, data=str(tmp_path / "d"), out_dir=str(tmp_path / "ck")),
                         spawn=False)
    at = app(tmp_path, monkeypatch, data=str(tmp_path / "d"))
    at.sidebar.select_slider(key="width").set_value(1.4).run()
    open_section(at, "Jobs")
    # the header's status line and the Jobs tab's row are one line, from one function (dse.view.joblist)
    texts = [e.proto.text for e in at.get("progress")]
    assert len(texts) == 2 and all("training (queued, 0%)" in t for t in texts), texts
    assert "Status: **a job is working on it (live below)**" in " ".join(c.value for c in at.caption)
    assert any("train · resnet20 1.4x k1 p=0.3 · 2 epochs" in m.value for m in at.markdown)
    assert "train" not in [b.key for b in at.button]  # no second Train while one runs
    jobs.cancel(store, jid)
    at.run()
    assert "train" in [b.key for b in at.button] and "missing" in " ".join(c.value for c in at.caption)
    at.button(key=f"retry-{jid}").click().run()  # the Jobs tab offers Retry for a cancelled job
    assert not at.exception and started == [jid] and store.job(jid)["state"] == "queued"


def test_the_results_table_leads_with_the_point_its_accuracy_and_cost(tmp_path, monkeypatch, store):
    at = open_section(app(tmp_path, monkeypatch), "Results table")
    df = next(d for d in at.dataframe if "design point" in d.value.columns).value
    cols = list(df.columns)
    assert cols[:4] == ["design point", "1x1 convs", "accuracy %", "± CI95"]
    lat, energy = (next(c for c in cols if c.startswith(w + " ")) for w in ("latency", "energy"))
    assert lat.split()[1] in ("ns", "µs", "ms") and energy.split()[1] in ("nJ", "µJ", "mJ")
    assert cols.index("accuracy %") < cols.index(lat) < cols.index(energy) < cols.index("BN")
    assert not any("_" in c for c in cols)  # readable names, no store keys
    assert not df.isna().any().any() and not (df.astype(str) == "None").any().any()  # a dash where no value


def test_any_fault_rate_and_sa0_can_be_evaluated_from_the_page(tmp_path, monkeypatch, store):
    import json

    from dse.run import jobs
    from tests.fixtures import fake_result

    monkeypatch.setattr(jobs, "start_worker", lambda st_, jid: None)  # the job is recorded, no process started
    at = app(tmp_path, monkeypatch, data=str(tmp_path / "d"))
    at.sidebar.number_input(key="fault_rate").set_value(15.0).run()  # a rate the shipped grid never ran
    assert metric(at, "Accuracy under faults") == "—"
    at.sidebar.radio(key="fault_model").set_value("sa0").run()
    assert "Evaluate at 15% SA0 faults" in at.button(key="evaluate").label
    at.button(key="evaluate").click().run()
    cfg = json.loads(Store(tmp_path / "results.sqlite").jobs().config.iloc[0])
    assert cfg["fault_rates"] == [0.15] and cfg["fault_model"] == "sa0" and cfg["bn"] == "chip"
    p = DesignPoint("resnet20", 1.0, 1, "default", 0.3)  # its SA0 result lands: the page shows it, not SA1's
    sha = store.points().set_index("point_id").checkpoint_sha[p.point_id]
    add_result(store, p, sha, {**fake_result(0.15, 42.0, bn="chip"), "fault_model": "sa0"})
    at.run()
    assert metric(at, "Accuracy under faults") == f"{fake_result(0.15, 42.0)['mean']:.2f}%"
    assert "on a chip with 15% SA0 faults" in at.subheader[0].value
    at.sidebar.radio(key="fault_model").set_value("sa1").run()
    assert metric(at, "Accuracy under faults") == "—"


def test_the_loss_against_a_p0_model_is_never_a_silent_stand_in(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    at.sidebar.select_slider(key="width").set_value(1.6).run()  # no p=0 model of the 1.6x architecture
    p = DesignPoint("resnet20", 1.6, 1, "default", 0.3)
    assert metric(at, "Loss vs own fault-free") == f"{accuracy_model(p, 0.0) - accuracy_model(p, 0.1):.2f} pts"
    assert "Loss vs p=0 model: — (no p=0 model of this architecture)" in [c.value for c in at.caption]


def test_the_accuracy_target_starts_over_when_the_fault_rate_changes(tmp_path, monkeypatch, store):
    from dse.view import explore

    at = app(tmp_path, monkeypatch)
    at.number_input(key="target").set_value(89.0).run()
    at.sidebar.number_input(key="fault_rate").set_value(30.0).run()
    table = explore.design_table(store, explore.SA1.at(0.3), "paper", bn=explore.DEFAULT_PROTOCOL)
    want = explore.default_target(table)
    assert at.number_input(key="target").value == want != 89.0
    assert not any("reaches 89.0%" in w.value for w in at.warning)
    open_section(at, "Yield")
    assert at.number_input(key="yield_target").value == want  # the yield's target starts from the same median
    open_section(at, "Pareto & recommendation")
    at.sidebar.number_input(key="fault_rate").set_value(15.0).run()  # nothing evaluated at 15%
    assert at.number_input(key="target").value == want  # kept: no jump to an arbitrary 85
    open_section(at, "Yield")
    assert at.number_input(key="yield_target").value == want


def test_trained_but_unevaluated_point_offers_evaluation(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch, data="somewhere")
    at.sidebar.radio(key="mapping").set_value("1x1-on-crossbar").run()
    assert metric(at, "Accuracy under faults") == "—"
    assert "Evaluate at 10% SA1 faults" in at.button(key="evaluate").label


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

    at = open_section(app(tmp_path, monkeypatch), "Calibration images")
    at.sidebar.radio(key="mapping").set_value("1x1-on-crossbar").run()  # a point not evaluated at all
    assert any("No per-chip calibration sweep" in i.value for i in at.info)
    p = DesignPoint("resnet20", 1.0, 1, "default", 0.3)
    sha = store.points().set_index("point_id").checkpoint_sha[p.point_id]
    add_result(store, p, sha, fake_result(0.1, 80.0, bn="chip", calib_images=32))
    at = open_section(app(tmp_path, monkeypatch), "Calibration images")
    assert not at.exception and not any("No per-chip calibration sweep" in i.value for i in at.info)
    curve = next(d for d in at.dataframe if "images per chip (0: paper)" in d.value.columns).value
    assert list(curve["images per chip (0: paper)"]) == [0, 32, 500]
    assert list(curve["accuracy %"].round(2)) == [round(accuracy_model(p, 0.1, "paper"), 2), 80.0,
                                                  round(accuracy_model(p, 0.1, "chip"), 2)]


def test_sidebar_says_why_the_cost_models_differ(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    assert any(c.value.startswith("Why they differ:") and "throughput" in c.value and "interval" in c.value
               for c in at.sidebar.caption)
    like = next(c.value for c in at.caption if c.value.startswith("Like with like"))
    assert "2.63 µs" in like and "48.23 µs" in like  # paper's interval beside isaac's, and isaac's latency


def test_hardware_knobs_change_the_shown_cost(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    at.sidebar.radio(key="cost_model").set_value("isaac").run()
    assert metric(at, "Latency (isaac)") == "48.23 µs" and metric(at, "Interval (isaac)") == "2.63 µs"
    for m in ("Area (isaac)", "Peak power (isaac)", "Average power (isaac)", "TOPS/W (isaac)", "TOPS/mm² (isaac)"):
        assert metric(at, m) not in ("", "—")
    power = metric(at, "Peak power (isaac)")
    at.sidebar.number_input(key="hw_xbar_size").set_value(256).run()  # 256 columns per ADC: a 200 ns cycle
    assert not at.exception and not at.sidebar.error
    assert metric(at, "Latency (isaac)") == "33.03 µs"  # a 200 ns cycle, and layers replicated to match
    assert any("crossbars of 256x256" in c.value for c in at.caption)
    at.sidebar.number_input(key="hw_adc_bits").set_value(10).run()
    assert metric(at, "Peak power (isaac)") != power
    at.sidebar.number_input(key="hw_xbar_size").set_value(4).run()  # not allowed: one line, defaults used
    assert not at.exception
    error = at.sidebar.error[0].value
    assert "xbar_size" in error and "from 8 to 1024" in error and "got 4" in error and "\n" not in error
    assert metric(at, "Latency (isaac)") == "48.23 µs"
    at.sidebar.number_input(key="hw_xbar_size").set_value(128).run()
    at.sidebar.number_input(key="hw_adc_bits").set_value(8).run()
    at.sidebar.number_input(key="hw_chips").set_value(1).run()
    assert not at.sidebar.error and metric(at, "Latency (isaac)") == "48.23 µs"  # ResNet20 fits on one chip


def test_spatial_defects_tab_switches_fault_models_and_shows_map_accuracy_and_lifetime(tmp_path, monkeypatch, store):
    from dse.core.io.checkpoint import load_checkpoint
    from tests.fixtures import fake_result

    p = DesignPoint("resnet20", 1.0, 1, "default", 0.3)
    sha = load_checkpoint(tmp_path / "checkpoints" / "resnet20-w1-k1-default-p0.3.safetensors").sha256
    for m in ("clustered", "rows"):  # made-up accuracies in the store, as spatial-report records them: page logic only
        for name in (m, m + "+remap"):
            for f in (0.1, 0.2, 0.3):
                r = fake_result(f, 80.0 - 30 * f - (5 if m == "rows" else 0), n=3, bn="chip")
                add_result(store, p, sha, {**r, "fault_model": name, "test_images": 1000})
    at = app(tmp_path, monkeypatch)
    assert not at.exception
    at.sidebar.radio(key="fault_model").set_value("clustered").run()  # the tab follows the sidebar
    open_section(at, "Spatial defects")  # drawn on opening: no toggle first
    assert not [r for r in at.radio if r.key == "sp_model"]  # no fault model of its own
    assert any("Fault model, rate and BN protocol come from the sidebar: clustered at 10%" in c.value
               for c in at.caption)
    assert any(c.key == "sp_map" for c in at.get("plotly_chart"))
    assert any(c.key == "sp_accuracy" for c in at.get("plotly_chart"))
    assert any(c.key == "sp_lifetime" for c in at.get("plotly_chart"))
    assert any("5 chips × 1,000 images" in c.value or "chips ×" in c.value for c in at.caption)  # its sample
    at.sidebar.radio(key="fault_model").set_value("rows").run()
    at.toggle(key="sp_remap").set_value(True).run()
    assert not at.exception
    assert any(c.key == "sp_remapped" for c in at.get("plotly_chart"))
    at.text_input(key="sp_traj").set_value("0:0.1,6:0.05").run()
    assert any("must not decrease" in e.value for e in at.error)


def test_spatial_defects_tab_shows_the_stores_evaluations_of_the_chosen_fault_model(tmp_path, monkeypatch, store):
    from dse.core.io.checkpoint import load_checkpoint
    from tests.fixtures import fake_result

    p = DesignPoint("resnet20", 1.0, 1, "default", 0.3)
    sha = load_checkpoint(tmp_path / "checkpoints" / "resnet20-w1-k1-default-p0.3.safetensors").sha256
    add_result(store, p, sha, {**fake_result(0.1, 70.0, bn="chip"), "fault_model": "rows+remap"})
    at = app(tmp_path, monkeypatch)
    at.sidebar.radio(key="fault_model").set_value("rows").run()
    open_section(at, "Spatial defects")
    assert not any(c.key == "sp_stored" for c in at.get("plotly_chart"))  # none under rows, as placed
    at.toggle(key="sp_remap").set_value(True).run()
    assert not at.exception
    assert any(c.key == "sp_stored" for c in at.get("plotly_chart"))


def test_the_page_and_the_command_line_answer_a_yield_query_alike_by_default(tmp_path, monkeypatch, store, capsys):
    """One BN default (dse/domain/faultspec.py): the page opens on it, and `dse yield` without --bn reads the same
    evaluation, so both give the same yield and interval; `--bn paper` and the page's "paper" agree too."""
    import json

    from dse.cli import main
    from dse.domain.bn import DEFAULT_BN, DEFAULT_CALIB_IMAGES, bn_label

    ckpt = str(tmp_path / "checkpoints" / "resnet20-w1-k1-default-p0.3.safetensors")  # the page's default point
    target = 89.5  # the made-up chips at 10% straddle it under the chip protocol, and all miss it under the paper's
    at = open_section(app(tmp_path, monkeypatch), "Yield")
    assert at.sidebar.radio(key="bn").value == DEFAULT_BN
    assert at.sidebar.number_input(key="calib_images").value == DEFAULT_CALIB_IMAGES
    for bn in (DEFAULT_BN, "paper"):
        at.sidebar.radio(key="bn").set_value(bn).run()
        at.number_input(key="yield_target").set_value(target).run()
        assert not at.exception
        flag = [] if bn == DEFAULT_BN else ["--bn", bn]
        assert main(["yield", ckpt, "--fault-rate", "0.1", "--target", "89.5", *flag, "--store",
                     str(store.path), "--json"]) == 0
        cli = json.loads(capsys.readouterr().out)
        assert cli["bn_protocol"] == bn_label(bn, DEFAULT_CALIB_IMAGES)
        assert metric(at, "Chip yield") == f"{cli['yield']:.1%}"
        assert any(c.value.startswith(f"{cli['k']} of {cli['n']} chips") and
                   f"[{cli['low']:.1%}, {cli['high']:.1%}] · BN: {cli['bn_protocol']}" in c.value for c in at.caption)
        assert (cli["k"] > 0) == (bn == DEFAULT_BN)  # the two protocols' answers differ: the default was read


def chart(at, key):
    """A plotly chart's figure as JSON, by its element key."""
    import json

    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def test_best_p_is_marked_only_where_two_or_more_rates_were_evaluated(tmp_path, monkeypatch, store):
    from dse.core.io.checkpoint import load_checkpoint
    from tests.fixtures import fake_result

    p = DesignPoint("resnet20", 1.0, 1, "default", 0.3)
    sha = load_checkpoint(tmp_path / "checkpoints" / "resnet20-w1-k1-default-p0.3.safetensors").sha256
    add_result(store, p, sha, fake_result(0.15, 80.0, bn="chip"))  # one p only
    at = open_section(app(tmp_path, monkeypatch), "Fault tolerance")
    assert not at.exception
    fig = chart(at, "heatmap")
    assert "15%" in fig["data"][0]["x"]  # drawn ...
    best = next(t for t in fig["data"] if t.get("name") == "best p per fault rate")
    assert "15%" not in best["x"] and "10%" in best["x"]  # ... but no "best" among one
    title = fig["layout"]["title"]["text"]
    assert "BN: chip (N=500)" in title and "chips × 10,000 images" in title and "<br>" in title  # two lines


def test_teaching_follows_the_sidebars_fault_model_and_shows_the_layer_at_its_size(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    at.sidebar.radio(key="fault_model").set_value("sa0").run()
    assert not at.exception  # nothing evaluated under SA0: every figure says so
    open_section(at, "Teaching")  # drawn on opening: no toggle first
    assert not at.exception and not at.toggle
    text = " ".join(m.value for m in at.markdown)
    assert "SA0" in text and "largest level of its sign" in text and "reads its weight as 0" not in text
    title = chart(at, "faultmap")["layout"]["title"]["text"]
    assert title.startswith("SA0 fault map of") and "SA1" not in title and "128x128 tile" not in title.split("<br>")[0]
    assert at.selectbox(key="teach_layer").value == "conv1"
    assert "all 27x16 cells" in title  # ResNet20's first layer as it is: 3x3x3 inputs, 16 outputs


def test_cost_cards_come_in_groups_that_say_what_they_cover(tmp_path, monkeypatch, store):
    """System figures (the paper's 64 chips) and the design's own (its crossbars, its chips) never sit unlabelled
    side by side (#38 item 3)."""
    at = app(tmp_path, monkeypatch)
    heads = [m.value for m in at.markdown if m.value.startswith("**")]
    assert any(h.startswith("**Per image (paper cost model)") for h in heads)
    assert any("System: all 64 ISAAC chips" in h for h in heads)
    assert any(h.startswith("**This design's own: one copy of its weights") for h in heads)
    assert metric(at, "Area (paper)").endswith(("mm²", "cm²")) and metric(at, "Area (one copy)").endswith("mm²")
    assert metric(at, "Chips it needs") == "1" and int(metric(at, "Crossbars (one copy)")) > 1
    at.sidebar.radio(key="cost_model").set_value("isaac").run()
    assert any("this design and its replicas fill" in m.value for m in at.markdown)


@pytest.mark.parametrize("faults, named", [(None, "SA1"), ("sa0", "SA0")])
def test_lesson_mode_walks_four_steps_from_the_shipped_results_without_data(tmp_path, monkeypatch, store,
                                                                              faults, named):
    monkeypatch.setenv("DSE_STORE", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("DSE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("DSE_DATA", "")  # no CIFAR-10 anywhere
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["lesson"] = "1"
    if faults:
        at.query_params["faults"] = faults
    at.run()
    assert not at.exception
    assert [h.value for h in at.header] == ["1. A chip's stuck cells", "2. Without drop-connect",
                                            "3. With drop-connect", "4. With per-chip calibration"]
    assert [c.key for c in at.get("plotly_chart")] == [f"lesson-{i}" for i in (1, 2, 3, 4)]
    sentences = [m.value for m in at.markdown if m.value.endswith(".")][-4:]
    assert len(sentences) == 4 and "stuck" in sentences[0] and f"({named}" in sentences[0]
    p0, p3 = DesignPoint("resnet20", 1.0, 1, "default", 0.0), DesignPoint("resnet20", 1.0, 1, "default", 0.3)
    assert f"{accuracy_model(p0, 0.3, 'paper'):.1f}%" in sentences[1]  # the paper's protocol first
    assert f"{accuracy_model(p3, 0.3, 'paper'):.1f}%" in sentences[2]
    assert f"{accuracy_model(p3, 0.3, 'chip'):.1f}%" in sentences[3]  # per-chip calibration last
    assert not at.sidebar.radio and not at.toggle  # nothing to find or flip


def test_the_app_file_is_only_the_pages_frame():
    """Sections live in dse/view/pages/, one module each (#36): app.py sets the page up and routes."""
    assert len(Path(APP).read_text().splitlines()) < 150


SECTIONS = ["Pareto & recommendation", "Fault tolerance", "1x1 mapping (Fig. 7)", "Calibration images", "Teaching",
            "Jobs", "Results table", "Yield", "Spatial defects"]


def test_every_section_opens_and_only_the_open_one_is_drawn(tmp_path, monkeypatch, store):
    at = app(tmp_path, monkeypatch)
    assert [t.label for t in at.tabs] == SECTIONS
    drawn = {}
    for section in SECTIONS:
        open_section(at, section)
        assert not at.exception, (section, at.exception)
        assert metric(at, "Accuracy under faults")  # the header stands over every section
        drawn[section] = {c.key for c in at.get("plotly_chart")}
    assert {"pareto-latency_ns", "breakdown-energy"} <= drawn["Pareto & recommendation"]
    assert drawn["Fault tolerance"] >= {"curves", "heatmap"} and "pareto-latency_ns" not in drawn["Fault tolerance"]
    assert drawn["Teaching"] == {"faultmap"} and "sp_map" in drawn["Spatial defects"]
    assert not drawn["Jobs"] and "yield-curve" in drawn["Yield"]


def test_a_link_opens_a_section_and_section_settings_survive_a_switch(tmp_path, monkeypatch, store):
    monkeypatch.setenv("DSE_STORE", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("DSE_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("DSE_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["section"] = "Teaching"
    at.run()
    assert not at.exception and any(c.key == "faultmap" for c in at.get("plotly_chart"))
    del at.query_params["section"]  # from here the browser's address follows the tab bar, as AppTest's does not
    open_section(at, "Pareto & recommendation")
    at.number_input(key="target").set_value(80.0).run()
    at.radio(key="objective").set_value("energy_uj").run()
    open_section(at, "Yield")
    open_section(at, "Pareto & recommendation")
    assert at.number_input(key="target").value == 80.0 and at.radio(key="objective").value == "energy_uj"


def test_first_render_imports_no_torch_and_teaching_renders_without_a_toggle(tmp_path, store):
    """#38: the first render reads the store alone; opening Teaching draws its map at once (and only then
    imports torch, for the layer shapes)."""
    import subprocess
    import sys

    from dse.results.catalog import sync

    sync(store, [tmp_path / "checkpoints"])  # what the first start does
    code = ("import sys; from streamlit.testing.v1 import AppTest; "
            f"at = AppTest.from_file({APP!r}, default_timeout=120).run(); "
            "assert not at.exception, at.exception; print('torch' in sys.modules); "
            "at.session_state['section'] = 'Teaching'; at.run(); assert not at.exception, at.exception; "
            "print('torch' in sys.modules, [c.key for c in at.get('plotly_chart')])")
    env = {**__import__("os").environ, "DSE_STORE": str(tmp_path / "results.sqlite"),
           "DSE_CHECKPOINTS": str(tmp_path / "checkpoints"), "DSE_RUNS": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-2:] == ["False", "True ['faultmap']"]


def test_processor_knobs_feed_both_cost_models_and_are_checked_like_the_cli(tmp_path, monkeypatch, store):
    from dse.core.cost.per_image import Processor, estimate

    at = app(tmp_path, monkeypatch)
    p = DesignPoint("resnet20", 1.0, 1, "default", 0.3)  # its 1x1 shortcuts and fc run on the processor
    before = metric(at, "Energy (paper)")
    at.sidebar.number_input(key="hw_cpu_pj_per_mac").set_value(200.0).run()
    assert not at.exception and not at.sidebar.error
    want = estimate(p.network, p.width, p.shortcut_kernel, p.mapping, "paper", processor=Processor(100e9, 200.0))
    from dse.view import units

    assert metric(at, "Energy (paper)") == units.fmt(want["totals"]["energy_uj"], "uJ") != before
    at.sidebar.radio(key="cost_model").set_value("isaac").run()
    want = estimate(p.network, p.width, p.shortcut_kernel, p.mapping, "isaac", processor=Processor(100e9, 200.0))
    assert metric(at, "Energy (isaac)") == units.fmt(want["totals"]["energy_uj"], "uJ")
    at.sidebar.number_input(key="hw_cpu_gmacs").set_value(0.0).run()  # as `dse cost --cpu-gmacs 0`: refused
    error = at.sidebar.error[0].value
    assert "cpu_gmacs" in error and "from 0.001 to" in error and "got 0.0" in error and "\n" not in error


def test_bits_per_cell_feed_the_fault_model_and_the_isaac_cost_as_the_cli_does(tmp_path, monkeypatch, store):
    import json

    from dse.domain.faultspec import CELL_BITS
    from dse.run import jobs

    monkeypatch.setattr(jobs, "start_worker", lambda st_, jid: None)  # the job is recorded, no process started
    at = app(tmp_path, monkeypatch, data=str(tmp_path / "d"))
    assert list(at.sidebar.select_slider(key="hw_bits_per_cell").options) == [str(b) for b in CELL_BITS]
    at.sidebar.radio(key="cost_model").set_value("isaac").run()
    adc = metric(at, "ADC resolution (isaac)")
    at.sidebar.select_slider(key="hw_bits_per_cell").set_value(2).run()
    assert not at.exception and metric(at, "ADC resolution (isaac)") == "8 bits" != adc  # ISAAC's 2-bit cells
    assert "on a chip with 10% SA1+bpc:2 faults" in at.subheader[0].value
    assert metric(at, "Accuracy under faults") == "—"  # the SA1 results are one cell per weight: not these
    at.button(key="evaluate").click().run()
    cfg = json.loads(Store(tmp_path / "results.sqlite").jobs().config.iloc[0])
    assert cfg["fault_model"] == "sa1+bpc:2"  # as `dse evaluate --fault-model sa1 --bits-per-cell 2` names it
    at.sidebar.radio(key="fault_model").set_value("rows").run()  # lines on tiles take no bits per cell
    error = at.sidebar.error[0].value
    assert "bits per cell 2" in error and "sa1 and sa0" in error and "\n" not in error
    assert "on a chip with 10% stuck-row faults" in at.subheader[0].value
