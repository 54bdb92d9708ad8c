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
from pathlib import Path
from typing import Callable

from dse.core.evaluation.journal import Journal
from dse.domain.errors import DSEError
from dse.domain.point import DesignPoint
from dse.results.store import Store
from dse.run.tasks import CalibrateTask, EvaluateTask, SensitivityTask, Task, TrainTask, from_json, task_id, to_json


class Cancelled(BaseException):
    """Raised inside a worker when its job is cancelled (SIGTERM). A BaseException, as KeyboardInterrupt is: code
    that turns any Exception into an error of its own (a data reader's) must not turn a cancel into a failure."""


def default_data() -> str:
    """The data path the page starts with: $DSE_DATA, else ./data when it exists, else none."""
    from dse.core.io.paths import default_data_path

    path = default_data_path()
    return str(path) if path else ""


def check_data_path(path: str) -> str:
    """A data path typed into the page, which a worker will read: only inside the configured folders."""
    from dse.core.io.paths import check_inside, data_roots

    check_inside(path, data_roots(), "data path", restart="streamlit run app.py")
    return path


def submit(store: Store, task: Task, source: str = "app", spawn: bool = True) -> tuple[str, bool]:
    """Record the task's job and start its worker process if it is new; returns (job id, started)."""
    jid, new = store.submit_job(task.kind, point_of(task).point_id, to_json(task), source, jid=task_id(task))
    if new and spawn:
        start_worker(store, jid)
    return jid, new


def point_of(task: Task) -> DesignPoint:
    """The design point a task works on."""
    if isinstance(task, TrainTask):
        return task.point
    if isinstance(task, EvaluateTask):
        return task.spec.point
    from dse.run.tasks import _point_of

    return _point_of(task.checkpoint)


def start_worker(store: Store, jid: str) -> subprocess.Popen:
    """A detached process (own session), so closing the app's browser tab or a rerun does not kill it. A
    daemon thread waits for it, so a finished worker is reaped at once (never left <defunct>). It imports the
    same `dse` as this process, whatever its working folder (another copy may be installed)."""
    log = store.path.parent / "logs" / f"{jid}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    here = str(Path(__file__).resolve().parents[2])  # the folder holding this dse package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    with open(log, "ab") as f:
        proc = subprocess.Popen([sys.executable, "-m", "dse", "worker", jid, "--store", str(store.path)],
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
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

    signal.signal(signal.SIGTERM, _cancel)
    try:
        _run_claimed(store, jid, job["kind"], job["config"], _Progress(store, jid))
    except (Cancelled, DSEError):
        pass  # recorded in the job's row
    except Exception as e:  # a worker must record any failure, not die silently
        traceback.print_exc()
        store.update_job(jid, state="failed", error=f"{type(e).__name__}: {e}", message="failed",
                         unless=("cancelled",))  # a cancel that landed first stays a cancel


def _run_claimed(store: Store, jid: str, kind: str, config: dict, progress) -> dict:
    """Execute a claimed job and record its outcome in its row: done with its result in the store, or cancelled
    or failed (then raised again, for the caller to report)."""
    try:
        result = execute(kind, config, progress)
        progress(0.99, "recording results", force=True)
        record(store, jid, kind, result)
    except Cancelled:
        store.update_job(jid, state="cancelled", message="cancelled")
        raise
    except DSEError as e:  # a cancel that landed first stays a cancel
        store.update_job(jid, state="failed", error=str(e), message="failed", unless=("cancelled",))
        raise
    store.update_job(jid, state="done", progress=1.0, message="done", eta_s=0)
    return result


def run_here(store: Store, task: Task, source: str = "cli",
             progress: Callable[..., None] | None = None) -> dict:
    """Run one task in this process as a job, as a worker would (`python -m dse evaluate`, `calibrate`, ...): its
    row in the store follows it (running, progress, done), its result lands in the store, and an evaluation
    resumes from its crossbar journal. Work already done runs again (its journal makes an evaluation's rerun
    quick; its result is recorded again). SIGTERM cancels it (DSEError naming the job; rerun to go on)."""
    jid = task_id(task)
    kind, config = task.kind, to_json(task)
    store.reap_dead_jobs()
    job = store.job(jid)
    if job is not None and job["state"] == "running":
        raise DSEError(f"job {jid} (the same work) is running in process {job['pid']}; wait for it, or cancel it "
                       "in the app's Jobs tab")
    store.submit_job(kind, point_of(task).point_id, config, source, jid=jid, owner=os.getpid())
    if store.job(jid)["state"] == "done":  # asked again: run it again (quick from its journal), recorded again
        store.update_job(jid, state="queued", message="queued (again)", progress=0.0)
    if store.claim_job(jid, os.getpid()) is None:
        raise DSEError(f"job {jid} was claimed by another process; wait for it, or cancel it in the app's Jobs tab")
    previous = signal.signal(signal.SIGTERM, _cancel)
    try:
        tracker = _Progress(store, jid)

        def both(fraction, message, force=False, eta_s=None):
            tracker(fraction, message, force, eta_s)
            if progress:
                progress(fraction, message, force, eta_s)

        try:
            return _run_claimed(store, jid, kind, config, both)
        except Cancelled:
            raise DSEError(f"cancelled; job {jid} keeps what it finished: run the same command again to go on") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cancel(signum, frame):
    raise Cancelled()


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
    return {"train": _train, "evaluate": _evaluate, "sensitivity": _sensitivity,
            "calibrate": _calibrate}[kind](task, progress or _no_progress)


def record(store: Store, jid: str, kind: str, result: dict) -> None:
    """Write one finished job's result into the store (the checkpoint must be readable from here)."""

    if kind == "train":
        store.add_checkpoint(result["checkpoint"])
    elif kind == "evaluate":
        store.add_checkpoint(result["checkpoint"])
        spec = from_json(kind, result["config"]).spec
        for r in result["results"]:  # keyed by the weights evaluated, even if the file changed since
            store.add_evaluation(result["checkpoint_sha"], spec, r, r["fault_free_quantized_accuracy"])
    elif kind == "sensitivity":
        store.update_job(jid, result=json.dumps(result["rows"]))
    elif kind == "calibrate":  # new weights' statistics: the design point's digest follows the file
        store.add_checkpoint(result["checkpoint"])
        store.update_job(jid, result=json.dumps(result["calibration"]))


def train_recipe(t: TrainTask):
    """The TrainConfig a train task describes."""
    from dse.core.evaluation.calibrate import DEFAULT_RATES
    from dse.domain.recipes import recipe as named_recipe
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
    """Long because it wires the journal (resume), the progress line and its ETA around one evaluate() call."""
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.io.data import load_cifar10
    from dse.core.runtime.device import pick_device
    from dse.core.evaluation.evaluate import check_specs, evaluate

    ck = load_checkpoint(c.checkpoint)
    spec = check_specs(ck, [c.spec])
    data = load_cifar10(c.data)
    total = spec.budget.instances
    j = journal(c, ck.sha256)
    done, earlier_s = j.read()  # the crossbars finished by earlier runs, and the seconds they took
    spent, clock = [earlier_s], [time.perf_counter()]
    timer = CrossbarTimer(total, len(done))
    progress(0.0, f"loading the checkpoint and CIFAR-10; then {total} crossbars", force=True)

    def on_instance(spec, i, acc):
        now = time.perf_counter()
        spent[0] += now - clock[0]  # the time since the last crossbar is this one's
        clock[0] = now
        done[i - 1:] = [acc]  # crossbar i (1-based)
        j.write(done, spent[0])
        eta = timer.tick(now)
        progress(i / total,  # the last crossbar always reaches the store
                 progress_message(spec.rate, i, total, sum(done) / len(done), eta), eta_s=eta, force=i == total)

    if done:  # to the job's log (a worker's output), never into a command's JSON on stdout
        print(f"reusing finished crossbars: f={spec.rate:g}: {len(done)}", file=sys.stderr, flush=True)
    out = evaluate(ck, data.test_x, data.test_y, [spec], device=pick_device(c.device), progress=False,
                   on_instance=on_instance, done={spec: list(done)}, calib_x=data.train_x,
                   instances_per_pass=c.instances_per_pass, **({"batch_size": c.batch_size} if c.batch_size else {}))
    quantized = out["fault_free_quantized_accuracy"]
    # time_s covers every crossbar of the result, those of earlier runs it reused included
    return {"checkpoint": c.checkpoint, "checkpoint_sha": ck.sha256, "config": to_json(c),
            **{k: out[k] for k in ("precision_reason", "int8") if k in out},
            "results": [{**r, "fault_free_quantized_accuracy": quantized, "time_s": round(r["time_s"] + earlier_s, 3)}
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


def journal(c: EvaluateTask, sha: str) -> Journal:
    """The crossbar journal of evaluate task `c` for weights `sha`."""
    return Journal(c.checkpoint, sha, c.spec)


def _sensitivity(c: SensitivityTask, progress) -> dict:
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.io.data import head, load_cifar10
    from dse.core.runtime.device import pick_device
    from dse.core.evaluation.evaluate import Evaluator, layer_sensitivity

    ck = load_checkpoint(c.checkpoint)
    data = load_cifar10(c.data)
    ev = Evaluator(ck, *head(data.test_x, data.test_y, c.test_images), pick_device(c.device), precision=c.precision,
                   calib_x=data.train_x)
    clean, rows = layer_sensitivity(ev, c.fault_rate, c.instances, c.seed,
                                    on_layer=lambda k, total: progress(0.9 * k / total, f"layer {k}/{total}"))
    # the same crossbars with every layer faulty: instance i's map restricted to one layer is that layer's map
    together = sum(ev.accuracy(ev.injector.weights(i, c.fault_rate, c.seed)) for i in range(c.instances)) / c.instances
    return {"checkpoint": str(ck.path), "rows": rows, "fault_free_accuracy": clean, "all_layers_accuracy": together,
            "test_images": ev.n_images}


def _calibrate(c: CalibrateTask, progress) -> dict:
    """Algorithm 1's statistics for the task's rates, merged into the checkpoint (others kept); the fault-free
    accuracy follows the p' = 0 statistics when they are among them."""
    import torch

    from dse.core.evaluation.calibrate import calibrate_bn
    from dse.core.io.checkpoint import load_bn_buffers, load_checkpoint, save_checkpoint, storage_of
    from dse.core.io.data import load_cifar10
    from dse.core.runtime.device import pick_device
    from dse.core.runtime.precision import default_precision, resolve
    from dse.core.training.train import accuracy

    ckpt = load_checkpoint(c.checkpoint)
    device = pick_device(c.device)
    progress(0.0, "loading the checkpoint and CIFAR-10", force=True)
    data = load_cifar10(c.data)
    model = ckpt.build_model().to(device, memory_format=torch.channels_last)
    choice = resolve(c.precision or default_precision(), ckpt.meta["network"], "calibrate", device)
    t0 = time.perf_counter()
    progress(0.1, f"calibrating BN for {len(c.fault_rates)} fault rates", force=True)
    stats = calibrate_bn(model, data.train_x, list(c.fault_rates), ckpt.meta["mapping"], max_images=c.calib_images,
                         seed=c.seed, device=device, progress=False, precision=choice.precision)
    merged = {**ckpt.bn_stats, **stats}  # new rates replace old ones, others are kept
    meta = {**ckpt.meta, "calibration": {"rates": sorted(merged), "images": c.calib_images or len(data.train_x),
                                          "seed": c.seed, "time_s": round(time.perf_counter() - t0, 2),
                                          "dataset": data.fingerprint, "precision": choice.precision}}
    if 0.0 in stats:  # the fault-free baseline uses the p' = 0 statistics, as after training
        meta.setdefault("test_accuracy_trained_bn", ckpt.meta.get("test_accuracy"))
        load_bn_buffers(model, stats[0.0])
        meta["test_accuracy"] = round(accuracy(model, data.test_x, data.test_y, device), 3)
    save_checkpoint(c.checkpoint, ckpt.state, meta, merged, **storage_of(ckpt.meta))
    return {"checkpoint": c.checkpoint, "calibration": {**meta["calibration"], "test_accuracy": meta.get("test_accuracy")},
            "choice": str(choice)}


def retry(store: Store, jid: str) -> None:
    """Queue a failed or cancelled job again and start a worker for it."""
    job = store.job(jid)
    if job is None or job["state"] not in ("failed", "cancelled"):
        return
    store.update_job(jid, state="queued", error=None, progress=0.0, message="queued (retry)", pid=None)
    start_worker(store, jid)
