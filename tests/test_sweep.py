"""Sweeps: spec parsing and expansion, dedup against the store, a sweep killed mid-way and rerun, the Ray
backend against the local one, and `reproduce` on a tiny grid. One tiny design point (ResNet20 0.5x,
1 epoch of 40 images, 2 crossbars on 20 test images) keeps the real runs short."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dse.run import jobs
from dse.run.backends import make_backend
from dse.cli import main
from dse.domain.errors import DSEError
from dse.core.faults.injector import FaultInjector
from dse.domain.point import DesignPoint
from dse.results.store import Store
from dse.run.spec import load_spec, parse_spec
from dse.run.sweep import expand, preview, run_sweep
from tests.test_data import make_tree
from dse.domain.evalspec import Budget, EvalSpec
from dse.domain.faultspec import parse_fault_model
from dse.domain.recipes import DEFAULT_RECIPE
from dse.run.tasks import EvaluateTask, task_id, to_json, train_task

TINY = """
name = "tiny"
data = "{data}"
checkpoint_dir = "{ckpt}"
device = "cpu"
fault_rates = [0.0, 0.1]
[recipe]
epochs = 1
batch_size = 20
calib_images = 20
[protocol]
instances = 2
test_images = 20
bn = "paper"         # the backends are compared, not the protocols: the paper's needs no calibration images
[[grid]]
network = ["resnet20"]
width = [0.5]        # not 0.25: torch 2.14's CPU conv backward crashes on its 4-channel layers
dropconnect = [0.3]
"""
TIMING = {"time_s", "updated"}  # columns that differ between two runs of the same work


def write_spec(path: Path, data: Path, ckpt: Path) -> Path:
    path.write_text(TINY.format(data=data, ckpt=ckpt))
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("sweep") / "data", per_class=4)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, tree):
    """The tiny sweep run once on the local backend, in this process, with one torch thread: float sums
    depend on the thread count, and a Ray task that reserves one CPU gets one thread."""
    root = tmp_path_factory.mktemp("local")
    spec = load_spec(write_spec(root / "tiny.toml", tree, root / "ck"))
    store = Store(root / "s.sqlite")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.time()
        summary = run_sweep(spec, store, progress=False, log=lambda s: None)
        print(f"local tiny sweep: {time.time() - t0:.1f}s")
    finally:
        torch.set_num_threads(threads)
    return spec, store, summary


# ================================================================================ spec and expansion
SPEC = """
fault_rates = [0.0, 0.1]
[recipe]
epochs = 2
batch_size = 64
[axes]
network = ["resnet20", "vgg13"]
width = [1.0]
shortcut_kernel = [1, 3]
dropconnect = [0.0, 0.3]
[[grid]]
network = "resnet20"
shortcut_kernel = 3
dropconnect = [0.3, 0.5]
fault_rates = [0.05]
"""


def parse(text: str):
    import tomllib

    return parse_spec(tomllib.loads(text))


def test_spec_expands_into_deduplicated_jobs_with_dependencies():
    spec = parse(SPEC)
    points = dict(spec.points())
    # k3 expands for ResNet20 only; the second block's (resnet20, k3, p=0.3) is the first's, rates unioned
    assert len(points) == 4 + 2 + 1
    assert all(p.shortcut_kernel == 1 for p in points if p.network == "vgg13")
    assert points[DesignPoint("resnet20", 1.0, 3, "default", 0.3)] == (0.0, 0.05, 0.1)
    assert points[DesignPoint("resnet20", 1.0, 3, "default", 0.5)] == (0.05,)
    plan = expand(spec, data="/data/cifar")
    trains = {j.job_id: j for j in plan if j.kind == "train"}
    evals = [j for j in plan if j.kind == "evaluate"]
    assert len(trains) == 7 and len(evals) == sum(len(r) for r in points.values())
    assert len({j.job_id for j in plan}) == len(plan)
    for j in evals:  # each evaluation depends on its own point's training, which comes first in the plan
        (dep,) = j.deps
        assert trains[dep].point == j.point and plan.index(trains[dep]) < plan.index(j)
        assert j.config["checkpoint"] == trains[dep].config["out"] and len(j.config["fault_rates"]) == 1
    t = next(iter(trains.values())).config
    assert t["epochs"] == 2 and t["batch_size"] == 64 and t["lr"] is None and t["data"] == "/data/cifar"
    assert Path(t["out"]).is_absolute()
    k3 = trains[next(j.deps[0] for j in evals if j.point.dropconnect == 0.5)].config
    assert k3["calib_rates"] == [0.0, 0.05, 0.1, 0.2, 0.3]  # BN calibrated for 0.05 too
    assert [j.job_id for j in expand(parse(SPEC), data="/data/cifar")] == [j.job_id for j in plan]


def test_sweep_jobs_are_the_apps_jobs():
    """The same work asked by the app and by a sweep hashes to the same job id."""
    spec = parse('fault_rates = [0.1]\n[axes]\nnetwork = "resnet20"\ndropconnect = 0.3\n'
                 '[protocol]\ninstances = 100\n[recipe]\nepochs = 30')
    train, ev = expand(spec, data="/d")
    point = DesignPoint("resnet20", 1.0, 1, "default", 0.3)
    app_train = train_task(point, epochs=30, data="/d", out_dir=str(Path("runs/checkpoints").absolute()),
                           recipe=DEFAULT_RECIPE)
    app_eval = EvaluateTask(app_train.out, EvalSpec(point, parse_fault_model("sa1", 0.1), budget=Budget(100)), "/d")
    assert train.config == to_json(app_train) and ev.config == to_json(app_eval)
    assert (train.job_id, ev.job_id) == (task_id(app_train), task_id(app_eval))


@pytest.mark.parametrize("text, message", [
    ('[axes]\nnetwork = "resnet20"\nwidth = -1',
     "sweep spec axes.width: width must be a positive finite number, got -1"),
    ('[axes]\nnetwork = ["resnet21"]', "sweep spec axes.network: unknown network 'resnet21'"),
    ('[axes]\nnetwork = "resnet20"\ndropconnect = [0.1, 1.0]', "sweep spec axes.dropconnect: drop-connect rate must be in [0, 1), got 1.0"),
    ('[axes]\nnetwork = "resnet20"\nmapping = "bogus"', "sweep spec axes.mapping: unknown mapping policy 'bogus'"),
    ('[axes]\nnetwork = "vgg13"\nshortcut_kernel = 3', "sweep spec axes.shortcut_kernel: shortcut kernel 3 is not available for vgg13"),
    ('[axes]\nnetwork = "resnet20"\nwidth = []', "sweep spec axes.width: is empty"),
    ('[axes]\nnetwork = "resnet20"\nwidth = "1.0"', "sweep spec axes.width: expected a number, got '1.0'"),
    ('[axes]\nnetwork = "resnet20"\nwidth = 0.01', "sweep spec axes.width: width 0.01 leaves a layer"),
    ('[axes]\nnetwork = "resnet20"\ndropconect = 0.3', "sweep spec axes.dropconect: unknown key"),
    ('[axes]\nwidth = 1.0', "sweep spec axes: has no network axis"),
    ('fault_rates = []\n[axes]\nnetwork = "resnet20"', "sweep spec fault_rates: is empty"),
    ('fault_rates = [0.1, 2]\n[axes]\nnetwork = "resnet20"', "sweep spec fault_rates: fault rate must be in [0, 1), got 2"),
    ('name = "x"', "sweep spec grid: no grid"),
    ('[[grid]]\nnetwork = "vgg13"\n[[grid]]\nnetwork = "vgg13"\nwidth = 0', "sweep spec grid[2].width"),
    ('epochs = 3\n[axes]\nnetwork = "vgg13"', "sweep spec epochs: unknown key"),
    ('[recipe]\nepochs = 0\n[axes]\nnetwork = "vgg13"', "sweep spec recipe.epochs: expected a positive integer, got 0"),
    ('[protocol]\ninstances = "many"\n[axes]\nnetwork = "vgg13"', "sweep spec protocol.instances: expected a positive integer"),
    ('[resources]\ntrain_gpus = -1\n[axes]\nnetwork = "vgg13"', "sweep spec resources.train_gpus: expected a non-negative"),
    ('device = "tpu"\n[axes]\nnetwork = "vgg13"', "sweep spec device: unknown device 'tpu'"),
])
def test_bad_spec_values_name_the_key(text, message):
    with pytest.raises(DSEError) as e:
        parse(text)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_packaged_grids_and_file_errors(tmp_path, capsys):
    default, paper = load_spec("default"), load_spec("paper")
    # a train job and one evaluate job per fault rate (4) and BN protocol (paper and chip) for each point
    assert len(default.points()) == 15 and len(expand(default, data="/d")) == 15 * (1 + 4 * 2)
    assert len(paper.points()) == 3 * 4 * 6 + 4 * 6 + 6  # k3 for ResNet20 only, plus Fig. 7's mapping
    assert paper.recipe["epochs"] > default.recipe["epochs"] and paper.checkpoint_dir != default.checkpoint_dir
    (tmp_path / "bad.toml").write_text("network = [")
    for argv, message in ((["sweep", str(tmp_path / "bad.toml")], "not valid TOML"),
                          (["sweep", "nope"], "not found; give a .toml file or one of: default, paper")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as e:  # argparse rejects it before the spec is read
        main(["sweep", "default", "--dry-run", "--data", str(tmp_path), "--device", "gpu"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --device: unknown device 'gpu'; use auto, cpu" in err and err.count("\n") == 1


def test_ray_backend_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(DSEError, match=r"pip install 'rram-dse\[ray\]'"):
        make_backend("ray", parse('[axes]\nnetwork = "vgg13"'))


# ================================================================================ real runs
def test_sweep_runs_then_skips_what_is_done(local_run, monkeypatch):
    spec, store, summary = local_run
    assert summary["jobs"] == 3 and summary["done"] == 3 and summary["failed"] == 0, summary["failures"]
    js = store.jobs()
    assert set(js.state) == {"done"} and set(js.source) == {"sweep"}  # the app's Jobs view lists them
    ev = store.evaluations()
    assert sorted(ev.fault_rate) == [0.0, 0.1] and list(ev.n) == [1, 2] and (ev.test_images == 20).all()
    before = js.sort_values("job_id").reset_index(drop=True)

    def unread(path):  # checkpoints the store verified and that have not changed since are not read again
        raise AssertionError(f"read {path} again")

    monkeypatch.setattr("dse.core.io.checkpoint.load_checkpoint", unread)
    again = run_sweep(spec, store, progress=False, log=lambda s: None)
    assert again["skipped"] == 3 and again["ran"] == 0
    assert store.jobs().sort_values("job_id").reset_index(drop=True).equals(before)


@pytest.mark.slow
def test_killed_sweep_resumes_without_redoing_finished_jobs(tmp_path, tree):
    spec_path = write_spec(tmp_path / "tiny.toml", tree, tmp_path / "ck")
    store_path = tmp_path / "s.sqlite"
    env = {**os.environ, "DSE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "dse", "sweep", str(spec_path), "--store", str(store_path), "--no-progress"]
    # the sweep stops inside its first evaluation (its first crossbar journal write), the training done, and
    # waits there to be killed: the same place on a fast machine and a slow one
    held = tmp_path / "held"
    stall = {**env, "DSE_STALL": "atomic_write:*.crossbars-*.partial:1", "DSE_STALL_FILE": str(held)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.hardening.stall", *cmd[3:]], env=stall,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while not held.exists():
            assert proc.poll() is None, "the sweep ended before it reached its first evaluation"
            assert time.time() - t0 < 600, "the sweep did not reach its first evaluation within 600 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
    finally:
        proc.kill()
        proc.wait()
    store = Store(store_path)

    def rows(where):
        db = sqlite3.connect(store_path)
        try:
            return db.execute(f"SELECT * FROM jobs WHERE {where} ORDER BY job_id").fetchall()
        finally:
            db.close()

    finished = rows("state = 'done'")
    kinds = [r[1] for r in finished]
    assert sorted(kinds) == ["evaluate", "train"]  # killed in the first evaluation with crossbars (f=0 has none)
    ckpt = Path(json.loads(finished[kinds.index("train")][3])["out"])
    stamp = (ckpt.stat().st_mtime_ns, ckpt.read_bytes())

    rerun = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout)
    assert summary["skipped"] == len(finished) and summary["done"] == 3 - len(finished)
    assert set(store.jobs().state) == {"done"}
    # the finished jobs were not redone: their rows (state, times, pid) and the checkpoint are as they were
    done_before = ", ".join(f"'{r[0]}'" for r in finished)
    assert rows(f"job_id IN ({done_before})") == finished
    assert (ckpt.stat().st_mtime_ns, ckpt.read_bytes()) == stamp
    assert sorted(store.evaluations().fault_rate) == [0.0, 0.1]


def ship(local_run, folder: Path) -> Path:
    """The tiny sweep's checkpoints copied to `folder` with their manifest, as a clone of the repo has them."""
    from dse.results.catalog import write_manifest

    spec, store, _ = local_run
    folder.mkdir()
    for f in Path(spec.checkpoint_dir).glob("*.safetensors"):
        (folder / f.name).write_bytes(f.read_bytes())
    write_manifest(store, folder)
    return folder


def test_a_fresh_store_takes_shipped_results_and_a_deleted_checkpoint_is_redone(local_run, tmp_path):
    """A clone of a checkpoint folder with its manifest evaluates nothing again; a checkpoint deleted after its
    jobs were done is trained and evaluated again, not reported as done."""
    spec, store, _ = local_run
    folder = ship(local_run, tmp_path / "ck")
    clone = load_spec(write_spec(tmp_path / "tiny.toml", Path(json.loads(store.jobs().config[0])["data"]), folder))
    fresh = Store(tmp_path / "fresh.sqlite")
    quiet = dict(progress=False, log=lambda s: None)

    first = run_sweep(clone, fresh, **quiet)
    assert first["skipped"] == 2 and first["ran"] == 1 and first["done"] == 1  # only the (finished) training ran
    cols = ["fault_rate", "n", "accuracies", "time_s"]  # the shipped rows themselves (a rerun has its own time)
    shipped, now = (s.evaluations()[cols].sort_values("fault_rate").reset_index(drop=True) for s in (store, fresh))
    assert shipped.equals(now)

    (ck,) = folder.glob("*.safetensors")
    ck.unlink()
    assert {r["state"] for r in preview(clone, fresh)} == {"redo"}  # what --dry-run lists
    again = run_sweep(clone, fresh, **quiet)
    assert again["skipped"] == 0 and again["done"] == 3, again["failures"]
    assert ck.exists() and set(fresh.jobs().state) == {"done"}
    assert fresh.evaluations().n.tolist() == [1, 2]


def test_more_crossbars_on_a_fresh_clone_run_only_the_new_ones(local_run, tmp_path, monkeypatch, capsys):
    """A fresh clone has the shipped crossbars in its manifest but no journal of them: asking 4 crossbars
    where 2 are shipped takes those 2 as recorded and runs crossbars 3 and 4 only."""
    spec, store, _ = local_run
    folder = ship(local_run, tmp_path / "ck")
    manifest = folder / "manifest.json"
    doc = json.loads(manifest.read_text())
    (shipped,) = [e for e in doc["checkpoints"][0]["evaluations"] if e["fault_rate"] == 0.1]
    shipped["accuracies"] = [11.0, 12.0]  # marks: no evaluation computes these, so seeing them proves reuse
    manifest.write_text(json.dumps(doc))
    spec_path = write_spec(tmp_path / "tiny.toml", Path(json.loads(store.jobs().config[0])["data"]), folder)
    spec_path.write_text(spec_path.read_text().replace("instances = 2", "instances = 4"))
    fresh = Store(tmp_path / "fresh.sqlite")
    maps = []  # the crossbar instances whose fault maps were built (the local backend runs in this process)
    real_chip = FaultInjector.chip
    monkeypatch.setattr(FaultInjector, "chip", lambda self, i, fault, *a, **k: (
        maps.append(i) if fault.rate > 0 else None, real_chip(self, i, fault, *a, **k))[1])

    # --dry-run says so first, claiming nothing: the training and f=0 stand, f=0.1 goes on from 2 crossbars
    assert main(["sweep", str(spec_path), "--store", str(fresh.path), "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert "done       train" in listing and "done       evaluate" in listing and "3 jobs, 2 done" in listing
    assert "new        evaluate" in listing and listing.count("(goes on from 2 crossbars)") == 1
    assert fresh.jobs().empty and maps == []

    summary = run_sweep(load_spec(spec_path), fresh, progress=False, log=lambda s: None)
    assert summary["failed"] == 0, summary["failures"]
    (four,) = fresh.evaluations().query("fault_rate == 0.1 and n == 4").accuracies.map(json.loads)
    assert four[:2] == [11.0, 12.0]  # reused, not recomputed
    assert maps == [2, 3]  # only crossbars 3 and 4 ran


@pytest.mark.slow
def test_ray_backend_fills_the_store_as_the_local_one(local_run, tmp_path, tree, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_worker_niceness", "0")  # Ray runs workers at nice 15: starved on a busy machine
    spec, local_store, _ = local_run
    from dataclasses import replace

    ray_spec = replace(spec, checkpoint_dir=str(tmp_path / "ck"))  # a fresh folder: really train again
    store = Store(tmp_path / "ray.sqlite")
    t0 = time.time()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        print(f"ray.init: {time.time() - t0:.1f}s")
        summary = run_sweep(ray_spec, store, backend="ray", progress=False, log=lambda s: None)
    finally:
        ray.shutdown()
    print(f"ray tiny sweep incl. init and shutdown: {time.time() - t0:.1f}s")
    assert summary["done"] == 3 and summary["failed"] == 0, summary["failures"]
    assert set(store.jobs().state) == {"done"}

    def table(s):
        ev = s.read_sql("SELECT * FROM evaluations ORDER BY point_id, fault_rate")
        return ev.drop(columns=sorted(TIMING))

    assert table(store).equals(table(local_store))  # same weights (sha), same accuracies, same protocol
    cols = ["point_id", "checkpoint_sha", "fault_free_accuracy", "calibrated_rates", "epochs", "seed"]
    assert store.points()[cols].equals(local_store.points()[cols])


def test_reproduce_writes_figures_and_summary(local_run, tmp_path, capsys):
    """The tiny grid names no BN protocol: it is evaluated under the default (chip), whose figures are
    suffixed; the paper's protocol keeps the plain names."""
    spec, store, _ = local_run
    out = tmp_path / "report"
    assert main(["reproduce", "--grid", spec.source, "--store", str(store.path), "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sweep"]["skipped"] == 3 and result["sweep"]["ran"] == 0  # the sweep found it all done
    assert result["evaluations"] == 2
    files = {Path(f).name for f in result["figures"]}
    assert {"accuracy-resnet20.html"} <= files and (out / "figures" / "plotly.min.js").exists()
    assert result["png"] == any(f.endswith(".png") for f in files)
    summary = (out / "summary.md").read_text()
    assert "# Reproduction: grid `tiny`" in summary and "resnet20 0.5x k1 p=0.3" in summary
    assert "## Table II" in summary and "| resnet20 | 1x | 1 | 41,214,602 | 15.74 | 113.32 | 15.74 |" in summary
    assert "| resnet20 | 0.5x | 1 |" in summary  # the grid's own architecture priced too
    assert "The best drop-connect rate for a fault rate is higher" in summary  # the claims, restated
    assert result["claims"]["1x1-on-crossbar"] == "not measured"
    assert (out / "results.csv").read_text().count("\n") == 3


def synthetic_results():
    """Results shaped like grid_results', with the paper's trends built in: drop-connect protects,
    p = 0.5 costs accuracy without faults, 1x1 layers on the crossbar hurt, widening helps."""
    import pandas as pd

    rows = []
    for net, width, kernel, mapping in [("resnet20", 1.0, 1, "default"), ("resnet20", 1.0, 3, "default"),
                                        ("resnet20", 1.0, 1, "1x1-on-crossbar"), ("resnet20", 1.6, 1, "default"),
                                        ("mobilenetv2", 1.0, 1, "default")]:
        for p in (0.0, 0.3, 0.5):
            fault_free = 92 - 10 * max(0.0, p - 0.3) + 2 * (width - 1) + (kernel == 3)
            for f in (0.0, 0.1, 0.2, 0.3):
                acc = fault_free - 40 * f * (1 - p) - (20 * f if mapping != "default" else 0)
                rows.append(dict(network=net, width=width, shortcut_kernel=kernel, mapping=mapping, dropconnect=p,
                                 fault_rate=f, mean=acc, ci95=0.5, n=100, worst=acc - 2, test_images=10000,
                                 fault_free_accuracy=fault_free, point_id=f"{net}-{width}-{kernel}-{mapping}-{p}"))
    return pd.DataFrame(rows)


def test_claims_and_figures_from_results(monkeypatch):
    from dse.core.cost import per_image as cost
    from dse.view.reproduce import PAPER_CLAIMS, check_claims, figures

    monkeypatch.setattr(cost, "paper_cost", lambda net, w=1.0, k=1: {"latency_ns": w * w, "energy_uj": w * w})
    df = synthetic_results()
    claims = {c["claim"]: c for c in check_claims(df)}
    assert set(claims) == set(PAPER_CLAIMS)
    verdicts = {k: c["verdict"] for k, c in claims.items()}
    assert verdicts["high-p-hurts"] == "agrees"  # p=0.5 is 2 points below p=0 without faults
    assert verdicts["1x1-on-crossbar"] == "agrees" and "6.0 points below" in claims["1x1-on-crossbar"]["ours"]
    assert verdicts["mobilenet-30"] == "differs"  # best at 0.3 is p=0.5: 90 - 6 = 84 against 92
    assert verdicts["vgg13-wide"] == "not measured" and verdicts["small-faults"] == "differs"
    assert claims["small-faults"]["ours"].startswith("mobilenetv2 (best of p = 0, 0.3, 0.5) loss 0.0 at 0, 2.8 at 0.1")
    assert "resnet20 1.6x +156.0%" in claims["widening"]["ours"]  # from the (stubbed) paper-mode cost
    assert verdicts["shortcut-3x3"] == "agrees"  # k3 is 1 point up, 1.6x is 1.2 up
    assert verdicts["best-p-above-f"] == "agrees"  # best p: 0.3 at f=0.1 and 0.2, 0.5 at f=0.3
    assert sorted(figures(df)) == ["accuracy-mobilenetv2", "accuracy-resnet20", "best-dropconnect-mobilenetv2",
                                   "best-dropconnect-resnet20", "mapping", "shortcuts", "widths"]


def test_best_p_table_compares_rates_within_each_network():
    from dse.view.reproduce import best_p_table, check_claims

    df = synthetic_results()
    table = best_p_table(df)
    assert list(table["network"]) == ["mobilenetv2 1x"] * 4 + ["resnet20 1x"] * 4
    assert list(table["best p"]) == ["0", "0.3", "0.3", "0.5"] * 2  # p=0 ties p=0.3 without faults: the first wins
    assert list(table["best p above f"]) == ["-", "yes", "yes", "yes"] * 2 and set(table["rates compared"]) == {3}
    low = best_p_table(df[df.dropconnect <= 0.3]).query("network == 'resnet20 1x'")  # p in {0, 0.3}
    assert list(low["best p above f"]) == ["-", "yes", "yes", "untested (no p above f)"]  # p=0.3 best at 0.3
    claim = next(c for c in check_claims(df[df.dropconnect <= 0.3]) if c["claim"] == "best-p-above-f")
    assert claim["verdict"] == "agrees"  # the untested rows count neither way
    one_rate = df[(df.network == "resnet20") | (df.dropconnect == 0.0)]  # mobilenetv2 at p=0 alone
    assert set(best_p_table(one_rate)["network"]) == {"resnet20 1x"}
    fault_free_only = df[(df.network == "resnet20") | (df.dropconnect == 0.0) | (df.fault_rate == 0.0)]
    mnv2 = best_p_table(fault_free_only).query("network == 'mobilenetv2 1x'")
    assert list(mnv2["fault rate"]) == ["0"] and list(mnv2["rates compared"]) == [3]


def test_drop_connect_claims_do_not_count_a_network_without_drop_connect():
    """MobileNetV2 at p = 0 alone says nothing about what drop-connect does for it: shown, not counted."""
    from dse.view.reproduce import check_claims

    df = synthetic_results()
    df = df[(df.network == "mobilenetv2") & (df.dropconnect == 0)]
    claims = {c["claim"]: c for c in check_claims(df)}
    assert claims["mobilenet-30"]["verdict"] == "not measured"
    assert claims["mobilenet-30"]["ours"] == "loss 12.0 at 0.3 without drop-connect (p = 0 alone: not counted)"
    assert claims["small-faults"]["verdict"] == "not measured"
    assert claims["small-faults"]["ours"].endswith("(no drop-connect yet: not counted)")
    claims = {c["claim"]: c for c in check_claims(synthetic_results())}  # with p = 0.3 and 0.5 it counts
    assert claims["mobilenet-30"]["verdict"] == "differs" and claims["small-faults"]["verdict"] == "differs"


def test_paste_tables_rewrites_only_between_its_markers(tmp_path):
    import pandas as pd

    from dse.view.reproduce import paste_tables

    doc = tmp_path / "results.md"
    doc.write_text("intro\n<!-- dse:points -->\nold table\n<!-- /dse:points -->\nrest\n")
    table = pd.DataFrame({"point": ["a", "b"], "mean": [1.5, 2.25]})
    assert paste_tables(doc, {"points": table}, check=True) == ["points"]
    assert "old table" in doc.read_text()  # a check writes nothing
    assert paste_tables(doc, {"points": table}) == ["points"]
    once = doc.read_text()
    assert once == ("intro\n<!-- dse:points -->\n\n| point | mean |\n|---|---|\n| a | 1.50 |\n| b | 2.25 |\n\n"
                    "<!-- /dse:points -->\nrest\n")
    assert paste_tables(doc, {"points": table}) == [] and paste_tables(doc, {"points": table}, check=True) == []
    assert doc.read_text() == once  # idempotent
    with pytest.raises(DSEError, match=r"needs one <!-- dse:best-p --> \.\.\. <!-- /dse:best-p --> pair"):
        paste_tables(doc, {"best-p": table})
    assert doc.read_text() == once  # nothing half-written
    with pytest.raises(DSEError, match="missing.md does not exist"):
        paste_tables(tmp_path / "missing.md", {"points": table})


def test_reproduce_rewrites_a_doc_and_checks_it(local_run, tmp_path, capsys):
    """`reproduce --doc` writes the grid's tables into a page's markers; `--check` then passes, and after a hand
    edit fails in one line naming the table, writing nothing (no report folder either)."""
    spec, store, _ = local_run
    doc = tmp_path / "results.md"
    doc.write_text("# r\n<!-- dse:points -->\n<!-- /dse:points -->\n<!-- dse:best-p -->\n<!-- /dse:best-p -->\nend\n")
    args = ["reproduce", "--grid", spec.source, "--store", str(store.path), "--report-only", "--doc", str(doc)]
    assert main(args + ["--out", str(tmp_path / "report")]) == 0
    written = doc.read_text()
    assert "| resnet20 0.5x k1 p=0.3 |" in written[written.index("dse:points"):written.index("/dse:points")]
    capsys.readouterr()
    assert main(args + ["--check", "--out", str(tmp_path / "checked")]) == 0
    assert "its tables are the results" in capsys.readouterr().out and not (tmp_path / "checked").exists()
    doc.write_text(written.replace("| resnet20 0.5x k1 p=0.3 |", "| resnet20 0.5x k1 p=0.31 |", 1))
    edited = doc.read_text()
    assert main(args + ["--check", "--out", str(tmp_path / "checked")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "differs from the results in its tables points:" in err
    assert doc.read_text() == edited and not (tmp_path / "checked").exists()
    assert main(["reproduce", "--grid", spec.source, "--report-only", "--check"]) == 2
    assert "--check needs --doc FILE" in capsys.readouterr().err


def test_widths_are_compared_at_the_drop_connect_rates_both_have():
    from dse.view.reproduce import figures, same_rates

    df = synthetic_results()
    df = df[~((df.network == "resnet20") & (df.width == 1.6) & (df.dropconnect > 0))]  # 1.6x at p = 0 alone
    narrow, wide = same_rates(df[(df.network == "resnet20") & (df.width == 1.0)], df[df.width == 1.6])
    assert set(narrow.dropconnect) == set(wide.dropconnect) == {0.0}
    line = next(t for t in figures(df)["widths"].data if t.name == "1x")
    at30 = dict(zip(line.x, line.y))[0.3]
    assert at30 == 92 - 40 * 0.3  # 1.0x at p = 0, not its best rate p = 0.5 (84), which 1.6x lacks
