"""Background jobs: train or evaluate one design point in a separate process, with its state,
progress, ETA and errors in the results store. The app and sweeps only submit and watch; a worker
(`python -m dse worker JOB_ID`) does the work. Two requests for the same work share one job.
The work itself (`execute`) never touches the store, so a sweep can run it in a process pool or as a
Ray task on another node and have the driver `record` the result."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from dse.core.errors import DSEError
from dse.core.evaluation.journal import Journal
from dse.core.protocol import DEFAULT_CALIB_IMAGES
from dse.core.recipes import DEFAULT_RECIPE, recipe as named_recipe
from dse.results.store import DesignPoint, Store, job_id
from dse.run.tasks import (EvaluateTask, SensitivityTask, TrainTask, checkpoint_name, from_json,  # noqa: F401
                           to_json, train_task)
from dse.core.io.paths import check_inside, data_roots, default_data_path


KINDS = ("train", "evaluate", "sensitivity")


class Cancelled(Exception):
    """Raised inside a worker when its job is cancelled (SIGTERM)."""


def default_data() -> str:
    """The data path the page starts with: $DSE_DATA, else ./data when it exists, else none."""
    path = default_data_path()
    return str(path) if path else ""


def check_data_path(path: str) -> str:
    """A data path typed into the page, which a worker will read: only inside the configured folders."""
    check_inside(path, data_roots(), "data path", restart="streamlit run app.py")
    return path


def job_id_of(kind: str, config: dict) -> str:
    """The id a job for this work has (or will have) in the store."""
    return job_id(kind, config)


def train_config(point: DesignPoint, *, epochs: int, data: str, out_dir: str, seed: int = 0,
                 calib_images: int | None = None, device: str = "auto", recipe: str = DEFAULT_RECIPE) -> dict:
    return to_json(train_task(point, epochs=epochs, data=data, out_dir=out_dir, seed=seed,
                              calib_images=calib_images, device=device, recipe=recipe))


def evaluate_config(checkpoint: str, fault_rates, **kw) -> dict:
    return to_json(EvaluateTask(str(checkpoint), tuple(fault_rates), **{**kw, "data": str(kw["data"])}))


def sensitivity_config(checkpoint: str, fault_rate: float, **kw) -> dict:
    return to_json(SensitivityTask(str(checkpoint), float(fault_rate), **{**kw, "data": str(kw["data"])}))


def submit(store: Store, kind: str, point: DesignPoint, config: dict, source: str = "app",
           spawn: bool = True) -> tuple[str, bool]:
    """Record the job and start its worker process if it is new; returns (job id, started)."""
    if kind not in KINDS:
        raise DSEError(f"unknown job kind {kind!r}; use one of {', '.join(KINDS)}")
    jid, new = store.submit_job(kind, point.point_id, config, source)
    if new and spawn:
        start_worker(store, jid)
    return jid, new


def start_worker(store: Store, jid: str) -> subprocess.Popen:
    """A detached process (own session), so closing the app's browser tab or a rerun does not kill it. A
    daemon thread waits for it, so a finished worker is reaped at once (never left <defunct>)."""
    log = store.path.parent / "logs" / f"{jid}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        proc = subprocess.Popen([sys.executable, "-m", "dse", "worker", jid, "--store", str(store.path)],
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    threading.Thread(target=proc.wait, name=f"reap-{jid[:8]}", daemon=True).start()
    return proc


def cancel(store: Store, jid: str) -> None:
    job = store.job(jid)
    if job is None or job["state"] not in ("queued", "running"):
        return
    store.update_job(jid, state="cancelled", message="cancelled")
    if job["pid"] and job["state"] == "running":  # a queued job's pid is its sweep's driver: not to be stopped
        try:
            os.kill(int(job["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass


class _Progress:
    """Writes progress to the store at most every `every` seconds, with an ETA from the rate so far."""

    def __init__(self, store: Store, jid: str, every: float = 1.0):
        self.store, self.jid, self.every = store, jid, every
        self.t0, self.last = time.time(), 0.0

    def __call__(self, fraction: float, message: str, force: bool = False, eta_s: float | None = None) -> None:
        """eta_s: the caller's own estimate (an evaluation's, from its measured time per crossbar)."""
        now = time.time()
        if not force and now - self.last < self.every:
            return
        self.last = now
        eta = eta_s if eta_s is not None else (now - self.t0) * (1 - fraction) / fraction if fraction > 0 else None
        self.store.update_job(self.jid, progress=min(1.0, fraction), message=message, eta_s=eta)


def run_job(store: Store, jid: str) -> None:
    """The worker body: claim the job, do it, record the outcome (done, failed with its error, cancelled)."""
    job = store.claim_job(jid, os.getpid())
    if job is None:
        return  # already taken, done or cancelled

    def on_term(signum, frame):
        raise Cancelled()

    signal.signal(signal.SIGTERM, on_term)
    progress = _Progress(store, jid)
    try:
        result = execute(job["kind"], job["config"], progress)
        progress(0.99, "recording results", force=True)
        record(store, jid, job["kind"], result)
        store.update_job(jid, state="done", progress=1.0, message="done", eta_s=0)
    except Cancelled:
        store.update_job(jid, state="cancelled", message="cancelled")
    except DSEError as e:
        store.update_job(jid, state="failed", error=str(e), message="failed")
    except Exception as e:  # a worker must record any failure, not die silently
        traceback.print_exc()
        store.update_job(jid, state="failed", error=f"{type(e).__name__}: {e}", message="failed")


# =============================================================================================
# The work itself, apart from the store: `execute` runs anywhere (a worker process, a sweep's
# process pool, a Ray task on another node) and returns a small JSON-able result; `record` writes
# that result into the store on the machine that owns it.
# =============================================================================================


def _no_progress(fraction: float, message: str, force: bool = False, eta_s: float | None = None) -> None:
    pass


def execute(kind: str, config: dict, progress: Callable[..., None] | None = None) -> dict:
    """Do one job's work without touching the results store; returns what `record` needs."""
    task = from_json(kind, config)
    return {"train": _train, "evaluate": _evaluate, "sensitivity": _sensitivity}[kind](task, progress or _no_progress)


def record(store: Store, jid: str, kind: str, result: dict) -> None:
    """Write one finished job's result into the store (the checkpoint must be readable from here)."""

    if kind == "train":
        store.add_checkpoint(result["checkpoint"])
    elif kind == "evaluate":
        pid, _ = store.add_checkpoint(result["checkpoint"])
        for r in result["results"]:  # keyed by the weights evaluated, even if the file changed since
            store.add_evaluation(pid, result["checkpoint_sha"], r, result["protocol"], r["fault_free_quantized_accuracy"])
    elif kind == "sensitivity":
        store.update_job(jid, result=json.dumps(result["rows"]))


def train_recipe(t: TrainTask):
    """The TrainConfig a train task describes."""
    from dse.core.evaluation.calibrate import DEFAULT_RATES
    from dse.core.training.train import TrainConfig

    p = t.point
    recipe = named_recipe(t.recipe, epochs=t.epochs, batch_size=t.batch_size or None, lr=t.lr or None)
    return TrainConfig(network=p.network, width=p.width, shortcut_kernel=p.shortcut_kernel, mapping=p.mapping,
                       dropconnect=p.dropconnect, seed=t.seed, recipe=recipe,
                       calib_rates=tuple(t.calib_rates or DEFAULT_RATES), calib_images=t.calib_images,
                       max_train_images=t.max_train_images, init=t.init, half=t.half, int8=t.int8)


def _train(c: TrainTask, progress) -> dict:
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.io.data import load_cifar10
    from dse.core.runtime.device import pick_device
    from dse.core.training.train import train

    cfg = train_recipe(c)
    out = Path(c.out)
    if out.exists():  # train(resume=True) keeps a finished file as it is: make sure it is this job's
        meta = load_checkpoint(out).meta
        if meta.get("config") != cfg.identity():
            raise DSEError(f"{out} already holds a model trained with other settings "
                           f"({meta.get('epochs')} epochs, recipe {meta.get('recipe')}); "
                           "use another checkpoint folder or delete the file")
    progress(0.0, "loading data", force=True)
    data = load_cifar10(c.data)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = train(cfg, data, out, device=pick_device(c.device), resume=True, progress=False, precision=c.precision,
                 on_step=lambda done, total: progress(0.95 * done / total, f"step {done}/{total}"),
                 log=lambda s: print(s, flush=True))
    return {"checkpoint": str(out), "test_accuracy": meta.get("test_accuracy"),
            "train_time_s": meta.get("train_time_s")}


def _evaluate(c: EvaluateTask, progress) -> dict:
    from dse.core.evaluation.evaluate import Protocol, evaluate
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.io.data import load_cifar10
    from dse.core.runtime.device import pick_device

    ck = load_checkpoint(c.checkpoint)
    protocol = Protocol(instances=c.instances, adaptive=c.adaptive, seed=c.seed, test_images=c.test_images,
                        bn=c.bn, calib_images=c.calib_images or DEFAULT_CALIB_IMAGES, fault_model=c.fault_model).check()
    data = load_cifar10(c.data)
    rates = list(c.fault_rates)
    per_rate = protocol.instances
    journals = {rate: journal(c, ck.sha256, rate) for rate in rates}
    done, earlier_s = {}, {}  # the crossbars finished by earlier runs, and the seconds they took
    for rate, j in journals.items():
        done[rate], earlier_s[rate] = j.read()
    spent = dict(earlier_s)
    clock = [time.perf_counter()]
    timer = CrossbarTimer(len(rates) * per_rate, sum(len(a) for a in done.values()))
    progress(0.0, f"loading the checkpoint and CIFAR-10; then {len(rates) * per_rate} crossbars", force=True)

    def on_instance(rate, i, acc):
        k = rates.index(rate)
        now = time.perf_counter()
        spent[rate] += now - clock[0]  # the time since the last crossbar (of any rate) is this one's
        clock[0] = now
        done[rate][i - 1:] = [acc]  # crossbar i (1-based) of this rate
        journals[rate].write(done[rate], spent[rate])
        eta = timer.tick(now)
        progress((k + i / per_rate) / len(rates),  # a rate's last crossbar always reaches the store
                 progress_message(rate, i, per_rate, sum(done[rate]) / len(done[rate]), eta), eta_s=eta,
                 force=i == per_rate)

    if any(done.values()):
        print("reusing finished crossbars: " + ", ".join(f"f={r:g}: {len(a)}" for r, a in done.items() if a),
              flush=True)
    out = evaluate(ck, data.test_x, data.test_y, rates, protocol=protocol, device=pick_device(c.device),
                   progress=False, on_instance=on_instance, done={r: list(a) for r, a in done.items()},
                   calib_x=data.train_x, precision=c.precision)
    quantized = out["fault_free_quantized_accuracy"]
    # time_s covers every crossbar of the result, those of earlier runs it reused included
    return {"checkpoint": c.checkpoint, "checkpoint_sha": ck.sha256, "protocol": asdict(protocol),
            "results": [{**r, "fault_free_quantized_accuracy": quantized,
                         "time_s": round(r["time_s"] + earlier_s.get(r["fault_rate"], 0.0), 3)}
                        for r in out["results"]]}


class CrossbarTimer:
    """An ETA from the measured time per crossbar: the seconds between crossbars finished in this run (the
    first one's start-up, data loading and BN statistics, are not counted), times the crossbars left."""

    def __init__(self, total: int, finished: int = 0):
        self.total, self.finished, self.first, self.last = total, finished, None, None
        self.timed = 0

    def tick(self, now: float) -> float | None:
        """One more crossbar finished at `now` (seconds); the ETA in seconds, None until two are timed."""
        self.finished += 1
        if self.first is None:
            self.first = now
        else:
            self.timed += 1
        self.last = now
        if not self.timed:
            return None
        return (self.last - self.first) / self.timed * max(0, self.total - self.finished)


def progress_message(rate: float, i: int, n: int, mean: float, eta_s: float | None) -> str:
    """An evaluation's progress as a job row shows it: 'f = 10%: crossbar 7 of 100 · running mean 81.23% ·
    ETA 2 min 05 s' (no ETA until two crossbars have been timed)."""
    eta = "" if eta_s is None else f" · ETA {format_eta(eta_s)}"
    return f"f = {100 * rate:g}%: crossbar {i} of {n} · running mean {mean:.2f}%{eta}"


def format_eta(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"


def journal(c: EvaluateTask, sha: str, rate: float) -> Journal:
    """The crossbar journal of evaluate task `c` at one fault rate, for weights `sha`."""
    return Journal(c.checkpoint, sha, rate, c.seed, c.test_images, c.bn, c.calib_images, c.fault_model)


def _sensitivity(c: SensitivityTask, progress) -> dict:
    from dse.core.evaluation.evaluate import Evaluator, layer_sensitivity
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.io.data import head, load_cifar10
    from dse.core.runtime.device import pick_device

    ck = load_checkpoint(c.checkpoint)
    data = load_cifar10(c.data)
    ev = Evaluator(ck, *head(data.test_x, data.test_y, c.test_images), pick_device(c.device), precision=c.precision,
                   calib_x=data.train_x)
    _, rows = layer_sensitivity(ev, c.fault_rate, c.instances, c.seed,
                                on_layer=lambda k, total: progress(k / total, f"layer {k}/{total}"))
    return {"rows": rows}


def retry(store: Store, jid: str) -> None:
    """Queue a failed or cancelled job again and start a worker for it."""
    job = store.job(jid)
    if job is None or job["state"] not in ("failed", "cancelled"):
        return
    store.update_job(jid, state="queued", error=None, progress=0.0, message="queued (retry)", pid=None)
    start_worker(store, jid)
