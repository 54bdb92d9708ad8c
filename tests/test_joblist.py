"""What a background job says while it runs (dse.run.jobs progress messages, dse.view.joblist titles and status
lines), and that a finished worker process is reaped."""
import os
import time

import pytest

from dse.run import jobs
from dse.view import joblist
from dse.domain.bn import Chip
from dse.domain.evalspec import EvalSpec
from dse.domain.faultspec import parse_fault_model
from dse.domain.point import DesignPoint
from dse.run.tasks import EvaluateTask, to_json


def test_progress_names_the_crossbar_the_running_mean_and_the_eta():
    assert jobs.progress_message(0.1, 7, 100, 81.234, 125.4) == \
        "f = 10%: crossbar 7 of 100 · running mean 81.23% · ETA 2 min 05 s"
    assert jobs.progress_message(0.15, 1, 20, 80.0, None) == "f = 15%: crossbar 1 of 20 · running mean 80.00%"
    assert jobs.format_eta(3725) == "1 h 02 min" and jobs.format_eta(-3) == "0 min 00 s"


def test_the_eta_comes_from_the_measured_time_per_crossbar_not_the_start_up():
    timer = jobs.CrossbarTimer(total=10)
    assert timer.tick(100.0) is None  # the first crossbar carries the start-up: not timed
    assert timer.tick(102.0) == pytest.approx(2.0 * 8)  # 2 s per crossbar, 8 left
    assert timer.tick(106.0) == pytest.approx(3.0 * 7)  # (106 - 100) / 2 timed
    resumed = jobs.CrossbarTimer(total=10, finished=6)  # crossbars from an earlier run count as done
    resumed.tick(0.0)
    assert resumed.tick(5.0) == pytest.approx(5.0 * 2)


def test_a_job_row_names_kind_point_fault_model_rate_protocol_and_crossbars():
    spec = EvalSpec(DesignPoint("resnet20", 1.0, 1, "default", 0.3), parse_fault_model("sa0", 0.15), Chip(500))
    cfg = to_json(EvaluateTask("ck/resnet20-w1-k1-default-p0.3-s0.safetensors", spec, "d"))
    title = joblist.job_title({"kind": "evaluate", "config": cfg})
    assert title == "evaluate · resnet20 1x k1 p=0.3 · SA0 at 15% · BN: chip (N=500) · 100 crossbars"
    stored = {k: v for k, v in cfg.items() if k != "point"}  # a config stored before tasks named their point
    assert joblist.job_title({"kind": "evaluate", "config": stored}).startswith("evaluate · resnet20-w1-k1-default-p0.3-s0 ·")
    other = joblist.job_title({"kind": "evaluate", "config": {**cfg, "fault_rates": [0.17]}})
    assert other != title and "17%" in other  # a 15% and a 17% job no longer look the same


def test_the_status_line_is_the_same_wherever_the_job_is_shown():
    job = {"kind": "evaluate", "state": "running", "progress": 0.07, "eta_s": None,
           "message": jobs.progress_message(0.1, 7, 100, 81.2, 60.0)}
    line = joblist.job_status(job)
    assert line == "evaluating (running, 7%): f = 10%: crossbar 7 of 100 · running mean 81.20% · ETA 1 min 00 s"
    train = {"kind": "train", "state": "running", "progress": 0.5, "eta_s": 90.0, "message": "step 5/10"}
    assert joblist.job_status(train) == "training (running, 50%): step 5/10 · ETA 1 min 30 s"
    assert joblist.job_status({"kind": "train", "state": "queued", "progress": None, "message": "queued"}) == \
        "training (queued, 0%)"


def test_a_finished_worker_is_reaped_not_left_defunct(tmp_path):
    from dse.results.store import Store

    store = Store(tmp_path / "s.sqlite")
    proc = jobs.start_worker(store, "no-such-job")  # claims nothing and exits at once
    for _ in range(600):  # up to a minute on a busy machine; no timing is asserted
        if not os.path.exists(f"/proc/{proc.pid}"):
            break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{proc.pid}"), open(f"/proc/{proc.pid}/stat").read()  # no <defunct> left
    assert proc.wait(timeout=60) == 0  # the reaping thread's result (it may be setting it right now)
