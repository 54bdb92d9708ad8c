"""The checkpoints shipped in checkpoints/: every file is in the manifest with matching weights and
metadata, the folder stays small, the recorded statistics follow from the per-instance accuracies, and
one crossbar instance re-evaluated on a slice of the real test set gives the manifest's figure."""
import json
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest

from dse.core.evaluation.evaluate import SPOT_CHECK, spot_check, summarize
from dse.core.io.checkpoint import load_checkpoint
from dse.core.io.data import load_cifar10
from dse.results.catalog import MANIFEST, MANIFEST_FORMAT
from dse.run.spec import load_spec

pytestmark = pytest.mark.slow  # the shipped checkpoints and real CIFAR-10

FOLDER = Path(__file__).parents[1] / "checkpoints"
# the shipped grid, and its ResNet20 p=0.3 point trained from scratch (docs/results.md), each with its manifest
FOLDERS = [FOLDER, FOLDER / "from-scratch"]
META_KEYS = ("network", "width", "shortcut_kernel", "mapping", "dropconnect", "epochs", "test_accuracy", "init")


@pytest.fixture(scope="module", params=FOLDERS, ids=lambda f: f.name)
def folder(request) -> Path:
    if not any(request.param.glob("*.safetensors")):  # a folder whose grid is not trained yet has nothing to check
        pytest.skip(f"no checkpoints in {request.param.name}/ yet")
    return request.param


@pytest.fixture(scope="module")
def manifest(folder) -> dict:
    doc = json.loads((folder / MANIFEST).read_text())
    assert doc["format"] == MANIFEST_FORMAT and doc["checkpoints"], f"{folder}/manifest.json lists nothing"
    return doc


def test_every_shipped_file_is_in_the_manifest_and_matches(manifest, folder):
    entries = {e["file"]: e for e in manifest["checkpoints"]}
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    assert files == sorted(entries)
    grid = {p for p, _ in load_spec(folder / "grid.toml").points()}
    for name, e in entries.items():
        ck = load_checkpoint(folder / name)  # verifies the sha256 over every tensor
        assert ck.sha256 == e["sha256"], name
        for key in META_KEYS:
            assert ck.meta.get(key) == e.get(key), (name, key)
        assert ck.meta["complete"] and ck.meta["dtype"] == "float16"
        point = (e["network"], e["width"], e["shortcut_kernel"], e["mapping"], e["dropconnect"])
        assert point in {(p.network, p.width, p.shortcut_kernel, p.mapping, p.dropconnect) for p in grid}, name


def test_the_manifest_carries_the_spatial_defects_report():
    """The spatial-defects findings (README) are evaluations of the shipped store like any other: ResNet20 1x
    p = 0 and p = 0.3, five fault models, blind and remapped with and without 8 spare columns, at three rates, on
    the same 5 chips and 1,000 images per-chip BN; and each curve's f = 0 start on those images."""
    from dse.results.catalog import sync
    from dse.results.store import Store
    from dse.view import spatial

    store = Store(Path(tempfile.mkdtemp()) / "s.sqlite")
    sync(store, [FOLDER])
    report = spatial.report(store.evaluations(), fault_models=["sa1", "rows", "cols", "clustered", "mixed"],
                            sample={"bn": "chip", "calib_images": 500, "seed": 0, "protocol": "fixed(5)"},
                            fault_rates=[0.1, 0.2, 0.3])  # the lifetime illustration's months share the sample
    assert len(report["rows"]) == 2 * 5 * 3 * 3 and report["test_images"] == 1000
    assert {r["point"] for r in report["rows"]} == {"resnet20 1x k1 p=0", "resnet20 1x k1 p=0.3"}
    assert all(r["n"] == 5 and not math.isnan(r["fault_free"]) for r in report["rows"])
    assert len(spatial.gain_table(report)) == 2 * 5 * 2


def test_the_docs_lifetime_table_is_the_shipped_evaluations():
    """docs/spatial.md's lifetime illustration (ResNet20 1x p=0.3, clustered defects, blind and remapped) is what
    `lifetime_table` computes from the shipped evaluations at each month's f(t)."""
    from dse.core.evaluation.lifetime import lifetime_table, parse_trajectory
    from dse.results.catalog import sync
    from dse.results.store import Store

    store = Store(Path(tempfile.mkdtemp()) / "s.sqlite")
    sync(store, [FOLDER])
    ev = store.evaluations()
    ev = ev[(ev.dropconnect == 0.3) & (ev.mapping == "default") & (ev.width == 1.0) & (ev.shortcut_kernel == 1)
            & (ev.test_images == 1000) & (ev.protocol == "fixed(5)") & (ev.bn == "chip")]
    text = (Path(__file__).parents[1] / "docs" / "spatial.md").read_text()
    block = text[text.index("## A lifetime, for illustration"):]
    readme = [line.split(" | ") for line in block.splitlines() if re.match(r"\| \d+ \| 0\.\d{4} \|", line)]
    months = [float(r[0].strip("| ")) for r in readme]
    trajectory = parse_trajectory("weibull:fmax=0.3,eta=60,beta=2")
    rates = [round(trajectory.rate(m), 12) for m in months]
    for model, mean_col, yield_col in (("clustered", 2, 3), ("clustered+remap", 4, 5)):
        rows = ev[ev.fault_model == model]
        by_rate = {r: rows[np.isclose(rows.fault_rate, r)].iloc[0] for r in rates}
        table = lifetime_table(months, rates, {r: {**v, "accuracies": json.loads(v.accuracies)}
                                               for r, v in by_rate.items()}, 80.0, 0.8)["rows"]
        for row, cells in zip(table, readme):
            ci = "" if row["n"] == 1 else f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
            assert cells[mean_col].strip() == f"{row['mean']:.2f}{ci}", (model, row["month"])
            assert cells[yield_col].strip(" |") == f"{row['yield']:.0%}", (model, row["month"])


def test_the_folder_is_small():
    size = sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file() and not p.name.endswith(".partial"))
    assert size < 100 * 2**20, f"checkpoints/ holds {size / 2**20:.1f} MB"


def test_recorded_statistics_follow_from_the_instances(manifest):
    for e in manifest["checkpoints"]:
        for ev in e["evaluations"]:
            accs = ev["accuracies"]
            assert len(accs) == ev["n"] and ev["test_images"] in (10000, 1000), (e["file"], ev["fault_rate"])
            s = summarize(accs)
            for key in ("mean", "worst", "best"):
                assert ev[key] == pytest.approx(s[key], abs=1e-6), (e["file"], ev["fault_rate"], key)
            if ev["n"] > 1:
                assert ev["ci95"] == pytest.approx(s["ci95"], abs=1e-6)
            else:
                assert ev["ci95"] is None or math.isnan(ev["ci95"])
            if ev["fault_rate"] > 0 and ev["protocol"].startswith("fixed"):
                assert ev["n"] == int(ev["protocol"][6:-1])
            assert all(0 <= a <= 100 for a in accs) and np.isfinite(accs).all()


def test_one_crossbar_on_a_slice_matches_the_manifest(manifest, folder, shared_cifar):
    data = load_cifar10(shared_cifar)
    for e in manifest["checkpoints"]:
        assert "spot_check" in e, f"{e['file']}: no spot check; write the manifest with --data"
        recorded = e["spot_check"]
        assert {k: recorded[k] for k in SPOT_CHECK} == SPOT_CHECK
        again = spot_check(load_checkpoint(folder / e["file"]), data.test_x, data.test_y)
        one_image = 100 / SPOT_CHECK["test_images"]  # float sums vary with the thread count: a near-tie may flip
        assert again["accuracy"] == pytest.approx(recorded["accuracy"], abs=one_image + 1e-9), e["file"]


RESULTS = FOLDER.parent / "docs" / "results.md"
COMPARE = FOLDERS[1] / "grid.toml"  # the same point trained from scratch, set beside the shipped one


def test_the_results_page_is_the_shipped_results(manifest, tmp_path, monkeypatch):
    """docs/results.md's tables are what `python -m dse reproduce --grid checkpoints/grid.toml --report-only
    --compare checkpoints/from-scratch/grid.toml --doc docs/results.md` writes from these folders: rerun it
    after a checkpoint lands."""
    from dse.results.catalog import sync
    from dse.results.store import Store
    from dse.view.reproduce import _md_table, calibration_table, compare_table, doc_tables, protocol_results

    monkeypatch.chdir(FOLDER.parent)  # the grids name their folders from the project's root, as the command runs
    store = Store(tmp_path / "results.sqlite")
    assert not sync(store, [FOLDER])["problems"]
    spec = load_spec(FOLDER / "grid.toml")
    tables = doc_tables(protocol_results(store, spec), calibration_table(store, spec),
                        compare_table(spec, load_spec(COMPARE)))
    doc = RESULTS.read_text()
    for name, table in tables.items():
        assert f"<!-- dse:{name} -->\n\n{_md_table(table)}\n<!-- /dse:{name} -->" in doc, (name, _md_table(table))


def _tables(*docs: Path) -> str:
    return "\n".join(line for d in docs for line in d.read_text().splitlines() if line.startswith("|"))


def _prose(doc: Path) -> str:
    return "\n".join(line for line in doc.read_text().splitlines() if not line.startswith("|"))


FIGURE = r"(?<![\d.]){}(?!\d)"


@pytest.mark.parametrize("doc", [RESULTS, FOLDER.parent / "README.md"], ids=lambda p: p.name)
def test_the_text_quotes_no_figure_the_tables_lack(doc):
    """Every two-decimal figure in the text of docs/results.md and the README is one of the results tables'
    (docs/results.md, docs/spatial.md): a checkpoint re-evaluated with more crossbars changes the tables, and
    this catches the prose that still quotes the old figures. Derived figures (differences, ratios) are given
    to one decimal."""
    tables = _tables(RESULTS, FOLDER.parent / "docs" / "spatial.md")
    figures = set(re.findall(FIGURE.format(r"\d+\.\d\d"), _prose(doc)))
    assert figures, f"{doc.name} quotes no figure: the check would see nothing"
    stale = sorted(n for n in figures if not re.search(FIGURE.format(re.escape(n)), tables))
    assert not stale, f"{doc.name} quotes {stale}, which no table holds"


def _first_20(folder: Path, file: str) -> tuple[dict, dict]:
    """A checkpoint's manifest entry and, per (BN protocol, fault rate), the summary of its first 20 crossbars
    (the same fault maps in every run with the same seed), from its largest SA1 evaluation on all test images."""
    entry = next(e for e in json.loads((folder / MANIFEST).read_text())["checkpoints"] if e["file"] == file)
    best = {}
    for ev in entry["evaluations"]:
        if ev["fault_rate"] == 0 or ev["test_images"] != 10000 or ev["fault_model"] != "sa1":
            continue
        if ev["bn"] == "chip" and ev["calib_images"] != 500:
            continue
        key = (ev["bn"], ev["fault_rate"])
        if key not in best or ev["n"] > best[key]["n"]:
            best[key] = ev
    return entry, {k: summarize(ev["accuracies"][:20]) for k, ev in best.items() if ev["n"] >= 20}


def test_the_compare_table_is_what_the_manifests_hold():
    """docs/results.md's compare table: the shipped fine-tuned ResNet20 p=0.3 against the same point trained
    from scratch for as many epochs (checkpoints/from-scratch/), on the same 20 crossbars, computed here from
    the manifests independently of dse.view.reproduce.compare_table."""
    name = "resnet20-w1-k1-default-p0.3-s0.safetensors"
    if not (FOLDERS[1] / name).exists():
        pytest.skip("the from-scratch point is not shipped yet")
    rows = []
    for folder, grid, epochs in ((FOLDER, "shipped", "15 epochs at p=0, then 4 at p=0.3"),
                                 (FOLDERS[1], "from-scratch", "19 epochs at p=0.3")):
        entry, first = _first_20(folder, name)
        for bn in ("paper", "chip"):
            cells = " | ".join(f"{first[(bn, f)]['mean']:.2f} ± {first[(bn, f)]['ci95']:.2f}" for f in (0.1, 0.2, 0.3))
            rows.append(f"| resnet20 1x k1 p=0.3 | {grid} | {epochs} | {entry['test_accuracy']:.2f} | {bn} | 20 | {cells} |")
    doc = RESULTS.read_text()
    block = doc[doc.index("<!-- dse:compare -->"):doc.index("<!-- /dse:compare -->")]
    assert "\n".join(rows) in block, "\n".join(rows)
