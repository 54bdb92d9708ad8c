import json
import multiprocessing as mp
import subprocess
import sys

import pytest

from dse.core.io.checkpoint import load_checkpoint, save_checkpoint
from dse.results.catalog import sync
from dse.results.store import SCHEMA_VERSION, DesignPoint, Store, open_store
from dse.run import jobs
from tests.fixtures import POINTS, build_store, write_checkpoint


def test_round_trip(tmp_path):
    store, _ = build_store(tmp_path)
    points = store.points()
    assert len(points) == len(POINTS)
    ev = store.evaluations()
    assert len(ev) == 2 * 4 * len(POINTS)  # both BN protocols
    row = ev[(ev.dropconnect == 0.3) & (ev.mapping == "default") & (ev.width == 1.0) & (ev.fault_rate == 0.2)
             & (ev.bn == "paper")].iloc[0]
    assert row.n == 10 and len(json.loads(row.accuracies)) == 10
    costs = store.costs()
    assert set(costs.cost_model) == {"paper", "isaac"} and len(costs) == 2 * 3  # three architectures


def test_same_config_same_row(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    p = DesignPoint("vgg13", 1.0)
    store.upsert_point(p, fault_free_accuracy=90.0)
    store.upsert_point(DesignPoint("vgg13", 1.0000001), fault_free_accuracy=91.0)
    df = store.points()
    assert len(df) == 1 and df.fault_free_accuracy.iloc[0] == 91.0


def test_retrained_checkpoint_hides_stale_evaluations(tmp_path):
    store, ckdir = build_store(tmp_path)
    p = POINTS[1]
    path = ckdir / "resnet20-w1-k1-default-p0.3.safetensors"
    ck = load_checkpoint(path)
    state = {k: v + 1 if v.is_floating_point() else v for k, v in ck.state.items()}
    save_checkpoint(path, state, ck.meta)  # "retrained": new weights, new digest
    store.add_checkpoint(path)
    assert not (store.evaluations().point_id == p.point_id).any()
    assert (store.evaluations().point_id == POINTS[0].point_id).sum() == 2 * 4  # both BN protocols


def _writer(path, start, n):
    store = Store(path, timeout_s=60)
    for i in range(start, start + n):
        store.upsert_point(DesignPoint("resnet20", 1.0 + i / 1000), fault_free_accuracy=float(i))


@pytest.mark.slow
def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, k * 150, 150)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len(Store(path).points()) == 300


def test_corrupt_store_is_moved_aside_and_rebuilt(tmp_path):
    store, ckdir = build_store(tmp_path)
    path = store.path
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"results.sqlite{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"garbage" * 1000)
    fresh = open_store(path)
    assert fresh.points().empty
    assert list(tmp_path.glob("results.sqlite.corrupt-*"))  # the damaged file is kept for inspection
    report = sync(fresh, [ckdir])
    assert report["points"] == len(POINTS) and not report["problems"]


def test_damaged_checkpoint_is_reported_and_others_still_load(tmp_path):
    ckdir = tmp_path / "ck"
    good = write_checkpoint(ckdir, POINTS[0], 90.0)
    bad = write_checkpoint(ckdir, POINTS[1], 90.0)
    bad.write_bytes(bad.read_bytes()[:100])
    report = sync(Store(tmp_path / "s.sqlite"), [ckdir])
    assert report["points"] == 1 and len(report["problems"]) == 1 and bad.name in report["problems"][0]
    assert good.exists()


def test_jobs_are_shared_and_retried(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    cfg = {"a": 1}
    jid, new = store.submit_job("train", "p", cfg)
    assert new
    assert store.submit_job("train", "p", {"a": 1}) == (jid, False)  # a second session asking shares the job
    assert store.claim_job(jid, 1) is not None and store.claim_job(jid, 2) is None
    store.update_job(jid, state="failed", error="boom")
    assert store.submit_job("train", "p", cfg) == (jid, True)  # a failed job can be retried


def test_dead_worker_is_noticed(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    jid, _ = store.submit_job("train", "p", {})
    store.claim_job(jid, 2 ** 22 + 12345)  # no such process
    df = store.jobs()
    assert df.loc[df.job_id == jid, "state"].item() == "failed"


def test_jobs_queued_by_a_sweep_that_died_are_cancelled_and_requeued_by_a_rerun(tmp_path):
    """A sweep killed outright (SIGKILL, a machine restart) cannot mark the jobs it had queued; without an owner
    they would show as queued for ever. Cancelling a queued job does not signal its owner: that is the driver."""
    store = Store(tmp_path / "s.sqlite")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphan, _ = store.submit_job("evaluate", "p", {"a": 1}, source="sweep", owner=gone.pid)
        kept, _ = store.submit_job("evaluate", "p", {"a": 2}, source="sweep", owner=alive.pid)
        cancelled, _ = store.submit_job("evaluate", "p", {"a": 3}, source="sweep", owner=alive.pid)
        jobs.cancel(store, cancelled)
        df = store.jobs().set_index("job_id")
        assert df.loc[orphan, ["state", "message"]].tolist() == ["cancelled", "its sweep stopped before starting it"]
        assert df.loc[kept, "state"] == "queued" and df.loc[cancelled, "state"] == "cancelled"
        assert alive.poll() is None  # the Cancel of a queued job left its sweep running
        assert store.submit_job("evaluate", "p", {"a": 1}, source="sweep", owner=alive.pid) == (orphan, True)
    finally:
        alive.kill()
        alive.wait()


def test_evaluation_rows_need_a_complete_result(tmp_path):
    store, _ = build_store(tmp_path)
    with pytest.raises(KeyError):
        store.add_evaluation(POINTS[0].point_id, "x", {"fault_rate": 0.1}, {})


def test_bn_protocols_coexist_and_never_satisfy_each_others_jobs(tmp_path):
    from dse.run.sweep import Job, _standing
    from tests.fixtures import accuracy_model, fake_result

    store, ckdir = build_store(tmp_path)
    p = POINTS[1]
    ck = str(next(ckdir.glob(f"{p.network}-w1-k1-default-p0.3.safetensors")))
    sha = load_checkpoint(ck).sha256
    store.add_evaluation(p.point_id, sha, fake_result(0.2, 1.0, bn="chip", calib_images=32), {})
    ev = store.evaluations()
    mine = ev[(ev.point_id == p.point_id) & (ev.fault_rate == 0.2)].set_index(["bn", "calib_images"])["mean"]
    assert mine[("paper", 0)] == pytest.approx(accuracy_model(p, 0.2, "paper"))  # not overwritten by either chip row
    assert mine[("chip", 500)] == pytest.approx(accuracy_model(p, 0.2, "chip"))
    assert mine[("chip", 32)] == pytest.approx(1.0)

    def job(**kw):
        return Job("evaluate", p, jobs.evaluate_config(ck, [0.2], data="d", instances=10, **kw))

    plan = [job(bn="paper"), job(bn="chip"), job(bn="chip", calib_images=100), job(bn="batch")]
    assert len({j.job_id for j in plan}) == 4
    assert list(_standing(store, plan).values()) == [True, True, False, False]
    assert plan[0].config["calib_images"] == 0  # an image count changes only the chip protocol's work and id
    assert job(bn="paper", calib_images=32).job_id == plan[0].job_id and job(calib_images=500).job_id == plan[1].job_id


def test_a_version_1_store_is_migrated_with_its_results_as_the_paper_protocol(tmp_path):
    import sqlite3

    from dse.results.store import SCHEMA

    path = tmp_path / "old.sqlite"
    old = SCHEMA.replace("    bn TEXT NOT NULL DEFAULT 'paper',", "").replace(
        "    precision TEXT,", "").replace(
        "    calib_images INTEGER NOT NULL DEFAULT 0,", "").replace(",\n                 bn, calib_images)", ")")
    old = "\n".join(line.split("--")[0] for line in old.splitlines())
    assert "bn TEXT" not in old and "calib_images" not in old and "precision" not in old
    db = sqlite3.connect(path)
    db.executescript(old)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO evaluations (point_id, checkpoint_sha, fault_rate, fault_model, protocol, seed, recalibrate, "
               "rescale, test_images, n, mean, accuracies, updated) VALUES ('p', 's', 0.1, 'sa1', 'fixed(2)', 0, 1, 1, "
               "100, 2, 50.0, '[49, 51]', 0)")
    db.commit()
    db.close()
    store = Store(path)
    rows = store.read_sql("SELECT bn, calib_images, mean FROM evaluations")
    assert rows.to_dict("records") == [{"bn": "paper", "calib_images": 0, "mean": 50.0}]
    assert store.read_sql("SELECT value FROM meta WHERE key='schema_version'").value.iloc[0] == str(SCHEMA_VERSION)
    Store(path)  # opening again is a no-op
    assert len(store.read_sql("SELECT * FROM evaluations")) == 1


def test_a_version_2_store_gains_the_precision_column_and_keeps_its_results(tmp_path):
    import sqlite3

    from dse.results.store import SCHEMA

    path = tmp_path / "v2.sqlite"
    old = "\n".join(line.split("--")[0] for line in SCHEMA.replace("    precision TEXT,", "").splitlines())
    db = sqlite3.connect(path)
    db.executescript(old)
    db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    db.execute("INSERT INTO evaluations (point_id, checkpoint_sha, fault_rate, fault_model, protocol, seed, recalibrate, "
               "rescale, test_images, bn, calib_images, n, mean, accuracies, updated) VALUES ('p', 's', 0.1, 'sa1', "
               "'fixed(2)', 0, 1, 1, 100, 'chip', 500, 2, 50.0, '[49, 51]', 0)")
    db.commit()
    db.close()
    store = Store(path)
    rows = store.read_sql("SELECT bn, calib_images, mean, precision FROM evaluations").to_dict("records")
    assert rows == [{"bn": "chip", "calib_images": 500, "mean": 50.0, "precision": None}]
    assert store.read_sql("SELECT value FROM meta WHERE key='schema_version'").value.iloc[0] == str(SCHEMA_VERSION)
