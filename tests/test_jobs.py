"""Background jobs for real: worker processes train, evaluate and get cancelled, all through the store."""
import json
import time

import pytest

from dse.cli import main
from dse.results.store import DesignPoint, Store, process_alive
from dse.run import jobs
from tests.test_data import make_tree

pytestmark = pytest.mark.slow  # worker processes


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("jobs") / "data", per_class=6)


def wait(store, jid, states=("done", "failed", "cancelled"), timeout=180):
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = store.job(jid)
        if job["state"] in states:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {jid} still {store.job(jid)['state']} after {timeout}s")


def test_train_evaluate_and_sensitivity_in_worker_processes(tmp_path, tree, monkeypatch, capsys):
    monkeypatch.setenv("DSE_CACHE", str(tmp_path / "cache"))
    store = Store(tmp_path / "s.sqlite")
    point = DesignPoint("resnet20", 0.5, 1, "default", 0.2)
    cfg = jobs.train_config(point, epochs=2, data=str(tree), out_dir=str(tmp_path / "ck"), device="cpu")
    cfg["batch_size"] = 20
    jid, started = jobs.submit(store, "train", point, cfg)
    assert started
    assert jobs.submit(store, "train", point, dict(cfg)) == (jid, False)  # a double click shares the job
    job = wait(store, jid)
    assert job["state"] == "done", job["error"]
    points = store.points()
    assert points.checkpoint.iloc[0] == cfg["out"] and points.fault_free_accuracy.notna().all()

    ecfg = jobs.evaluate_config(cfg["out"], [0.1, 0.2], data=str(tree), instances=3, device="cpu")
    ejid, _ = jobs.submit(store, "evaluate", point, ecfg)
    job = wait(store, ejid)
    assert job["state"] == "done", job["error"]
    ev = store.evaluations()
    assert sorted(ev.fault_rate) == [0.1, 0.2] and (ev.n == 3).all()

    # the app's per-layer chart reads the sensitivity job's rows: the same as the CLI's for the same crossbars
    scfg = jobs.sensitivity_config(cfg["out"], 0.2, data=str(tree), instances=2, test_images=40, device="cpu")
    sjid, _ = jobs.submit(store, "sensitivity", point, scfg)
    job = wait(store, sjid)
    assert job["state"] == "done", job["error"]
    assert main(["sensitivity", cfg["out"], "--fault-rate", "0.2", "--instances", "2", "--test-images", "40",
                 "--data", str(tree), "--device", "cpu", "--json"]) == 0
    assert json.loads(job["result"]) == json.loads(capsys.readouterr().out)["layers"]


def test_cancel_stops_the_worker(tmp_path, tree, monkeypatch):
    monkeypatch.setenv("DSE_CACHE", str(tmp_path / "cache"))
    store = Store(tmp_path / "s.sqlite")
    point = DesignPoint("resnet20", 0.5)
    cfg = jobs.train_config(point, epochs=500, data=str(tree), out_dir=str(tmp_path / "ck"), device="cpu")
    cfg["batch_size"] = 20
    jid, _ = jobs.submit(store, "train", point, cfg)
    job = wait(store, jid, states=("running",), timeout=60)
    t0 = time.time()
    while store.job(jid)["message"] in ("starting", "loading data"):
        assert time.time() - t0 < 120, "the worker never got past loading its data"
        time.sleep(0.2)
    jobs.cancel(store, jid)
    job = wait(store, jid, timeout=60)
    assert job["state"] == "cancelled"
    t0 = time.time()
    while process_alive(int(job["pid"])) and time.time() - t0 < 10:
        time.sleep(0.2)
    assert not process_alive(int(job["pid"])), "worker still alive after cancel"


def test_failed_job_records_its_error(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    point = DesignPoint("resnet20", 0.5)
    cfg = jobs.train_config(point, epochs=1, data=str(tmp_path / "missing"), out_dir=str(tmp_path / "ck"))
    jid, _ = jobs.submit(store, "train", point, cfg)
    job = wait(store, jid)
    assert job["state"] == "failed" and "does not exist" in job["error"]
