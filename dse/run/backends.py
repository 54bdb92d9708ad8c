"""Where a sweep's jobs run. Every backend runs the same unit of work, `run_task` (dse.run.jobs.execute with
any failure turned into a message) and hands its result back to the sweep's driver, which alone writes
the results store:

- `local`, one worker (default): in the driver's own process, one job after another, with live progress
  in the store;
- `local` with `workers` > 1: a pool of spawned processes on this machine, the cores split between them;
- `ray`: Ray tasks on a cluster (or a local Ray started for the sweep), with resource requests (a GPU for
  training when the cluster has them, CPUs for evaluation) and retries when a worker or node dies.

Each backend offers: has_room(), submit(jid, job), wait(timeout) -> [(jid, outcome)], cancel(jid), close().
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback

from dse.core.errors import DSEError
from dse.core.runtime.allocator import keep_freed_memory
from dse.run.jobs import Cancelled, _Progress, execute

BACKENDS = ("local", "ray")
RAY_INSTALL = "the ray backend needs Ray: pip install 'rram-dse[ray]' (or pip install 'ray[default]')"


def run_task(kind: str, config: dict, threads: int | None = None, progress=None) -> dict:
    """One job's work, anywhere: {"ok": True, "result": ...} or {"ok": False, "error": one line}."""
    keep_freed_memory()  # a Ray task's or pool's worker process: see dse.core.runtime.allocator
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the job's log lines; stdout is the sweep's (--json)
            return {"ok": True, "result": execute(kind, config, progress)}
    except Cancelled:
        return {"ok": False, "cancelled": True}
    except DSEError as e:
        return {"ok": False, "error": str(e)}
    except Exception as e:  # reported as the job's error; the sweep goes on with the other jobs
        traceback.print_exc()
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def make_backend(name: str, spec, *, workers: int = 1, address: str | None = None, store=None):
    if name not in BACKENDS:
        raise DSEError(f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}")
    if name == "ray":
        return RayBackend(spec, address)
    if address:
        raise DSEError(f"--address {address!r} is for the ray backend; add --backend ray")
    if workers < 1:
        raise DSEError(f"workers must be a positive integer, got {workers!r}")
    return Sequential(store) if workers == 1 else Pool(workers)


# =============================================================================================
# local
# =============================================================================================


class Sequential:
    """In the driver's process, one job at a time; its progress goes straight to the store."""

    polls = False  # wait() returns only when a job has finished
    started_message = "running"

    def __init__(self, store):
        self.store = store
        self.queue: list[tuple[str, object]] = []
        self.current: str | None = None  # the job running now (the driver's SIGTERM handler stops it)

    def has_room(self) -> bool:
        return not self.queue

    def submit(self, jid: str, job) -> None:
        self.queue.append((jid, job))

    def wait(self, timeout: float | None) -> list[tuple[str, dict]]:
        if not self.queue:
            time.sleep(timeout or 0)
            return []
        jid, job = self.queue.pop(0)
        self.current = jid
        try:
            outcome = run_task(job.kind, job.config, progress=_Progress(self.store, jid))
        finally:
            self.current = None
        return [(jid, outcome)]

    def cancel(self, jid: str) -> None:
        self.queue = [(j, job) for j, job in self.queue if j != jid]

    def close(self) -> None:
        pass


def _init_pool_worker(threads: int) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    torch.set_num_threads(threads)


class Pool:
    """A few spawned worker processes on this machine, the cores split between them."""

    polls = True
    started_message = "running in a local worker process"

    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        threads = max(1, (os.cpu_count() or 1) // workers)
        # spawn, not fork: a forked copy of a process that has run torch can deadlock in its thread pools
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_pool_worker, initargs=(threads,))
        self.futures: dict = {}  # future -> job id
        self.current = None

    def has_room(self) -> bool:
        return len(self.futures) < self.workers  # claim a job only when a process is free for it

    def submit(self, jid: str, job) -> None:
        self.futures[self.pool.submit(run_task, job.kind, job.config)] = jid

    def wait(self, timeout: float | None) -> list[tuple[str, dict]]:
        from concurrent.futures import FIRST_COMPLETED, CancelledError
        from concurrent.futures import wait as wait_futures

        if not self.futures:
            time.sleep(timeout or 0)
            return []
        done, _ = wait_futures(list(self.futures), timeout, FIRST_COMPLETED)
        out = []
        for f in done:
            jid = self.futures.pop(f)
            try:
                out.append((jid, f.result()))
            except CancelledError:
                out.append((jid, {"ok": False, "cancelled": True}))
            except Exception as e:  # BrokenProcessPool: a worker process died (killed, out of memory)
                out.append((jid, {"ok": False, "error": f"the worker process died: {type(e).__name__}: {e}"}))
        return out

    def cancel(self, jid: str) -> None:
        for f, j in self.futures.items():
            if j == jid:
                f.cancel()  # a job already running finishes; the driver then drops its result

    def close(self) -> None:
        procs = list(getattr(self.pool, "_processes", {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:  # workers still busy (the sweep was interrupted) are ours to stop
            if p.is_alive():
                p.terminate()


# =============================================================================================
# ray
# =============================================================================================


def import_ray():
    try:
        import ray
    except ImportError:
        raise DSEError(RAY_INSTALL) from None
    return ray


class RayBackend:
    """Ray tasks: `num_gpus` for training on GPU nodes, CPUs for evaluation, `max_retries` re-runs a task
    whose worker or node died (a job's own error is not retried). Checkpoints go to the spec's
    checkpoint_dir, which every node must see at the same path; results come back to the driver."""

    polls = True
    started_message = "submitted to Ray"

    def __init__(self, spec, address: str | None = None):
        self.ray = ray = import_ray()
        self.owns = not ray.is_initialized()  # a connection made here is closed here
        if self.owns:
            kwargs = {} if (address or "").startswith("ray://") else {"include_dashboard": False,
                                                                      "log_to_driver": False}
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise DSEError(f"cannot start or reach Ray at {address or 'a new local cluster'}: "
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        res = spec.resources
        gpus = ray.cluster_resources().get("GPU", 0)
        train_gpus = res["train_gpus"]
        if train_gpus == "auto":
            train_gpus = 1 if gpus >= 1 and spec.device != "cpu" else 0
        if spec.device.startswith("cuda") and gpus < 1:
            self.close()
            raise DSEError(f"device {spec.device!r} asked for, but the Ray cluster has no GPU; "
                           "set device = \"auto\" or \"cpu\" in the spec")
        if max(train_gpus, res["evaluate_gpus"]) > gpus:
            self.close()
            raise DSEError(f"resources ask for {max(train_gpus, res['evaluate_gpus']):g} GPUs per job, but the Ray "
                           f"cluster has {gpus:g}; lower resources.train_gpus / resources.evaluate_gpus")
        remote = ray.remote(run_task)
        common = dict(num_cpus=res["cpus"], max_retries=res["max_retries"])
        self.tasks = {"train": remote.options(num_gpus=train_gpus, **common),
                      "evaluate": remote.options(num_gpus=res["evaluate_gpus"], **common)}
        self.threads = max(1, int(res["cpus"]))  # torch threads = CPUs reserved, as Ray sets OMP_NUM_THREADS
        self.refs: dict = {}  # object ref -> job id
        self.current = None

    def has_room(self) -> bool:
        return True  # Ray queues tasks until a node has the resources

    def submit(self, jid: str, job) -> None:
        self.refs[self.tasks[job.kind].remote(job.kind, job.config, self.threads)] = jid

    def wait(self, timeout: float | None) -> list[tuple[str, dict]]:
        ray = self.ray
        if not self.refs:
            time.sleep(timeout or 0)
            return []
        refs = list(self.refs)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        out = []
        for ref in ready:
            jid = self.refs.pop(ref)
            try:
                out.append((jid, ray.get(ref)))
            except ray.exceptions.TaskCancelledError:
                out.append((jid, {"ok": False, "cancelled": True}))
            except ray.exceptions.RayError as e:  # the worker or node died more often than max_retries
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                out.append((jid, {"ok": False, "error": f"Ray: {type(e).__name__}: {first}"}))
        return out

    def cancel(self, jid: str) -> None:
        for ref, j in self.refs.items():
            if j == jid:
                self.ray.cancel(ref, force=True)

    def close(self) -> None:
        for ref in list(self.refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:
                pass
        self.refs.clear()
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()
