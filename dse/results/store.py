"""The results store: one SQLite file (WAL mode, short transactions, busy timeout) holding design
points, their evaluations, their costs and the background jobs that fill them. Backend only: the app
reads it through pandas and never writes SQL of its own.

Design points (dse/domain/point.py) key the design_points table by their id; evaluations are keyed by their
EvalSpec's key (dse/domain/evalspec.py) with the weights' digest and the crossbar budget.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from dse.domain.bn import LEGACY_BN
from dse.domain.errors import DSEError
from dse.domain.evalspec import EvalSpec, eval_key
from dse.domain.point import DesignPoint

# 2: evaluations keyed by their BN protocol (bn, calib_images) too; 3: their precision; 4: keyed by their
# EvalSpec's key (eval_key), the weights' digest and the budget
SCHEMA_VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS design_points (
    point_id TEXT PRIMARY KEY,
    network TEXT NOT NULL, width REAL NOT NULL, shortcut_kernel INTEGER NOT NULL,
    mapping TEXT NOT NULL, dropconnect REAL NOT NULL,
    checkpoint TEXT,               -- path of the trained model, NULL while untrained
    checkpoint_sha TEXT,           -- the checkpoint's tensor digest: which weights the results belong to
    file_stamp TEXT,               -- size:mtime of the file when it was verified
    seed INTEGER, epochs INTEGER, train_time_s REAL,
    fault_free_accuracy REAL,      -- float weights, BN statistics for p' = 0
    calibrated_rates TEXT,         -- JSON list
    error TEXT,                    -- why the checkpoint could not be read, if it could not
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    eval_key TEXT NOT NULL,        -- EvalSpec.key() (dse/domain/evalspec.py), test images as evaluated
    checkpoint_sha TEXT NOT NULL,  -- the weights evaluated
    protocol TEXT NOT NULL,        -- the crossbar budget: fixed(N) | adaptive(HALF_WIDTH)
    -- the key's fields, as columns to query by
    point_id TEXT NOT NULL REFERENCES design_points(point_id),
    fault_rate REAL NOT NULL, fault_model TEXT NOT NULL, seed INTEGER NOT NULL,
    recalibrate INTEGER NOT NULL, rescale INTEGER NOT NULL, test_images INTEGER NOT NULL,
    bn TEXT NOT NULL,              -- BN statistics: paper (Algorithm 1) | chip (per chip) | batch
    calib_images INTEGER NOT NULL, -- training images each chip calibrated on (chip), else 0
    n INTEGER NOT NULL, mean REAL, std REAL, ci95 REAL, ci_low REAL, ci_high REAL,
    p5 REAL, worst REAL, best REAL, quantized_accuracy REAL, bn_rate REAL,
    accuracies TEXT NOT NULL,      -- JSON list, one accuracy per crossbar instance
    time_s REAL, updated REAL NOT NULL,
    precision TEXT,                -- arithmetic the evaluation ran in: fp32, bf16 or int8, NULL if not recorded
    PRIMARY KEY (checkpoint_sha, eval_key, protocol)
);
CREATE TABLE IF NOT EXISTS costs (
    network TEXT NOT NULL, width REAL NOT NULL, shortcut_kernel INTEGER NOT NULL, mapping TEXT NOT NULL,
    cost_model TEXT NOT NULL, latency_ns REAL NOT NULL, energy_uj REAL NOT NULL,
    crossbars INTEGER, chips INTEGER, detail TEXT NOT NULL,
    PRIMARY KEY (network, width, shortcut_kernel, mapping, cost_model)
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,            -- train | evaluate
    point_id TEXT NOT NULL,
    config TEXT NOT NULL,          -- JSON: everything the worker needs
    state TEXT NOT NULL,           -- queued | running | done | failed | cancelled
    progress REAL NOT NULL DEFAULT 0, message TEXT, eta_s REAL, pid INTEGER, error TEXT,
    source TEXT,                   -- app | sweep | cli
    result TEXT,                   -- JSON, for jobs whose answer is small (layer sensitivity)
    created REAL NOT NULL, updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_point ON evaluations(point_id);
"""
ACTIVE = ("queued", "running")
EVAL_KEY_COLUMNS = ("point_id", "fault_model", "fault_rate", "bn", "calib_images", "recalibrate", "rescale", "seed",
                    "test_images")  # the columns eval_key() reads
# cost totals read out of a cost row's JSON beside its columns (the design table shows them)
COST_EXTRAS = ("interval_ns", "images_per_s", "area_mm2", "min_area_mm2", "peak_power_w", "average_power_w",
               "tops_per_w", "tops_per_mm2")
# the evaluation queries other layers need, named (the SQL stays here)
COLUMNS = {"*": "*",
           "standing": "eval_key, point_id, checkpoint_sha, fault_rate, protocol, n, ci95, test_images",
           "crossbars": "eval_key, point_id, checkpoint_sha, fault_rate, test_images, n, accuracies, time_s"}
ORDER_BY = {"key": "fault_rate, fault_model, bn, calib_images, n, protocol, seed, recalibrate, rescale, test_images"}


def file_stamp(path: str | os.PathLike) -> str:
    """Size and modification time: a changed file is read and verified again."""
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def job_id(kind: str, config: dict) -> str:
    """The same work asked twice (two sessions, a double click, a sweep) gets the same id."""
    return hashlib.sha256(f"{kind}|{json.dumps(config, sort_keys=True)}".encode()).hexdigest()[:16]


def default_store_path() -> Path:
    return Path(os.environ.get("DSE_STORE", "runs/results.sqlite"))


def _finite(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


class Store:
    """A handle on one store file; every call opens a short-lived connection (safe across threads and
    processes, which is how Streamlit sessions and workers use it)."""

    def __init__(self, path: str | os.PathLike | None = None, timeout_s: float = 30.0):
        self.path = Path(path) if path is not None else default_store_path()
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline, pause = time.monotonic() + self.timeout_s, 0.05
        while True:
            try:
                self._prepare()
                return
            except sqlite3.OperationalError as e:  # another process holds the lock past the busy timeout
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(1.0, pause * 2)  # back off: many openers at once take turns
            except sqlite3.DatabaseError as e:
                if _is_corrupt(e):
                    raise DSEError(f"results store {self.path} is corrupt ({e})") from None
                raise

    def _prepare(self) -> None:
        """WAL mode, the schema and its migrations. Switching to WAL takes an exclusive lock, so it is asked
        only when the file is not in WAL mode yet (once per store file, not on every open)."""
        db = sqlite3.connect(self.path, timeout=self.timeout_s)
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            _migrate(db)
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone():
                db.executescript(SCHEMA)  # a new file: the whole schema in one transaction
            if not db.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone():
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            db.commit()  # opening a store that is up to date writes nothing
        finally:
            db.close()

    @contextlib.contextmanager
    def connect(self):
        """One transaction: committed on success, rolled back on error, connection always closed."""
        try:
            db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        except sqlite3.Error as e:
            raise DSEError(f"cannot open results store {self.path}: {e}") from None
        try:
            db.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("BEGIN IMMEDIATE")  # take the write lock up front: no deadlock between two writers
            yield db
            db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if _is_corrupt(e):
                raise self._corrupt(e) from None
            raise
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _corrupt(self, e: Exception) -> DSEError:
        return DSEError(f"results store {self.path} is corrupt ({e.__cause__ or e}); "
                        "rebuild it with `python -m dse store rebuild`")

    def read_sql(self, sql: str, params=()) -> pd.DataFrame:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout_s)
        try:
            return pd.read_sql_query(sql, db, params=params)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as e:  # damage found by a read, not at open
            if _is_corrupt(e):
                raise self._corrupt(e) from None
            raise
        finally:
            db.close()

    # ------------------------------------------------------------------ design points
    def upsert_point(self, point: DesignPoint, **fields) -> str:
        pid = point.point_id
        row = {**asdict(point), "point_id": pid, "updated": time.time(), **fields}
        for key in ("calibrated_rates",):
            if key in row and not isinstance(row[key], str):
                row[key] = json.dumps(row[key])
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        update = ", ".join(f"{c}=excluded.{c}" for c in row if c != "point_id")
        with self.connect() as db:
            db.execute(f"INSERT INTO design_points ({cols}) VALUES ({marks}) "
                       f"ON CONFLICT(point_id) DO UPDATE SET {update}", tuple(row.values()))
        return pid

    def add_checkpoint(self, path: str | os.PathLike) -> tuple[str, str]:
        """Register a trained checkpoint as its design point (reads and verifies the file);
        returns (point id, checkpoint sha256)."""
        from dse.core.io.checkpoint import load_checkpoint

        try:
            stamp = file_stamp(path)  # taken first: a file changed while being read is read again next time
        except OSError:
            stamp = None  # load_checkpoint says what is wrong with the path
        ck = load_checkpoint(path)
        m = ck.meta
        point = DesignPoint.of(m)
        pid = self.upsert_point(
            point, checkpoint=str(path), checkpoint_sha=ck.sha256, file_stamp=stamp, seed=m.get("seed"),
            epochs=m.get("epochs"), train_time_s=m.get("train_time_s"), fault_free_accuracy=m.get("test_accuracy"),
            calibrated_rates=m.get("calibrated_rates", []), error=None)
        return pid, ck.sha256

    def points(self) -> pd.DataFrame:
        return self.read_sql("SELECT * FROM design_points ORDER BY network, width, shortcut_kernel, mapping, dropconnect")

    # ------------------------------------------------------------------ evaluations
    def add_evaluation(self, checkpoint_sha: str, spec: EvalSpec, result: dict,
                       quantized_accuracy: float | None = None) -> None:
        """One EvalSpec's Monte-Carlo result on weights `checkpoint_sha` (dse.core.evaluation.evaluate's, complete), keyed by
        the spec's key with the test images it ran on, the digest and the budget."""
        spec = replace(spec, test_images=int(result["test_images"]))  # "all of them" recorded as a count
        row = {
            "eval_key": spec.key(), "checkpoint_sha": checkpoint_sha, "protocol": spec.budget.name,
            **spec.identity(), "n": int(result["n"]),
            **{k: _finite(result.get(k)) for k in ("mean", "std", "ci95", "ci_low", "ci_high", "p5", "worst", "best")},
            "quantized_accuracy": quantized_accuracy, "bn_rate": result.get("bn_rate"),
            "accuracies": json.dumps(result["accuracies"]), "time_s": result.get("time_s"), "updated": time.time(),
            "precision": result.get("precision"),
        }
        row.update(recalibrate=int(row["recalibrate"]), rescale=int(row["rescale"]))
        with self.connect() as db:
            db.execute(f"INSERT OR REPLACE INTO evaluations ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                       tuple(row.values()))

    def evaluations(self) -> pd.DataFrame:
        """Every evaluation joined with its design point (only those of the point's current checkpoint)."""
        return self.read_sql(
            "SELECT p.network, p.width, p.shortcut_kernel, p.mapping, p.dropconnect, p.fault_free_accuracy, "
            "e.* FROM evaluations e JOIN design_points p ON p.point_id = e.point_id "
            "AND p.checkpoint_sha = e.checkpoint_sha ORDER BY p.network, p.width, p.dropconnect, e.fault_rate")

    def evaluation_rows(self, columns: str = "*", order: str = "") -> pd.DataFrame:
        """Raw evaluation rows (every checkpoint's, not only the current ones): `columns` (COLUMNS) and an optional
        ORDER_BY key."""
        sql = f"SELECT {COLUMNS[columns]} FROM evaluations"
        if order:
            sql += f" ORDER BY {ORDER_BY[order]}"
        return self.read_sql(sql)

    def version(self) -> str:
        """Changes whenever a result lands: a tiny query that lets cached views refresh without a restart."""
        df = self.read_sql("SELECT (SELECT MAX(updated) FROM design_points) AS p, "
                           "(SELECT MAX(updated) FROM evaluations) AS e, (SELECT COUNT(*) FROM costs) AS c")
        return json.dumps(df.iloc[0].tolist(), default=str)

    # ------------------------------------------------------------------ costs
    def add_cost(self, network: str, width: float, shortcut_kernel: int, mapping: str, cost_model: str,
                 estimate: dict) -> None:
        t = estimate.get("totals", estimate)
        with self.connect() as db:
            db.execute("INSERT OR REPLACE INTO costs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (network, float(width), int(shortcut_kernel), mapping, cost_model, float(t["latency_ns"]),
                        float(t["energy_uj"]), t.get("crossbars"), t.get("chips"), json.dumps(estimate)))

    def cost_totals(self, point: DesignPoint, cost_model: str, version: int | None = None) -> dict | None:
        """A design point's cost totals under one model, when they were computed before (by cost-model
        `version`, when given: totals of another version are stale and read as unknown)."""
        df = self.read_sql("SELECT detail FROM costs WHERE network=? AND ABS(width-?)<1e-6 AND shortcut_kernel=? "
                           "AND mapping=? AND cost_model=?",
                           (point.network, point.width, point.shortcut_kernel, point.mapping, cost_model))
        if df.empty:
            return None
        detail = json.loads(df.detail.iloc[0])
        return None if version is not None and detail.get("version") != version else detail["totals"]

    def costs(self) -> pd.DataFrame:
        """Every stored cost row: the keys, the main totals (NULL where a row predates them) and the cost-model
        `version` that computed it (NULL before versions were recorded)."""
        extra = ", ".join(f"json_extract(detail, '$.totals.{c}') AS {c}" for c in COST_EXTRAS)
        return self.read_sql("SELECT network, width, shortcut_kernel, mapping, cost_model, latency_ns, energy_uj, "
                             f"crossbars, chips, {extra}, json_extract(detail, '$.version') AS version FROM costs")

    # ------------------------------------------------------------------ jobs
    def submit_job(self, kind: str, point_id_: str, config: dict, source: str = "app",
                   owner: int | None = None, jid: str | None = None) -> tuple[str, bool]:
        """Record a job unless the same one is queued, running or done; returns (job id, newly queued).
        A failed or cancelled job is queued again (a retry). owner: the pid of the process that will start it
        (a sweep's driver), so that its queued jobs are reaped if it dies first. jid: the job's id (dse.run.tasks'
        task_id, which leaves out what cannot change the result); None: job_id(kind, config)."""
        jid = jid or job_id(kind, config)
        now = time.time()
        with self.connect() as db:
            row = db.execute("SELECT state FROM jobs WHERE job_id = ?", (jid,)).fetchone()
            if row and row[0] in (*ACTIVE, "done"):
                return jid, False
            db.execute("INSERT OR REPLACE INTO jobs (job_id, kind, point_id, config, state, progress, message, "
                       "eta_s, pid, error, source, created, updated) VALUES (?, ?, ?, ?, 'queued', 0, 'queued', "
                       "NULL, ?, NULL, ?, ?, ?)", (jid, kind, point_id_, json.dumps(config, sort_keys=True),
                                                   owner, source, now, now))
        return jid, True

    def update_job(self, jid: str, *, unless: tuple[str, ...] = (), **fields) -> None:
        """Set a job's fields, unless its state is one of `unless` (checked in the same statement)."""
        fields["updated"] = time.time()
        sets = ", ".join(f"{k} = ?" for k in fields)
        guard = f" AND state NOT IN ({', '.join('?' * len(unless))})" if unless else ""
        with self.connect() as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?{guard}", (*fields.values(), jid, *unless))

    def claim_job(self, jid: str, pid: int) -> dict | None:
        """Atomically move a queued job to running for worker `pid`; None if someone else has it."""
        with self.connect() as db:
            cur = db.execute("UPDATE jobs SET state='running', pid=?, message='starting', updated=? "
                             "WHERE job_id=? AND state='queued'", (pid, time.time(), jid))
            if cur.rowcount != 1:
                return None
            row = db.execute("SELECT kind, point_id, config FROM jobs WHERE job_id=?", (jid,)).fetchone()
        return {"job_id": jid, "kind": row[0], "point_id": row[1], "config": json.loads(row[2])}

    def job(self, jid: str) -> dict | None:
        with self.connect() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM jobs WHERE job_id = ?", (jid,)).fetchone()
        return dict(row) if row else None

    def job_states(self, ids, state: str | None = None) -> dict[str, str]:
        """job id -> state for the given jobs (only those in `state`, when given)."""
        ids = list(ids)
        if not ids:
            return {}
        sql = f"SELECT job_id, state FROM jobs WHERE job_id IN ({','.join('?' * len(ids))})"
        df = self.read_sql(sql + (" AND state = ?" if state else ""), ids + ([state] if state else []))
        return dict(zip(df.job_id, df.state))

    def jobs(self) -> pd.DataFrame:
        self.reap_dead_jobs()
        return self.read_sql("SELECT * FROM jobs ORDER BY created DESC")

    def reap_dead_jobs(self) -> int:
        """A job whose process is gone (killed, machine restarted): failed if it was running; cancelled if it
        was still queued by a sweep that died before starting it (a rerun of the sweep queues it again)."""
        df = self.read_sql("SELECT job_id, state, pid FROM jobs WHERE state IN ('running', 'queued') "
                           "AND pid IS NOT NULL")
        dead = [r for r in df.itertuples() if not process_alive(int(r.pid))]
        with self.connect() as db:
            for r in dead:  # only if still as read: a live process may have claimed it since
                fields = (("failed", "failed", "the worker process stopped without finishing") if r.state == "running"
                          else ("cancelled", "its sweep stopped before starting it", None))
                db.execute("UPDATE jobs SET state = ?, message = ?, error = ?, updated = ? "
                           "WHERE job_id = ? AND state = ? AND pid = ?", (*fields, time.time(), r.job_id, r.state, r.pid))
        return len(dead)


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an older store up to date: its evaluations are rebuilt keyed by their EvalSpec's key (SQLite cannot
    change a primary key in place), each computed from the row's own columns as EvalSpec.key() computes it from
    the spec's fields. Version 1's evaluations were all of the paper's BN protocol; versions 1 and 2 recorded no
    precision (NULL)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if db.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() else None
    if row is None or int(row[0]) >= SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]) < SCHEMA_VERSION:
            _rekey_evaluations(db)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _rekey_evaluations(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE evaluations RENAME TO evaluations_old")
    db.execute("DROP INDEX IF EXISTS evaluations_point")
    create = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS evaluations"):]
    db.execute(create[: create.index(");") + 2])
    new = [r[1] for r in db.execute("PRAGMA table_info(evaluations)")]
    cur = db.execute("SELECT * FROM evaluations_old")
    old = [c[0] for c in cur.description]
    for values in cur.fetchall():
        r = {"bn": LEGACY_BN, "calib_images": 0, "precision": None, **dict(zip(old, values))}
        r["eval_key"] = eval_key(**{k: r[k] for k in EVAL_KEY_COLUMNS})
        cols = [c for c in new if c in r]
        db.execute(f"INSERT OR REPLACE INTO evaluations ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                   [r[c] for c in cols])
    db.execute("DROP TABLE evaluations_old")
    db.execute("CREATE INDEX IF NOT EXISTS evaluations_point ON evaluations(point_id)")


def _is_corrupt(e: Exception) -> bool:
    return "not a database" in str(e) or "malformed" in str(e)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of this very process counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def open_store(path: str | os.PathLike | None = None) -> Store:
    """Open the store; a corrupt file is moved aside (kept, renamed .corrupt-<time>) and a fresh one
    started, to be refilled from the checkpoints."""
    path = Path(path) if path is not None else default_store_path()
    try:
        store = Store(path)
        with store.connect() as db:
            ok = db.execute("PRAGMA quick_check").fetchone()[0]
        if ok == "ok":
            return store
    except DSEError:  # raised for corruption only; other errors (locked, permissions) propagate
        pass
    except sqlite3.DatabaseError as e:
        if not _is_corrupt(e):
            raise
    return rebuild(path, tag="corrupt")


def rebuild(path: str | os.PathLike, tag: str = "old") -> Store:
    """A fresh, empty store at `path`; an existing file is moved aside (`.<tag>-<time>`), never deleted."""
    path = Path(path)
    if path.exists():
        path.rename(path.with_name(f"{path.name}.{tag}-{int(time.time())}"))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Store(path)
