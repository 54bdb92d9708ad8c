"""A real Ray cluster on this machine: a head node and a second node started with `ray start`, a sweep
driven with `--backend ray --address`, one task's worker killed mid-task (Ray retries it), and the store
it fills equal to the local backend's. Ray 2.60 enables token authentication on `ray start`; the nodes and
the driver all run with RAY_AUTH_MODE=token, as a user's would (README, "A sweep on a Ray cluster").

The cluster lives in a network namespace of its own with the loopback interface alone (`ip netns`, as root):
Ray binds a node to the host's network address even when told 127.0.0.1, and its traffic must stay on
loopback here."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dse.results.store import Store
from tests.test_sweep import TIMING, local_run, tree, write_spec  # noqa: F401  (fixtures)

pytest.importorskip("ray")
RAY = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def netns():
    """A fresh network namespace with only `lo`, up; its name. Skips where namespaces cannot be made."""
    name = f"dse-ray-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {made.stderr.decode().strip()[:200]}")
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def task_workers() -> list[int]:
    """Pids of Ray workers running a sweep task now (Ray titles them `ray::run_task`)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::run_task"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path(RAY).exists(), reason="the ray command line is not installed")
def test_a_two_node_cluster_survives_a_killed_worker(local_run, tree, tmp_path, netns):  # noqa: F811
    spec, local_store, _ = local_run
    temp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    port = 6379  # the namespace is ours alone: Ray's default port is free there
    inside = ["ip", "netns", "exec", netns]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_worker_niceness": "0", "PYTHONPATH": str(ROOT),
           "RAY_USAGE_STATS_ENABLED": "0", "DSE_CACHE": str(tmp_path / "cache")}
    address = f"127.0.0.1:{port}"
    start = [*inside, RAY, "start", "--num-cpus", "1", "--disable-usage-stats"]
    try:
        subprocess.run(start + ["--head", "--port", str(port), "--temp-dir", temp, "--include-dashboard", "false"],
                       env=env, check=True, capture_output=True, timeout=180)
        subprocess.run(start + ["--address", address, "--resources", '{"second": 1}'], env=env, check=True,
                       capture_output=True, timeout=180)
        spec_path = write_spec(tmp_path / "tiny.toml", tree, tmp_path / "ck")  # a fresh folder: really train
        store = Store(tmp_path / "ray.sqlite")
        sweep = subprocess.Popen([*inside, sys.executable, "-m", "dse", "sweep", str(spec_path), "--backend", "ray",
                                  "--address", address, "--store", str(store.path), "--no-progress", "--json"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed, t0 = None, time.time()
        while killed is None and sweep.poll() is None and time.time() - t0 < 600:
            pids = task_workers()
            if pids:
                time.sleep(1.0)  # well inside the task (the tiny sweep's tasks take several seconds each)
                os.kill(pids[0], signal.SIGKILL)
                killed = pids[0]
            time.sleep(0.2)
        out, err = sweep.communicate(timeout=900)
        assert sweep.returncode == 0, err[-3000:]
        assert killed is not None, "no Ray task worker was seen to kill"
        summary = json.loads(out[out.index("{\n"):])  # after any line the raylet prints (the retry)
        assert summary["done"] == 3 and summary["failed"] == 0, summary["failures"]
    finally:
        subprocess.run([*inside, RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)

    def table(s):
        return s.read_sql("SELECT * FROM evaluations ORDER BY point_id, fault_rate").drop(columns=sorted(TIMING))

    assert table(store).equals(table(local_store))  # the retried task gave the same weights and accuracies
