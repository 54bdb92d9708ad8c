"""The checkpoints shipped in checkpoints/: every file is in the manifest with matching weights and
metadata, the folder stays small, the recorded statistics follow from the per-instance accuracies, and
one crossbar instance re-evaluated on a slice of the real test set gives the manifest's figure."""
import json
import math
import re
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
# the shipped grid, and the training question's point (README "The training question"), each with its manifest
FOLDERS = [FOLDER, FOLDER / "from-scratch"]
META_KEYS = ("network", "width", "shortcut_kernel", "mapping", "dropconnect", "epochs", "test_accuracy", "init")


@pytest.fixture(scope="module", params=FOLDERS, ids=lambda f: f.name)
def folder(request) -> Path:
    if not any(request.param.glob("*.safetensors")):  # checkpoints land over several sessions (README)
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


def test_the_folder_is_small():
    size = sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file() and not p.name.endswith(".partial"))
    assert size < 100 * 2**20, f"checkpoints/ holds {size / 2**20:.1f} MB"


def test_recorded_statistics_follow_from_the_instances(manifest):
    for e in manifest["checkpoints"]:
        for ev in e["evaluations"]:
            accs = ev["accuracies"]
            assert len(accs) == ev["n"] and ev["test_images"] == 10000, (e["file"], ev["fault_rate"])
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


def test_the_readme_tables_are_the_shipped_results(manifest, tmp_path):
    """The README's tables of shipped results are what `python -m dse reproduce --grid checkpoints/grid.toml
    --report-only` computes from this folder: rerun it and paste its tables after a checkpoint lands."""
    from dse.results.catalog import sync
    from dse.results.store import Store
    from dse.view.reproduce import _md_table, calibration_table, protocol_results, readme_tables

    store = Store(tmp_path / "results.sqlite")
    assert not sync(store, [FOLDER])["problems"]
    spec = load_spec(FOLDER / "grid.toml")
    tables = readme_tables(protocol_results(store, spec), calibration_table(store, spec))
    readme = (FOLDER.parent / "README.md").read_text()
    for name, table in tables.items():
        if name in ("points", "best-p") or f"<!-- dse:{name} -->" in readme:
            assert _md_table(table) in readme, (name, _md_table(table))


def test_the_readme_quotes_no_figure_the_tables_lack():
    """Every two-decimal figure in the README's comparison with the paper is one of its tables' (results,
    best p, cost): a checkpoint re-evaluated with more crossbars changes the tables, and this catches the
    prose that still quotes the old figures. Derived figures (differences, ratios) are given to one decimal."""
    readme = (FOLDER.parent / "README.md").read_text()
    start = readme.index("**Against the paper**")
    prose = readme[start:readme.index("\n## ", start)]  # to the next section
    tables = "\n".join(line for line in readme.splitlines() if line.startswith("|"))
    figure = r"(?<![\d.]){}(?!\d)"
    stale = sorted({n for n in re.findall(figure.format(r"\d+\.\d\d"), prose)
                    if not re.search(figure.format(re.escape(n)), tables)})
    assert not stale, f"the README quotes {stale}, which no table of it holds"


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


def test_the_training_question_table_is_what_the_manifests_hold():
    """README "The training question": the shipped fine-tuned ResNet20 p=0.3 against the same point trained
    from scratch for as many epochs (checkpoints/from-scratch/), on the same 20 crossbars."""
    name = "resnet20-w1-k1-default-p0.3-s0.safetensors"
    if not (FOLDERS[1] / name).exists():
        pytest.skip("the from-scratch point is not shipped yet")
    rows = ["| ResNet20 1.0x p=0.3 | training | fault-free (%) | BN | f=0.1 | f=0.2 | f=0.3 |",
            "|---|---|---|---|---|---|---|"]
    for folder, how, epochs in ((FOLDER, "fine-tuned (shipped)", "15 epochs at p=0, then 4 at p=0.3"),
                                (FOLDERS[1], "from scratch", "19 epochs at p=0.3")):
        entry, first = _first_20(folder, name)
        for bn in ("paper", "chip"):
            cells = " | ".join(f"{first[(bn, f)]['mean']:.2f} ± {first[(bn, f)]['ci95']:.2f}" for f in (0.1, 0.2, 0.3))
            rows.append(f"| {how} | {epochs} | {entry['test_accuracy']:.2f} | {bn} | {cells} |")
    readme = (FOLDER.parent / "README.md").read_text()
    block = readme[readme.index("<!-- dse:training-question -->"):readme.index("<!-- /dse:training-question -->")]
    assert "\n".join(rows) in block, "\n".join(rows)
