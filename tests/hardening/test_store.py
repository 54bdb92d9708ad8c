"""The results store under load and damage: an app job, a sweep and a page reading, all at once in separate
processes, lose no row and never show "database is locked"; a store damaged anywhere (not only its header) is
detected, named in one line, moved aside and rebuilt from the checkpoint folders."""
import multiprocessing as mp
import traceback

import pytest

from dse.results.catalog import sync
from dse.domain.point import DesignPoint
from dse.results.store import Store, open_store
from tests.fixtures import POINTS, accuracy_model, add_result, build_store, fake_result
from tests.hardening.common import run_cli
from tests.test_app import app, metric

JOB_STEPS, SWEEP_JOBS = 100, 30


def _app_job(path: str, report) -> None:
    """What a worker started by the app writes: progress many times a second, then its results."""
    try:
        store = Store(path)
        pid = POINTS[0].point_id
        jid, _ = store.submit_job("evaluate", pid, {"app": 1}, source="app")
        store.claim_job(jid, 1)
        for i in range(JOB_STEPS):
            store.update_job(jid, progress=i / JOB_STEPS, message=f"crossbar {i}")
            if i % 10 == 0:
                add_result(store, POINTS[0], "sha", {**fake_result(0.1, 50.0), "seed": i})
        store.update_job(jid, state="done", progress=1.0)
        report.put(("app job", None))
    except BaseException:
        report.put(("app job", traceback.format_exc()))


def _sweep(path: str, report) -> None:
    """What a sweep's driver writes: jobs submitted, claimed and finished, design points registered."""
    try:
        store = Store(path)
        for i in range(SWEEP_JOBS):
            point = DesignPoint("vgg13", 1.0 + i / 100)
            store.upsert_point(point, fault_free_accuracy=float(i))
            jid, _ = store.submit_job("train", point.point_id, {"sweep": i}, source="sweep")
            store.claim_job(jid, 1)
            store.update_job(jid, message="running")
            store.update_job(jid, state="done", progress=1.0)
        report.put(("sweep", None))
    except BaseException:
        report.put(("sweep", traceback.format_exc()))


def _page(path: str, stop, report) -> None:
    """What the app's pages read meanwhile (the design table, the Jobs tab), over and over."""
    from dse.view import explore

    try:
        store, reads = Store(path), 0
        while not stop.is_set() or reads < 5:
            explore.design_table(store, explore.SA1.at(0.1))
            store.jobs()
            reads += 1
        report.put(("page", None))
    except BaseException:
        report.put(("page", traceback.format_exc()))


@pytest.mark.slow
def test_an_app_job_a_sweep_and_a_page_at_once_lose_no_row(tmp_path):
    path = str(tmp_path / "results.sqlite")
    store = Store(path)
    store.upsert_point(POINTS[0])
    ctx = mp.get_context("spawn")
    report, stop = ctx.Queue(), ctx.Event()
    writers = [ctx.Process(target=f, args=(path, report)) for f in (_app_job, _sweep)]
    page = ctx.Process(target=_page, args=(path, stop, report))
    for p in [page, *writers]:
        p.start()
    for p in writers:
        p.join(240)
    stop.set()
    page.join(120)
    outcomes = dict(report.get(timeout=10) for _ in range(3))
    assert outcomes == {"app job": None, "sweep": None, "page": None}, outcomes  # no "database is locked"
    jobs = store.jobs()
    assert len(jobs) == 1 + SWEEP_JOBS and set(jobs.state) == {"done"}
    assert len(store.points()) == 1 + SWEEP_JOBS
    assert len(store.read_sql("SELECT * FROM evaluations")) == JOB_STEPS // 10


def test_damage_anywhere_in_the_store_is_detected_and_rebuilt_from_checkpoints(tmp_path):
    store, ckdir = build_store(tmp_path)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"results.sqlite{suffix}").unlink(missing_ok=True)
    good = store.path.read_bytes()
    page = 4096
    read_errors = 0
    for start in range(page, len(good), page):  # each page in turn; page 0 is the header
        store.path.write_bytes(good[:start] + b"\x5a" * page + good[start + page:])
        code, _, err = run_cli(["store", "show", "--store", str(store.path)])
        assert code in (0, 2) and "Traceback" not in err and err.count("\n") <= 1, err  # one line, if any
        read_errors += "is corrupt" in err
        fresh = open_store(store.path)  # what the app does on start: detects it, moves it aside
        moved = list(tmp_path.glob("results.sqlite.corrupt-*"))
        assert len(moved) == 1 and fresh.points().empty, start
        moved[0].unlink()
    assert read_errors > 0
    report = sync(fresh, [ckdir])
    assert report["points"] == len(POINTS) and not report["problems"]


def test_the_app_on_a_corrupt_store_rebuilds_it_and_shows_the_checkpoints(tmp_path, monkeypatch):
    build_store(tmp_path)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"results.sqlite{suffix}").unlink(missing_ok=True)
    (tmp_path / "results.sqlite").write_bytes(b"not a database" * 500)
    at = app(tmp_path, monkeypatch)
    assert not at.exception
    p = POINTS[1]  # the default selection; evaluations lived only in the lost store
    assert metric(at, "Fault-free accuracy") == f"{accuracy_model(p, 0.0):.2f}%"
    assert metric(at, "Accuracy under faults") == "—"
    assert list(tmp_path.glob("results.sqlite.corrupt-*"))
    assert len(Store(tmp_path / "results.sqlite").points()) == len(POINTS)
