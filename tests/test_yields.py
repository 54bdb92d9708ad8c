"""Chip yield: the exact binomial interval, the share of chips meeting a target, the view's curves and
recommendation, the `yield` command and the app's Yield tab (tiny made-up stores, never the repo's)."""
import json

import numpy as np
import pandas as pd
import pytest

from dse.cli import main
from dse.domain.bn import Chip, Paper
from dse.domain.errors import DSEError
from dse.domain.stats import chip_yield, clopper_pearson
from dse.domain.point import DesignPoint
from dse.view import charts, yields
from dse.view.explore import SA1
from tests.fixtures import accuracy_model, build_store, fake_result
from tests.test_cli import run_json


# ------------------------------------------------------------------ clopper_pearson
def test_clopper_pearson_edges_have_closed_forms():
    low, high = clopper_pearson(0, 10)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-12)  # 0.3085
    low, high = clopper_pearson(10, 10)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 10), abs=1e-12)  # 0.6915
    assert clopper_pearson(0, 10, 0.99)[1] == pytest.approx(1 - 0.005 ** (1 / 10), abs=1e-12)


def test_clopper_pearson_matches_textbook_values():
    # 5 of 10: (0.1871, 0.8129); 1 of 20: (0.0013, 0.2487) (Clopper & Pearson 1934 tables; e.g. R binom.test)
    assert clopper_pearson(5, 10) == pytest.approx((0.1871, 0.8129), abs=5e-5)
    assert clopper_pearson(1, 20) == pytest.approx((0.0013, 0.2487), abs=5e-5)


@pytest.mark.parametrize("k,n", [(1, 7), (3, 10), (17, 40), (99, 100)])
def test_clopper_pearson_inverts_the_binomial_tails(k, n):
    """Its defining property: at the low end P(X >= k) = a/2, at the high end P(X <= k) = a/2."""
    from scipy.stats import binom

    low, high = clopper_pearson(k, n, 0.9)
    assert binom.sf(k - 1, n, low) == pytest.approx(0.05, abs=1e-9)
    assert binom.cdf(k, n, high) == pytest.approx(0.05, abs=1e-9)
    assert low < k / n < high


@pytest.mark.parametrize("args,match", [
    ((0, 0), "n must be a positive integer, got 0"),
    ((3, 2), "k must be an integer in [0, 2], got 3"),
    ((-1, 5), "got -1"),
    ((1.5, 5), "got 1.5"),
    ((1, 5, 0.0), "confidence level must be in (0, 1)"),
    ((1, 5, 1.0), "got 1.0"),
    ((1, 5, float("nan")), "got nan"),
])
def test_clopper_pearson_rejects_bad_values_in_one_line(args, match):
    with pytest.raises(DSEError) as e:
        clopper_pearson(*args)
    assert match in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ chip_yield
def test_chip_yield_counts_chips_at_or_above_the_target():
    y = chip_yield([80.0, 85.0, 85.0, 90.0], 85.0)
    assert (y["k"], y["n"], y["yield"]) == (3, 4, 0.75)  # equal to the target counts
    assert (y["low"], y["high"]) == clopper_pearson(3, 4)
    assert chip_yield([80.0, 85.0], 100.0)["yield"] == 0.0 and chip_yield([80.0, 85.0], 0.0)["yield"] == 1.0
    assert chip_yield([100.0], 100.0)["k"] == 1


def test_chip_yield_edges_use_the_one_sided_ends():
    none, every = chip_yield([50.0] * 10, 60.0), chip_yield([70.0] * 10, 60.0)
    assert none["low"] == 0.0 and none["high"] == pytest.approx(1 - 0.025 ** 0.1)
    assert every["high"] == 1.0 and every["low"] == pytest.approx(0.025 ** 0.1)


@pytest.mark.parametrize("accs,target,level,match", [
    ([], 50.0, 0.95, "n = 0"),
    ([80.0], -1.0, 0.95, "target must be a percentage in [0, 100], got -1.0"),
    ([80.0], 100.5, 0.95, "got 100.5"),
    ([80.0], float("nan"), 0.95, "got nan"),
    ([80.0], 50.0, 1.5, "confidence level must be in (0, 1)"),
    ([80.0, float("nan")], 50.0, 0.95, "finite"),
    (["x"], 50.0, 0.95, "must be numbers"),
])
def test_chip_yield_rejects_bad_values_in_one_line(accs, target, level, match):
    with pytest.raises(DSEError) as e:
        chip_yield(accs, target, level)
    assert match in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ the view (plain DataFrames)
def evals_frame(chips: dict[str, list[float]], fault_rate: float = 0.1, bn: str = "chip") -> pd.DataFrame:
    """Evaluation rows as store.evaluations() returns them, one per point id."""
    rows = []
    for i, (pid, accs) in enumerate(chips.items()):
        rows.append({"point_id": pid, "network": "resnet20", "width": 1.0 + i, "shortcut_kernel": 1,
                     "mapping": "default", "dropconnect": 0.3, "fault_rate": fault_rate, "fault_model": "sa1",
                     "recalibrate": 1, "rescale": 1, "bn": bn, "calib_images": 500 if bn == "chip" else 0,
                     "test_images": 10000, "n": len(accs), "updated": 1.0, "accuracies": json.dumps(accs),
                     "mean": float(np.mean(accs)), "worst": float(np.min(accs))})
    return pd.DataFrame(rows)


def test_point_yield_reads_the_points_chips_under_the_protocol():
    ev = evals_frame({"a": [88.0, 90.0, 92.0, 94.0]})
    y = yields.point_yield(ev, "a", SA1.at(0.1), 91.0, bn=Chip(500))
    assert (y["k"], y["n"], y["bn_protocol"]) == (2, 4, "chip (N=500)")
    assert yields.point_yield(ev, "a", SA1.at(0.1), 91.0, bn=Paper()) is None  # no paper-protocol evaluation
    assert yields.point_yield(ev, "a", SA1.at(0.2), 91.0, bn=Chip()) is None  # nor at another fault rate


def test_yield_curve_falls_with_the_target_inside_its_band():
    ev = evals_frame({"a": list(np.linspace(85, 95, 30))})
    c = yields.yield_curve(ev, "a", SA1.at(0.1), bn=Chip(500))
    assert len(c) == 201 and (np.diff(c["yield"]) <= 0).all()
    assert c["yield"].iloc[0] == 1.0 and c["yield"].iloc[-1] == 0.0  # the targets span every chip
    assert ((c.low <= c["yield"]) & (c["yield"] <= c.high)).all() and set(c.bn_protocol) == {"chip (N=500)"}
    assert yields.yield_curve(ev, "b", SA1.at(0.1), bn=Chip()).empty


def test_recommendation_uses_the_lower_bound_not_the_estimate():
    """A cheap design with 5 of 5 chips (estimate 100%, low end 48%) against a dear one with 58 of 60
    (estimate 96.7%, low end 88.5%): at 'at least 85%' only the dear one is proven."""
    ev = evals_frame({"cheap": [95.0] * 5, "dear": [95.0] * 58 + [80.0] * 2})
    table = pd.DataFrame({"point_id": ["cheap", "dear"], "label": ["cheap", "dear"],
                          "latency_ns": [1.0, 2.0], "energy_uj": [5.0, 1.0]})
    t = yields.with_yields(table, ev, SA1.at(0.1), 90.0, bn=Chip(500))
    assert list(t.chips) == [5, 60] and list(t.chips_meeting) == [5, 58]
    assert yields.recommend(t, 0.85)["label"] == "dear"
    assert yields.recommend(t, 0.85, bound="estimate")["label"] == "cheap"
    assert yields.recommend(t, 0.85, "energy_uj")["label"] == "dear"
    assert yields.recommend(t, 0.99) is None
    with pytest.raises(DSEError, match="minimum yield must be a fraction in \\[0, 1\\].*got 90"):
        yields.recommend(t, 90)


def test_yield_chart_draws_the_band_and_the_target():
    c = yields.yield_curve(evals_frame({"a": [88.0, 90.0, 92.0]}), "a", SA1.at(0.1), bn=Chip(500))
    fig = charts.yield_curve(c, "t", target=90.0)
    assert [tr.name for tr in fig.data][1:] == ["95% Clopper-Pearson interval", "yield"]
    assert fig.data[1].fill == "tonexty" and max(fig.data[2].y) == 100.0  # percent on the chart
    assert fig.layout.shapes and fig.layout.shapes[0].x0 == 90.0
    assert "no evaluation" in charts.yield_curve(c.iloc[0:0], "t").layout.annotations[0].text


# ------------------------------------------------------------------ the command
POINT = DesignPoint("resnet20", 1.0, 1, "default", 0.3)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("yield")
    store, ckdir = build_store(root)
    ckpt = next(p for p in ckdir.glob("*.safetensors") if p.name.startswith("resnet20-w1-k1-default-p0.3"))
    return root, store, str(ckpt)


def chips(rate: float, bn: str) -> list[float]:
    return fake_result(rate, accuracy_model(POINT, rate, bn), bn=bn)["accuracies"]


def test_the_command_prints_yield_and_interval_naming_the_protocol(seeded, capsys):
    root, store, ckpt = seeded
    target = accuracy_model(POINT, 0.1, "chip")  # 6 of the 10 made-up chips are at or above their mean
    argv = ["yield", ckpt, "--fault-rate", "0.1", "--target", f"{target!r}", "--bn", "chip",
            "--store", str(store.path)]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = chip_yield(chips(0.1, "chip"), target)
    assert (out["k"], out["n"], out["yield"]) == (want["k"], want["n"], want["yield"]) == (6, 10, 0.6)
    assert (out["low"], out["high"]) == pytest.approx((want["low"], want["high"]))
    assert out["bn_protocol"] == "chip (N=500)" and out["design_point"] == "resnet20 1x k1 p=0.3"
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "60.0% (6 of 10 chips)" in text and "BN: chip (N=500)" in text
    assert f"[{want['low']:.1%}, {want['high']:.1%}]" in text
    assert main(argv[:-2] + ["--bn", "paper", "--store", str(store.path), "--json"]) == 0  # the other protocol
    assert json.loads(capsys.readouterr().out)["k"] == chip_yield(chips(0.1, "paper"), target)["k"] == 0


@pytest.mark.parametrize("extra,match", [
    (["--fault-rate", "0.15", "--bn", "paper"], "python -m dse evaluate"),
    (["--fault-rate", "0.15", "--bn", "paper"], "--fault-rate 0.15 --bn paper --store"),
    (["--fault-rate", "0.1", "--bn", "chip", "--calib-images", "32"], "--bn chip --calib-images 32"),
    (["--fault-rate", "0.1", "--bn", "batch"], "--fault-rate 0.1 --bn batch --store"),
])
def test_without_an_evaluation_it_says_what_to_run(seeded, capsys, extra, match):
    root, store, ckpt = seeded
    assert main(["yield", ckpt, "--target", "90", "--store", str(store.path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no evaluation of" in err and match in err


def test_a_fresh_store_answers_from_the_checkpoint_folders_manifest(tmp_path, capsys):
    """As on a fresh clone: no store yet, the shipped manifest beside the checkpoint holds the evaluations."""
    from dse.results.catalog import write_manifest

    store, ckdir = build_store(tmp_path / "made", points=[POINT])  # (the fixture's points share their weights)
    write_manifest(store, ckdir)
    ckpt = next(p for p in ckdir.glob("*.safetensors") if p.name.startswith("resnet20-w1-k1-default-p0.3"))
    fresh = tmp_path / "fresh.sqlite"
    out = run_json(capsys, "yield", str(ckpt), "--fault-rate", "0.1", "--target", "0", "--bn", "chip",
                   "--store", str(fresh))
    assert (out["k"], out["n"], out["yield"]) == (10, 10, 1.0)


@pytest.mark.parametrize("argv,match", [
    (["--fault-rate", "0.1", "--target", "101"], "argument --target: expected a percentage in [0, 100], got '101'"),
    (["--fault-rate", "0.1", "--target", "nan"], "got 'nan'"),
    (["--fault-rate", "1.0", "--target", "90"], "rate must be in [0, 1)"),
    (["--fault-rate", "0.1", "--target", "90", "--bn", "chips"], "unknown BN protocol 'chips'"),
    (["--fault-rate", "0.1", "--target", "90", "--calib-images", "0"], "expected a positive integer, got '0'"),
    (["--target", "90"], "the following arguments are required: --fault-rate"),
])
def test_bad_values_give_one_line_and_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(["yield", "x.safetensors", *argv]))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_a_missing_checkpoint_gives_one_line(capsys, tmp_path):
    assert main(["yield", str(tmp_path / "nope.safetensors"), "--fault-rate", "0.1", "--target", "90"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------ the app
def test_the_yield_tab_shows_the_selected_points_yield(tmp_path, monkeypatch):
    from tests.test_app import app, metric, open_section

    build_store(tmp_path)
    at = open_section(app(tmp_path, monkeypatch), "Yield")
    assert not at.exception
    assert metric(at, "Chip yield") not in ("—", None)  # the default target gives a number at once
    target = accuracy_model(POINT, 0.1, "chip")
    at.number_input(key="yield_target").set_value(target).run()
    want = chip_yield(chips(0.1, "chip"), target)
    assert metric(at, "Chip yield") == f"{want['yield']:.1%}" == "60.0%"
    assert any(f"6 of 10 chips >= {target:g}%" in c.value and "BN: chip (N=500)" in c.value
               and f"[{want['low']:.1%}, {want['high']:.1%}]" in c.value for c in at.caption)
    # the recommendation: at 50% minimum yield by the lower bound, the 1x points (6 of 10: low 26%) fail and
    # the 1.6x point, all of whose chips clear this target, qualifies
    at.number_input(key="yield_min").set_value(50.0).run()
    assert any("resnet20 1.6x k1 p=0.3**" in s.value and "lower 95% bound" in s.value and "BN: chip (N=500)"
               in s.value for s in at.success)
    at.number_input(key="yield_min").set_value(100.0).run()
    assert any("No evaluated design's yield" in w.value for w in at.warning)
    at.sidebar.radio(key="bn").set_value("paper").run()  # every number follows the protocol
    at.number_input(key="yield_target").set_value(target).run()
    assert metric(at, "Chip yield") == f"{chip_yield(chips(0.1, 'paper'), target)['yield']:.1%}"
    assert any("BN: paper (Algorithm 1)" in c.value for c in at.caption if "chips >=" in c.value)


# ------------------------------------------------------------------ how many chips a claim needs
@pytest.mark.parametrize("min_yield, level, n", [(0.9, 0.95, 36), (0.95, 0.95, 72), (0.8, 0.95, 17),
                                                 (0.5, 0.95, 6), (0.0, 0.95, 1), (0.9, 0.9, 29)])
def test_chips_needed_is_the_smallest_all_pass_sample_that_proves_the_minimum(min_yield, level, n):
    from dse.domain.stats import chips_needed, provable_yield

    assert chips_needed(min_yield, level) == n
    assert provable_yield(n, level) >= min_yield
    assert n == 1 or provable_yield(n - 1, level) < min_yield  # one chip fewer cannot prove it
    assert provable_yield(20) == pytest.approx(0.8316, abs=1e-4)  # the shipped 20 chips: 83.2% at most


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, "x"])
def test_chips_needed_rejects_unprovable_minimums_in_one_line(bad):
    from dse.domain.stats import chips_needed

    with pytest.raises(DSEError) as e:
        chips_needed(bad)
    assert "\n" not in str(e.value)


def test_the_default_minimum_is_one_the_data_can_prove_and_the_note_says_how_many_chips():
    table = pd.DataFrame({"chips": [20.0, 20.0, np.nan]})
    assert yields.default_min_yield(table) == 0.8  # 20 chips prove at most 83.2%: 80%, not 90%
    assert yields.default_min_yield(pd.DataFrame({"chips": [100.0]})) == 0.95
    assert yields.default_min_yield(pd.DataFrame({"chips": [np.nan]})) == 0.5  # nothing evaluated
    note = yields.sample_note(table, 0.9)
    assert "needs 36 chips" in note and "at most 20 chips" in note and "83.2%" in note
    assert "needs 72 chips" in yields.sample_note(table, 0.95)
    assert "enough" in yields.sample_note(table, 0.8)


def test_the_yield_tab_says_how_many_chips_and_evaluates_them_in_one_click(tmp_path, monkeypatch):
    """The yield-sample rule on the page: a first minimum the 10 chips per point can prove (50%); at 90% it says
    36 chips are needed and one click queues an evaluation of the selected point on 36 chips."""
    from dse.results.store import Store
    from dse.run import jobs
    from tests.test_app import app, open_section

    started = []
    monkeypatch.setattr(jobs, "start_worker", lambda st_, jid: started.append(jid))
    build_store(tmp_path)
    at = open_section(app(tmp_path, monkeypatch, data=str(tmp_path / "d")), "Yield")
    assert not at.exception
    assert at.number_input(key="yield_min").value == 50.0  # 10 chips prove at most 69.2%: not 90%
    assert any("needs 6 chips" in i.value for i in at.info)
    at.number_input(key="yield_min").set_value(90.0).run()
    assert any("needs 36 chips" in i.value and "at most 10 chips" in i.value for i in at.info)
    button = at.button(key="yield_more")
    assert "36 chips (26 more than the 10 evaluated)" in button.label
    button.click().run()
    assert not at.exception and len(started) == 1
    job = Store(tmp_path / "results.sqlite").job(started[0])
    cfg = json.loads(job["config"])
    assert job["kind"] == "evaluate" and cfg["instances"] == 36 and cfg["fault_rates"] == [0.1]
    assert cfg["bn"] == "chip" and cfg["calib_images"] == 500


def test_more_chips_command_names_the_pages_faults_and_protocol():
    from dse.domain.faultspec import parse_fault_model
    from dse.view.state import ResultsSpec

    chip = yields.more_chips_command("m.safetensors", ResultsSpec(parse_fault_model("sa0", 0.2), Chip(32)), 36)
    assert chip == ("python -m dse evaluate m.safetensors --fault-rate 0.2 --instances 36 --bn chip "
                    "--calib-images 32 --fault-model sa0 --data PATH")
    paper = yields.more_chips_command("m.safetensors", ResultsSpec(SA1.at(0.1), Paper()), 36)
    assert paper == "python -m dse evaluate m.safetensors --fault-rate 0.1 --instances 36 --bn paper --data PATH"
