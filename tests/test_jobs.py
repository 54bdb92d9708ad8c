"""Background jobs for real: worker processes train, evaluate and get cancelled, all through the store."""
import json
import time

import pytest

from dataclasses import replace

from dse.cli import main
from dse.domain.evalspec import Budget, EvalSpec
from dse.domain.faultspec import parse_fault_model
from dse.domain.point import DesignPoint
from dse.run import jobs
from dse.run.tasks import EvaluateTask, SensitivityTask, train_task
from dse.results.store import Store, process_alive
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
    task = train_task(point, epochs=2, data=str(tree), out_dir=str(tmp_path / "ck"), device="cpu", batch_size=20)
    jid, started = jobs.submit(store, task)
    assert started
    assert jobs.submit(store, replace(task)) == (jid, False)  # a double click shares the job
    job = wait(store, jid)
    assert job["state"] == "done", job["error"]
    points = store.points()
    assert points.checkpoint.iloc[0] == task.out and points.fault_free_accuracy.notna().all()

    for rate in (0.1, 0.2):
        spec = EvalSpec(point, parse_fault_model("sa1", rate), budget=Budget(3))
        ejid, _ = jobs.submit(store, EvaluateTask(task.out, spec, str(tree), "cpu"))
        job = wait(store, ejid)
        assert job["state"] == "done", job["error"]
    ev = store.evaluations()
    assert sorted(ev.fault_rate) == [0.1, 0.2] and (ev.n == 3).all()

    # the app's per-layer chart reads the sensitivity job's rows: the same as the CLI's for the same crossbars
    sjid, _ = jobs.submit(store, SensitivityTask(task.out, 0.2, str(tree), instances=2, test_images=40, device="cpu"))
    job = wait(store, sjid)
    assert job["state"] == "done", job["error"]
    assert main(["sensitivity", task.out, "--fault-rate", "0.2", "--instances", "2", "--test-images", "40",
                 "--data", str(tree), "--device", "cpu", "--json"]) == 0
    assert json.loads(job["result"]) == json.loads(capsys.readouterr().out)["layers"]


def test_cancel_stops_the_worker(tmp_path, tree, monkeypatch):
    monkeypatch.setenv("DSE_CACHE", str(tmp_path / "cache"))
    store = Store(tmp_path / "s.sqlite")
    point = DesignPoint("resnet20", 0.5)
    jid, _ = jobs.submit(store, train_task(point, epochs=500, data=str(tree), out_dir=str(tmp_path / "ck"),
                                           device="cpu", batch_size=20))
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


def test_a_cancel_stays_a_cancel_whatever_the_worker_raises_after_it(tmp_path, monkeypatch):
    """A SIGTERM landing inside code that turns any Exception into an error of its own (a data reader's) is not
    swallowed (Cancelled is a BaseException), and an error the worker records after the cancel leaves the job
    cancelled, as the app's Cancel said."""
    from dse.domain.errors import DSEError

    def reader():
        try:
            jobs._cancel(None, None)  # the signal handler, as if SIGTERM arrived here
        except Exception as e:  # a reader's catch-all
            raise DSEError(f"unreadable data ({e})") from None

    with pytest.raises(jobs.Cancelled):
        reader()
    store = Store(tmp_path / "s.sqlite")
    jid, _ = jobs.submit(store, train_task(DesignPoint("resnet20", 0.5), epochs=1, data=str(tmp_path / "d"),
                                           out_dir=str(tmp_path / "ck")), spawn=False)

    def cancelled_then_failing(kind, config, progress):
        store.update_job(jid, state="cancelled", message="cancelled")  # the app's Cancel, before its SIGTERM lands
        raise ValueError("the worker's own failure, after the cancel")

    monkeypatch.setattr(jobs, "execute", cancelled_then_failing)
    jobs.run_job(store, jid)
    job = store.job(jid)
    assert job["state"] == "cancelled" and job["error"] is None
    store.update_job(jid, state="failed", unless=("queued",))  # the guard names states; others are written
    assert store.job(jid)["state"] == "failed"


def test_failed_job_records_its_error(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    point = DesignPoint("resnet20", 0.5)
    jid, _ = jobs.submit(store, train_task(point, epochs=1, data=str(tmp_path / "missing"), out_dir=str(tmp_path / "ck")))
    job = wait(store, jid)
    assert job["state"] == "failed" and "does not exist" in job["error"]
