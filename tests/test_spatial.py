"""Spatial fault models on the placement, their names, and remapping a known map."""
import json
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
import torch

from dse.domain.errors import DSEError
from dse.core.faults.injector import FaultInjector
from dse.core.models import build_model
from dse.core.crossbar.placement import place
from dse.domain.faultspec import FaultSpec, check_fault_model, fault_model_name, parse_fault_model
from dse.core.faults.remap import lost, remap_tile, remap_tiles, to_logical, to_physical
from dse.core.faults.spatial import cell_maps, clusters, expected_area

SHAPES = {"a": (200, 16, 3, 3), "b": (64, 64, 3, 3), "c": (300, 40)}  # 2x2 + 5x1 + 1x3 = 12 tiles
PLACEMENT = place(SHAPES)
MODELS = ["sa1", "rows", "cols", "clustered", "clustered:8", "mixed", "mixed:0.2"]


def maps(name, rate, instance=0, seed=0, spares=0):
    return cell_maps(replace(parse_fault_model(name, rate), spares=spares), PLACEMENT, list(SHAPES.values()), instance,
                     seed=seed)


def injector(seed=0, width=0.5):
    torch.manual_seed(seed)
    return FaultInjector(build_model("resnet20", width))


# ---- names ----


def test_fault_model_names_are_canonical_and_keep_sa1s():
    assert check_fault_model("sa1") == "sa1" and check_fault_model("sa0") == "sa0"
    assert check_fault_model("clustered:4") == "clustered"  # the default is left out of the name
    assert check_fault_model("clustered:8.0") == "clustered:8"
    assert check_fault_model("mixed:0.3+remap:4") == "mixed:0.3+remap:4"
    assert check_fault_model("rows+remap:0") == "rows+remap"
    assert parse_fault_model("clustered").value == 4.0
    assert fault_model_name("cols", remap=True, spares=2) == "cols+remap:2"
    assert parse_fault_model("sa1+remap:2") == FaultSpec("sa1", None, True, 2)


@pytest.mark.parametrize("bad", ["sa2", "rows:3", "clustered:0.5", "clustered:x", "mixed:1.5", "sa1+remap:-1",
                                 "sa1+remap:999", "sa1+spares", "sa1+"])
def test_bad_fault_models_are_one_line_errors_naming_the_value(bad):
    with pytest.raises(DSEError) as e:
        check_fault_model(bad)
    assert "\n" not in str(e.value) and repr(bad) in str(e.value)


def test_spares_without_remap_are_refused():
    with pytest.raises(DSEError, match="--remap"):
        fault_model_name("sa1", spares=2)


# ---- the maps ----


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_each_model_hits_the_requested_cell_rate_on_average(name, rate):
    got = np.mean([maps(name, rate, instance=i).mean() for i in range(6)])
    assert abs(got - rate) < 0.025, (name, rate, got)


@pytest.mark.parametrize("name", MODELS)
def test_maps_are_reproducible_by_seed_and_nested_across_rates(name):
    a = maps(name, 0.2, instance=3, seed=1)
    assert np.array_equal(a, maps(name, 0.2, instance=3, seed=1))
    assert not np.array_equal(a, maps(name, 0.2, instance=3, seed=2))
    assert not np.array_equal(a, maps(name, 0.2, instance=4, seed=1))
    low, high = maps(name, 0.1, instance=3, seed=1), maps(name, 0.3, instance=3, seed=1)
    assert (low <= a).all() and (a <= high).all() and low.sum() < a.sum() < high.sum()
    assert not maps(name, 0.0).any()


@pytest.mark.parametrize("name", ["rows", "cols", "clustered", "mixed"])
def test_spare_columns_leave_the_tiles_own_map_unchanged(name):
    plain, spared = maps(name, 0.2, instance=1), maps(name, 0.2, instance=1, spares=4)
    assert spared.shape == plain.shape[:2] + (132,) and np.array_equal(spared[:, :, :128], plain)


def test_rows_faults_lie_on_whole_lines_of_the_placement():
    m = maps("rows", 0.2)
    per_row = m.any(axis=2)
    assert (m.all(axis=2) == per_row).all() and per_row.any()  # a row is all stuck or all healthy
    inj = injector()
    hit = inj.fault_maps(0, 0.2, fault_model="rows")
    for name, lp in inj.placement.layers.items():  # weights sharing a physical row share its fate
        key = lp.tile * 128 + lp.row
        for k in np.unique(key)[:50]:
            assert len(np.unique(hit[name].numpy()[key == k])) == 1


def test_cols_faults_lie_on_whole_columns():
    m = maps("cols", 0.2)
    assert (m.all(axis=1) == m.any(axis=1)).all() and m.any()


def test_clusters_are_spatially_correlated():
    m = clusters(np.random.default_rng(0), 20, 128, 128, 0.1, 6.0)
    right_given_stuck = (m[:, :, 1:] & m[:, :, :-1]).sum() / m[:, :, :-1].sum()
    assert right_given_stuck > 0.5  # independent cells would give the rate, 0.1
    assert expected_area(1.0, 128, 128) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["rows", "clustered", "mixed"])
def test_injected_weights_hit_the_rate_and_read_zero(name):
    inj = injector()
    clean, faulty = inj.weights(None, 0.0), inj.weights(0, 0.2, fault_model=name, rescale=False)
    zeroed = sum(((faulty[k] == 0) & (clean[k] != 0)).sum().item() for k in faulty)
    total = sum((v != 0).sum().item() for v in clean.values())
    assert 0.1 < zeroed / total < 0.3  # one chip's spatial map: its rate scatters more than SA1's


def test_sa1_on_cells_is_sa1_per_weight():
    inj = injector()
    per_weight = inj.fault_maps(2, 0.15)
    cells = inj.cell_maps(2, 0.15)
    for name, lp in inj.placement.layers.items():
        assert np.array_equal(cells[lp.tile, lp.row, lp.col], per_weight[name].numpy())


# ---- remapping ----


def random_tile(seed, spares=0, rate=0.2):
    g = np.random.default_rng(seed)
    fault = g.random((128, 128 + spares)) < rate
    cost = np.abs(g.standard_normal((128, 128))) * (g.random((128, 128)) < 0.8)  # some empty cells
    return fault, cost


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("spares", [0, 4])
def test_remap_never_loses_more_and_is_a_permutation(seed, spares):
    fault, cost = random_tile(seed, spares)
    rows, cols = remap_tile(fault, cost)
    assert sorted(rows) == list(range(128))
    assert len(set(cols)) == 128 and cols.min() >= 0 and cols.max() < 128 + spares
    identity = np.arange(128)
    assert lost(fault, cost, rows, cols) <= lost(fault, cost, identity, identity)
    assert lost(fault, cost, rows, cols) < lost(fault, cost, identity, identity)  # random maps leave room


def test_remap_round_trip_restores_the_layout():
    fault, cost = random_tile(5, spares=4)
    rows, cols = remap_tile(fault, cost)
    physical = to_physical(cost, rows, cols, 132)
    assert np.array_equal(to_logical(physical, rows, cols), cost)
    lost_cells = (physical * fault).sum()  # what the remapped layout loses, counted on the physical cells
    assert lost_cells == pytest.approx(lost(fault, cost, rows, cols))


def test_remap_of_rows_moves_weights_off_stuck_lines():
    fault = np.zeros((1, 128, 128), dtype=bool)
    fault[0, :10] = True  # ten stuck word lines
    cost = np.zeros((1, 128, 128))
    cost[0, :64] = 1.0  # only half the rows hold weights
    rows, cols = remap_tiles(fault, cost)
    assert lost(fault[0], cost[0], rows[0], cols[0]) == 0


def test_remapped_evaluation_loses_no_more_weight_than_blind():
    inj = injector()
    loss = inj.loss_cells("sa1")
    clean = inj.weights(None, 0.0)

    def lose(maps):
        return sum(float(clean[f"{k}.weight"].abs()[m].sum()) for k, m in maps.items())

    for name in ["rows", "clustered", "sa1"]:
        blind = inj.fault_maps(1, 0.2, fault_model=name)
        remapped = inj.fault_maps(1, 0.2, fault_model=name + "+remap:2")
        assert lose(remapped) <= lose(blind) + 1e-6
        assert loss.shape == (inj.placement.tiles, 128, 128)


# ---- the CLI ----


@pytest.fixture(scope="module")
def cli_setup(tmp_path_factory):
    from tests.fixtures import checkpoint_and_images

    return checkpoint_and_images(tmp_path_factory.mktemp("spatial-cli"))


def evaluate_json(capsys, ckpt, data, *extra):
    import json

    from dse.cli import main

    argv = ["evaluate", ckpt, "--data", data, "--fault-rate", "0.1", "--instances", "2", "--bn", "chip",
            "--calib-images", "10", "--device", "cpu", "--json", *extra]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_evaluates_clustered_and_remapped_faults(cli_setup, capsys):
    ckpt, data = cli_setup
    clustered = evaluate_json(capsys, ckpt, data, "--fault-model", "clustered", "--cluster-size", "8")
    assert clustered["results"][0]["fault_model"] == "clustered:8" and clustered["results"][0]["n"] == 2
    remapped = evaluate_json(capsys, ckpt, data, "--fault-model", "rows", "--remap", "--spares", "2")
    assert remapped["results"][0]["fault_model"] == "rows+remap:2"


@pytest.mark.parametrize("extra, match", [
    (["--fault-model", "blobs"], "unknown fault model 'blobs'"),
    (["--fault-model", "rows", "--cluster-size", "8"], "--cluster-size 8 applies to --fault-model clustered only"),
    (["--fault-model", "clustered", "--cluster-size", "100"], "from 1 to 64, got 100"),
    (["--fault-model", "mixed", "--mixed-share", "2"], "from 0 to 1, got 2"),
    (["--spares", "4"], "add --remap"),
])
def test_cli_rejects_bad_fault_options_in_one_line(cli_setup, capsys, extra, match):
    from dse.cli import main

    ckpt, data = cli_setup
    assert main(["evaluate", ckpt, "--data", data, "--fault-rate", "0.1", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err


# ---- the spare columns' cost ----


def test_spare_columns_cost_grows_with_the_spares_and_stays_in_the_array():
    from dse.core.cost import per_image as cost

    none = cost.spare_columns_cost("resnet20", 1.0, spares=0)
    four, eight = cost.spare_columns_cost("resnet20", 1.0, spares=4), cost.spare_columns_cost("resnet20", 1.0, spares=8)
    assert none["extra_area_mm2"] == 0 and none["extra_energy_uj"] == 0
    assert four["extra_area_mm2"] > 0 and four["extra_energy_uj"] > 0
    assert eight["extra_area_mm2"] == pytest.approx(2 * four["extra_area_mm2"])
    assert eight["extra_energy_uj"] == pytest.approx(2 * four["extra_energy_uj"])
    assert 0 < four["area_share"] < 4 / 128  # only the array and its sample-and-holds grow, not the ADCs
    with pytest.raises(DSEError, match="got -1"):
        cost.spare_columns_cost("resnet20", spares=-1)


# ---- the findings command ----


def test_spatial_report_records_its_cells_in_the_store_and_writes_doc_tables(cli_setup, tmp_path, capsys):
    from dse.cli import main
    from dse.core.evaluation.lifetime import parse_trajectory
    from dse.results.store import Store
    from dse.view import spatial

    ckpt, data = cli_setup
    doc = tmp_path / "spatial.md"
    doc.write_text("# x\n<!-- dse:spatial -->\nold\n<!-- /dse:spatial -->\n"
                   "<!-- dse:spatial-gain -->\n<!-- /dse:spatial-gain -->\ntail\n")
    store = tmp_path / "s.sqlite"
    argv = ["spatial-report", ckpt, "--fault-models", "sa1,rows", "--fault-rates", "0.2", "--spares", "2",
            "--instances", "2", "--test-images", "20", "--calib-images", "10", "--store", str(store), "--json"]
    assert main([*argv, "--data", data, "--device", "cpu", "--doc", str(doc)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["fault_model"], r["spec"]) for r in report["rows"]] == [
        ("sa1", "sa1"), ("sa1", "sa1+remap"), ("sa1", "sa1+remap:2"),
        ("rows", "rows"), ("rows", "rows+remap"), ("rows", "rows+remap:2")]
    rows = Store(store).evaluations()  # every cell is a store row, and so is its f = 0 start
    assert len(rows) == 7 and (rows.n[rows.fault_rate > 0] == 2).all() and (rows.test_images == 20).all()
    assert report["rows"][0]["fault_free"] == rows[rows.fault_rate == 0]["mean"].iloc[0]
    text = doc.read_text()
    assert "old" not in text and "| rows | remapped + 2 spare columns |" in text and text.endswith("tail\n")
    assert main([*argv, "--report-only", "--doc", str(doc), "--check"]) == 0  # from the store alone
    capsys.readouterr()
    doc.write_text(text.replace("| rows | remapped + 2 spare columns |", "| rows | remapped |", 1))
    assert main([*argv, "--report-only", "--doc", str(doc), "--check"]) == 2
    assert "in its tables spatial" in capsys.readouterr().err
    assert len(spatial.gain_table(report)) == 4  # two remapped layouts per fault model
    fig = spatial.accuracy_figure(report, report["rows"][0]["point"])
    assert len(fig.data) == 6
    curve = spatial.lifetime_curve(report, report["rows"][0]["point"], "rows", "blind (as placed)",
                                   parse_trajectory("0:0,12:0.2,24:0.4"), [0, 12, 24])
    assert curve["mean"].iloc[1] == pytest.approx(report["rows"][3]["mean"])
    assert list(curve.extrapolated) == [False, False, True]
    assert main([*argv, "--report-only"]) == 0  # the tables again, from the store alone
    assert json.loads(capsys.readouterr().out) == report


def test_the_spatial_page_is_the_shipped_report():
    """docs/spatial.md's tables are what `python -m dse spatial-report --report-only --doc docs/spatial.md` writes
    from the shipped store (checkpoints/manifest.json), which the app's tab reads."""
    import tempfile

    from dse.results.catalog import sync
    from dse.results.store import Store
    from dse.view import spatial
    from dse.view.reproduce import _md_table

    root = Path(__file__).resolve().parents[1]
    store = Store(Path(tempfile.mkdtemp()) / "s.sqlite")
    sync(store, [root / "checkpoints"])
    report = spatial.report(store.evaluations(), fault_models=["sa1", "rows", "cols", "clustered", "mixed"],
                            fault_rates=[0.1, 0.2, 0.3],
                            sample={"bn": "chip", "calib_images": 500, "seed": 0, "protocol": "fixed(5)"})
    assert report["rows"], "the shipped manifest holds no spatial-defects results"
    page = (root / "docs" / "spatial.md").read_text()
    for name, table in (("spatial", spatial.doc_table(report)), ("spatial-gain", spatial.gain_table(report))):
        assert f"<!-- dse:{name} -->\n\n{_md_table(table)}\n<!-- /dse:{name} -->" in page, name


def test_teaching_tile_maps_show_the_remapped_layout():
    from dse.view import spatial

    maps = spatial.tile_maps("resnet20", 0.5, 1, "default", "layer1.0.conv1", fault_model="rows+remap:2", rate=0.2)
    assert maps["stuck"].shape == (128, 130) and maps["stuck_remapped"].shape == (128, 128)
    assert maps["occupied"].sum() > 0
    seen = maps["stuck_remapped"]  # the same stuck lines, reordered: each logical row still all or nothing
    assert (seen.all(axis=1) == seen.any(axis=1)).all() and seen.sum() <= maps["stuck"].sum()


# ---- sweeps ----


def test_a_sweep_spec_evaluates_each_fault_model_and_keeps_sa1_job_ids():
    import tomllib

    from dse.run.spec import parse_spec
    from dse.run.sweep import expand

    base = '[protocol]\ninstances = 5\n[[grid]]\nnetwork = "resnet20"\nfault_rates = [0.1]\n'
    plain = [j for j in expand(parse_spec(tomllib.loads(base)), data="/d") if j.kind == "evaluate"]
    spec = parse_spec(tomllib.loads(base.replace("instances = 5", 'instances = 5\nfault_model = ["sa1", '
                                                                  '"clustered:8", "rows+remap"]')))
    evals = [j for j in expand(spec, data="/d") if j.kind == "evaluate"]
    assert [j.config.get("fault_model", "sa1") for j in evals] == ["sa1", "clustered:8", "rows+remap"]
    assert evals[0].job_id == plain[0].job_id and "fault_model" not in evals[0].config  # SA1 ids stand
    with pytest.raises(DSEError, match="sweep spec protocol.fault_model: unknown fault model 'blobs'"):
        parse_spec(tomllib.loads(base.replace("instances = 5", 'instances = 5\nfault_model = "blobs"')))


def test_the_spatial_reports_protocol_note_compares_typed_protocols():
    from dse.domain.bn import Batch, Chip, Paper
    from dse.view import spatial

    report = {"rows": [{}], "bn": "chip", "calib_images": 500, "instances": 5, "test_images": 1000}
    same = spatial.protocol_note(report, bn=Chip(500))
    assert same.startswith("The spatial-defects results shown use 5 chips × 1,000 test images")
    assert "not the" not in same
    assert "under BN: chip (N=500), not the sidebar's chip (N=32)" in spatial.protocol_note(report, bn=Chip(32))
    assert "not the sidebar's paper (Algorithm 1)" in spatial.protocol_note(report, bn=Paper())
    paper = {**report, "bn": "paper", "calib_images": 0}
    assert "not the" not in spatial.protocol_note(paper, bn=Paper())
    assert "not the sidebar's batch (transductive)" in spatial.protocol_note(paper, bn=Batch())
    assert spatial.protocol_note({"rows": []}, bn=Paper()) is None


def test_a_point_with_no_evaluations_has_an_empty_report():
    """A design point the store holds no evaluation of (a new one, selected on the page) reports no rows, not an
    error: the filters keep the evaluations' columns even when no row is left."""
    import tempfile

    from dse.results.catalog import sync
    from dse.results.store import Store
    from dse.view import spatial

    store = Store(Path(tempfile.mkdtemp()) / "s.sqlite")
    sync(store, [Path(__file__).parents[1] / "checkpoints"])
    evals = store.evaluations()
    assert not evals.empty
    assert spatial.report(evals, point_ids=["no-such-point"]) == {"instances": None, "rows": []}
    assert spatial.report(evals.iloc[:0]) == {"rows": []}
