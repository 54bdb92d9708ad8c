"""Sweeps: `expand` turns a sweep spec (dse/spec.py) into train and evaluate jobs with their
dependencies, and `run_sweep` runs them on a backend (dse/backends.py) with every job's state in the
results store (source "sweep"), so the app's Jobs view shows them too.

Jobs. One train job per design point; it includes BN calibration (`dse.core.training.train.train` re-estimates the
statistics for every target fault rate before it writes the checkpoint), so there is no separate
calibrate job. One evaluate job per (design point, fault rate), depending on the point's train job:
small jobs spread well over a cluster, and adding a fault rate later reuses everything done. A job's id
is a hash of its config (dse.results.store.job_id), so a rerun, the app and another sweep asking for the same
work share one job, and jobs already done are skipped.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dse.core.errors import DSEError
from dse.core.protocol import LEGACY_BN
from dse.core.recipes import RECIPES
from dse.results.catalog import sync, write_manifest
from dse.results.store import DesignPoint, Store, file_stamp, job_id, label
from dse.run import jobs, tasks
from dse.run.backends import make_backend
from dse.run.jobs import Cancelled, record
from dse.run.spec import SweepSpec, fail
from dse.run.tasks import from_json


# =============================================================================================
# Expansion into jobs
# =============================================================================================


@dataclass(frozen=True)
class Job:
    kind: str  # train | evaluate
    point: DesignPoint
    config: dict = field(hash=False)
    deps: tuple[str, ...] = ()  # job ids that must be done first

    @property
    def task(self):
        """The job's typed task (dse.run.tasks), read from its config."""
        return from_json(self.kind, self.config)

    @property
    def job_id(self) -> str:
        return job_id(self.kind, self.config)

    @property
    def label(self) -> str:
        from dataclasses import asdict

        what = label(asdict(self.point))
        if self.kind != "evaluate":
            return f"{self.kind} {what}"
        bn = self.config.get("bn", LEGACY_BN)
        return f"{self.kind} {what} f={self.config['fault_rates'][0]:g}" + ("" if bn == "paper" else f" bn={bn}")


def resolve_data(spec: SweepSpec, data: str | os.PathLike | None = None) -> str:
    """The data source: an argument, else the spec's, else $DSE_DATA; absolute, as nodes need it."""
    chosen = data or spec.data or os.environ.get("DSE_DATA")
    if not chosen:
        raise DSEError("the sweep needs CIFAR-10: set data in the spec, pass --data PATH or set DSE_DATA")
    return str(Path(chosen).expanduser().absolute())


def expand(spec: SweepSpec, data: str | os.PathLike | None = None) -> list[Job]:
    """Train and evaluate jobs for every design point of the spec, each train job before its evaluations.
    Paths are made absolute (from the current folder): nodes of a cluster must see the same paths."""
    from dse.core.evaluation.calibrate import DEFAULT_RATES
    data = resolve_data(spec, data)
    out_dir = str(Path(spec.checkpoint_dir).expanduser().absolute())
    plan = []
    trains: dict[DesignPoint, Job] = {}
    bases: dict[DesignPoint, DesignPoint] = {}  # fine-tuned point -> its base
    later: list[Job] = []  # evaluations under the 2nd, 3rd... BN protocol: after every point's first protocol
    for point, rates, grid in spec.blocks():
        base = grid.base_of(point)
        r = {**spec.recipe, **dict(grid.recipe), **(dict(grid.finetune_recipe) if base else {})}
        p = {**spec.protocol, **dict(grid.protocol)}
        # a recipe value equal to the named recipe's is left None, as the app leaves it: one job for both
        named = RECIPES[r["name"]]
        recipe = {k: (None if r[k] in (None, getattr(named, k)) else r[k]) for k in ("batch_size", "lr")}
        task = tasks.train_task(
            point, epochs=r["epochs"] or named.epochs, recipe=r["name"], data=data, out_dir=out_dir, seed=spec.seed, calib_images=r["calib_images"],
            device=spec.device, precision=spec.precision, half=bool(r["half"]), int8=bool(r["int8"]), max_train_images=r["max_train_images"] or None,
            # calibrate BN for every rate the sweep evaluates
            calib_rates=None if set(rates) <= set(DEFAULT_RATES) else tuple(set(DEFAULT_RATES) | set(rates)),
            init=str(Path(out_dir) / tasks.checkpoint_name(base, spec.seed)) if base is not None else None, **recipe)
        if base is not None:
            bases[point] = base
        cfg = tasks.to_json(task)
        train = Job("train", point, cfg)
        trains[point] = train
        plan.append(train)
        models = p.get("fault_model", "sa1")
        for i, bn in enumerate(p["bn"] if isinstance(p["bn"], list) else [p["bn"]]):
            for fault_model in (models if isinstance(models, list) else [models]):
                for f in rates:
                    ecfg = tasks.to_json(tasks.EvaluateTask(
                        task.out, (f,), data, instances=p["instances"], adaptive=p["adaptive"], seed=p["seed"],
                        device=spec.device, test_images=p["test_images"], bn=bn, calib_images=p["calib_images"],
                        fault_model=fault_model, precision=spec.precision))
                    (later if i else plan).append(Job("evaluate", point, ecfg, deps=(train.job_id,)))
    plan += later
    for i, job in enumerate(plan):  # fine-tuned points wait for their base's training (any block's)
        if job.kind == "train" and job.point in bases:
            plan[i] = Job("train", job.point, job.config, deps=(trains[bases[job.point]].job_id,))
    if spec.only:
        keep = {p for p in trains if all(getattr(p, axis) in values for axis, values in spec.only)}
        if not keep:
            fail("--only", "selects no design point of the spec")
        needed = set(keep)
        for p in keep:  # a chain of bases, if fine-tunes are stacked
            while p in bases:
                p = bases[p]
                needed.add(p)
        plan = [j for j in plan if j.point in keep or (j.kind == "train" and j.point in needed)]
    return plan


# =============================================================================================
# Running a sweep
# =============================================================================================


class SweepInterrupted(KeyboardInterrupt):
    """SIGTERM (or Ctrl-C) to the sweep's driver."""


FINAL = ("done", "failed", "cancelled")


def run_sweep(spec: SweepSpec, store: Store, *, backend: str = "local", workers: int = 1,
              address: str | None = None, data: str | os.PathLike | None = None, progress: bool = True,
              log: Callable[[str], None] = print, poll_s: float = 1.0) -> dict:
    """Run every job of the spec that the store does not have done; returns a summary.

    The driver (this process) alone writes the store: it claims each job (state running, its own pid),
    hands the work to the backend and records the result. A driver that dies leaves its jobs running
    under a dead pid; the next run reaps them to failed and redoes them (training resumes from
    `<checkpoint>.partial`). Jobs queued or run by someone else (the app, another sweep) are waited for.
    """
    from tqdm.auto import tqdm

    t0 = time.time()
    plan = expand(spec, data)
    data_path = Path(plan[0].config["data"])
    if not data_path.exists():
        raise DSEError(f"sweep data {str(data_path)!r} does not exist; set data in the spec or pass --data")
    ckdir = Path(spec.checkpoint_dir).expanduser()
    ckdir.mkdir(parents=True, exist_ok=True)
    runner = make_backend(backend, spec, workers=workers, address=address, store=store)
    try:
        store.reap_dead_jobs()
        by_id = {j.job_id: j for j in plan}
        sync(store, [ckdir])  # checkpoints already there, with their manifest's evaluations, count as done
        standing = _standing(store, plan)
        state = {}
        for j in plan:
            jid, new = store.submit_job(j.kind, j.point.point_id, j.config, source="sweep", owner=os.getpid())
            state[jid] = store.job(jid)["state"]
            if state[jid] == "done" and not standing[jid]:  # its checkpoint was deleted or replaced since
                store.update_job(jid, state="failed", error="its result is gone: checkpoint deleted or replaced")
                store.submit_job(j.kind, j.point.point_id, j.config, source="sweep", owner=os.getpid())
                state[jid] = "queued"
            elif new and j.kind == "evaluate" and standing[jid]:  # e.g. imported from a shipped manifest
                store.update_job(jid, state="done", progress=1.0, message="result already in the store")
                state[jid] = "done"
        skipped = sum(s == "done" for s in state.values())
        todo = [jid for jid in by_id if state[jid] != "done"]
        seeded = _seed_journals(store, [by_id[jid] for jid in todo if by_id[jid].kind == "evaluate"])
        log(f"sweep {spec.name}: {len(plan)} jobs, {skipped} already done, {len(todo)} to run "
            f"({backend} backend)" + (f"; {seeded} evaluations go on from crossbars in the store" if seeded else ""))
        driver = _Driver(store, runner, by_id, state, poll_s)
        if spec.manifest:  # the folder's manifest.json follows every result, ready to commit at any time
            driver.on_recorded = lambda: write_manifest(store, ckdir, data_path)
        bar = tqdm(total=len(todo), unit="job", desc=f"sweep {spec.name}", disable=not progress)
        try:
            driver.run(todo, bar)
        finally:
            bar.close()
    finally:
        runner.close()
    counts = {s: sum(state[jid] == s for jid in todo) for s in FINAL}
    failures = [{"job_id": jid, "job": by_id[jid].label, "state": state[jid],
                 "error": (store.job(jid) or {}).get("error")} for jid in todo if state[jid] != "done"]
    return {"spec": spec.name, "store": str(store.path), "backend": backend, "jobs": len(plan), "skipped": skipped,
            "ran": len(todo), **counts, "failures": failures, "time_s": round(time.time() - t0, 1)}


def _standing(store: Store, plan: list[Job]) -> dict[str, bool]:
    """Whether each job's result is in place now: a training's checkpoint reads back; an evaluation has a
    result for the checkpoint on disk (its weights, by sha256), rate and seed, at least as large as asked."""
    rows = store.evaluation_rows("standing")
    found: dict[tuple, list] = {}
    for r in rows.itertuples():
        found.setdefault((r.point_id, r.checkpoint_sha, round(r.fault_rate, 9), r.seed, r.bn, r.calib_images,
                          r.fault_model), []).append(r)
    asked, sha = _images_asked(rows), _digests(store)

    def enough(r, c) -> bool:
        if r.test_images != asked(c, r.point_id, r.checkpoint_sha):
            return False
        if r.fault_rate == 0:  # no faults: one instance is every instance
            return r.n >= 1
        if c["adaptive"]:
            return r.n >= c["instances"] or (r.n >= 20 and r.ci95 <= c["adaptive"])
        return r.protocol.startswith("fixed") and r.n >= c["instances"]

    out = {}
    for j in plan:
        c = j.config
        if j.kind == "train":
            out[j.job_id] = sha(c["out"]) is not None
        else:
            t = j.task
            key = (j.point.point_id, sha(t.checkpoint), round(t.fault_rates[0], 9), t.seed, t.bn, t.calib_images,
                   t.fault_model)
            out[j.job_id] = any(enough(r, c) for r in found.get(key, []))
    return out


def _images_asked(rows) -> Callable[[dict, str, str], int | None]:
    """(job config, point, weights digest) -> how many test images its results must cover. A job asking for
    all of them (None) means the largest count recorded for those weights: the sweep does not load the data."""
    largest = rows.groupby(["point_id", "checkpoint_sha"]).test_images.max().to_dict()
    return lambda c, point_id, digest: c["test_images"] or largest.get((point_id, digest))


def _digests(store: Store) -> Callable[[str], str | None]:
    """checkpoint path -> the digest of its weights (None when unreadable), trusting the store's digest of a
    file it has verified as it is now."""
    from dse.core.io.checkpoint import load_checkpoint

    shas: dict[str, str | None] = {}
    verified = {r.checkpoint: (r.file_stamp, r.checkpoint_sha) for r in store.points().itertuples()}

    def sha(path: str) -> str | None:
        if path not in shas:
            try:
                stamp, digest = verified.get(path, (None, None))
                if stamp is None or stamp != file_stamp(path):  # not verified by the store as it is now
                    digest = load_checkpoint(path).sha256
                shas[path] = digest
            except (DSEError, OSError):
                shas[path] = None
        return shas[path]

    return sha


def _recorded_crossbars(store: Store, evaluations: list[Job]):
    """For each evaluate job and fault rate > 0: the crossbars the store already holds for its weights, rate,
    seed and test images (e.g. from a shipped manifest), as (job, rate, weights digest, accuracies, seconds)."""
    import json

    import pandas as pd

    if not evaluations:
        return
    rows = store.evaluation_rows("crossbars", where="sa1-recalibrated")
    asked, sha = _images_asked(rows), _digests(store)
    for j in evaluations:
        c, digest = j.config, sha(j.config["checkpoint"])
        for rate in c["fault_rates"]:
            if digest is None or rate == 0 or j.task.fault_model != "sa1":  # the rows read are SA1's
                continue
            mine = rows[(rows.point_id == j.point.point_id) & (rows.checkpoint_sha == digest)
                        & ((rows.fault_rate - rate).abs() < 1e-9) & (rows.seed == c["seed"])
                        & (rows.bn == j.task.bn) & (rows.calib_images == j.task.calib_images)]
            mine = mine[mine.test_images == asked(c, j.point.point_id, digest)]
            if len(mine):
                best = mine.loc[mine.n.idxmax()]  # instance i is the same map whatever the protocol
                seconds = 0.0 if pd.isna(best.time_s) else float(best.time_s)  # NULL when not timed
                yield j, rate, digest, json.loads(best.accuracies), seconds


def _seed_journals(store: Store, evaluations: list[Job]) -> int:
    """Give each evaluate job the crossbars the store already holds for it, as if an earlier run of it had
    journaled them: asking 100 crossbars where 20 are recorded runs only the other 80. An existing journal
    is kept."""
    seeded = 0
    for j, rate, digest, accuracies, seconds in _recorded_crossbars(store, evaluations):
        journal = jobs.journal(j.task, digest, rate)
        if not journal.path.exists():
            journal.write(accuracies, seconds)
            seeded += 1
    return seeded


def preview(spec: SweepSpec, store: Store, data: str | os.PathLike | None = None) -> list[dict]:
    """What `run_sweep` would do, claiming and running nothing: each job's state as the run would find it
    (the folder's checkpoints and manifest imported first, as the run does) and, for an evaluation still
    to run, the crossbars it would go on from (recorded in the store or journaled by an earlier run)."""
    plan = expand(spec, data)
    store.reap_dead_jobs()
    ckdir = Path(spec.checkpoint_dir).expanduser()
    if ckdir.is_dir():
        sync(store, [ckdir])
    standing = _standing(store, plan)
    table = store.jobs()
    states = dict(zip(table.job_id, table.state))
    todo = [j for j in plan if j.kind == "evaluate" and not standing[j.job_id]]
    recorded = {(j.job_id, rate): len(accs) for j, rate, _, accs, _ in _recorded_crossbars(store, todo)}
    have, sha = {}, _digests(store)
    for j in todo:
        digest = sha(j.config["checkpoint"])
        for rate in j.config["fault_rates"]:
            journaled = [] if digest is None else jobs.journal(j.task, digest, rate).read()[0]
            have[j.job_id] = max(have.get(j.job_id, 0), recorded.get((j.job_id, rate), 0), len(journaled))
    rows = []
    for j in plan:
        state = states.get(j.job_id, "new")
        if standing[j.job_id]:
            state = "done"
        elif state == "done":  # done once, but its checkpoint was deleted or replaced since
            state = "redo"
        rows.append({"job_id": j.job_id, "job": j.label, "state": state, "deps": list(j.deps),
                     "crossbars_done": have.get(j.job_id)})
    return rows


class _Driver:
    """The scheduling loop: start ready jobs, collect results, follow jobs owned by others."""

    def __init__(self, store: Store, runner, by_id: dict[str, Job], state: dict[str, str], poll_s: float):
        self.store, self.runner, self.by_id, self.state, self.poll_s = store, runner, by_id, state, poll_s
        self.mine: set[str] = set()  # claimed by this driver and not finished
        self.others: set[str] = set()  # queued or running elsewhere
        self.on_recorded: Callable[[], None] | None = None  # after each result this driver records

    def run(self, todo: list[str], bar) -> None:
        pending = list(todo)
        old = None
        if threading.current_thread() is threading.main_thread():
            old = signal.signal(signal.SIGTERM, self._on_term)
        try:
            while pending or self.mine or self.others:
                pending = self._start_ready(pending, bar)
                if not (self.mine or self.others):
                    for jid in pending:  # a safety net: nothing runs, so these can never start
                        self._finish(jid, "failed", "its dependencies did not finish", bar)
                    break
                timeout = self.poll_s if self.others or self.runner.polls else None
                for jid, outcome in self.runner.wait(timeout):
                    self._collect(jid, outcome, bar)
                self._follow(bar)
        except BaseException:
            self._abandon()
            raise
        finally:
            if old is not None:
                signal.signal(signal.SIGTERM, old)

    # ------------------------------------------------------------------ starting
    def _start_ready(self, pending: list[str], bar) -> list[str]:
        left = []
        for jid in pending:
            job = self.by_id[jid]
            deps = [self.state.get(d, "done") for d in job.deps]
            if any(s in ("failed", "cancelled") for s in deps):
                bad = next(d for d in job.deps if self.state.get(d) in ("failed", "cancelled"))
                if self.store.claim_job(jid, os.getpid()) is not None:
                    self._finish(jid, "cancelled" if self.state[bad] == "cancelled" else "failed",
                                 f"{self.by_id[bad].label} {self.state[bad]}", bar)
                else:
                    self.others.add(jid)
            elif all(s == "done" for s in deps) and self.runner.has_room():
                if self.store.claim_job(jid, os.getpid()) is None:
                    self.state[jid] = self.store.job(jid)["state"]
                    if self.state[jid] in FINAL:
                        self._finish(jid, self.state[jid], None, bar, write=False)
                    else:
                        self.others.add(jid)
                    continue
                self.mine.add(jid)
                self.state[jid] = "running"
                self.store.update_job(jid, message=self.runner.started_message)
                self.runner.submit(jid, job)
            else:
                left.append(jid)
        return left

    # ------------------------------------------------------------------ finishing
    def _collect(self, jid: str, outcome: dict, bar) -> None:
        self.mine.discard(jid)
        if self.store.job(jid)["state"] == "cancelled" or outcome.get("cancelled"):
            self._finish(jid, "cancelled", None, bar, write=self.store.job(jid)["state"] != "cancelled")
            return
        if not outcome["ok"]:
            self._finish(jid, "failed", outcome["error"], bar)
            return
        try:
            record(self.store, jid, self.by_id[jid].kind, outcome["result"])
        except Exception as e:  # an unreadable checkpoint, say: this job failed, the sweep goes on
            self._finish(jid, "failed", f"recording the result failed: {e}", bar)
            return
        self._finish(jid, "done", None, bar)
        if self.on_recorded:
            self.on_recorded()

    def _finish(self, jid: str, state: str, error: str | None, bar, write: bool = True) -> None:
        self.state[jid] = state
        self.mine.discard(jid)
        self.others.discard(jid)
        if write:
            fields = {"state": state, "message": state}
            if state == "done":
                fields.update(progress=1.0, eta_s=0, error=None)
            elif error:
                fields["error"] = error
            self.store.update_job(jid, **fields)
        bar.set_postfix(failed=sum(self.state[j] == "failed" for j in self.state), refresh=False)
        bar.update(1)

    def _follow(self, bar) -> None:
        """States of the jobs others run; jobs of ours that someone cancelled (the app's Cancel)."""
        ids = list(self.others | self.mine)
        if not ids:
            return
        self.store.reap_dead_jobs()
        now = self.store.job_states(ids)
        for jid in list(self.others):
            if now.get(jid) in FINAL:
                self._finish(jid, now[jid], None, bar, write=False)
        for jid in list(self.mine):
            if now.get(jid) == "cancelled":
                self.runner.cancel(jid)

    def _on_term(self, signum, frame) -> None:
        """The app's Cancel sends SIGTERM to a job's pid, which for sweep jobs is this driver: cancel that
        job only. A SIGTERM with no cancelled job behind it stops the sweep."""
        cancelled = set(self.store.job_states(self.mine, state="cancelled"))
        if not cancelled:
            raise SweepInterrupted()
        for jid in cancelled:
            self.runner.cancel(jid)
        if self.runner.current in cancelled:  # the in-process job: stop it where it is
            raise Cancelled()

    def _abandon(self) -> None:
        """The driver is stopping: jobs it claimed or was to run are marked cancelled (a rerun queues them
        again); jobs others run are left alone."""
        for jid in [j for j, s in self.state.items() if j in self.mine or (s == "queued" and j not in self.others)]:
            try:
                self.store.update_job(jid, state="cancelled", message="sweep interrupted")
            except Exception:  # the store may be what failed; the rerun reaps what is left
                pass
