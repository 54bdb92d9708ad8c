"""A real Ray cluster on this machine: a head node and a second node started with `ray start`, a sweep
driven with `--backend ray --address`, one task's worker killed mid-task (Ray retries it), and the store
it fills equal to the local backend's. Ray 2.60 enables token authentication on `ray start`; as docs/cli.md's
recipe ("A sweep on a Ray cluster") has a user do, the head makes the cluster's token (`ray get-auth-token
--generate`, in a home folder of the test's own) and every node and the driver run with RAY_AUTH_MODE=token and
that token in RAY_AUTH_TOKEN: nothing is read from, or written to, the user's ~/.ray.

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
BESIDE = Path(sys.executable).with_name("ray")  # this interpreter's: no shim that looks for $HOME/.pyenv
RAY = str(BESIDE) if BESIDE.exists() else (shutil.which("ray") or str(BESIDE))
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


def head_token(home: Path, env: dict) -> str:
    """The cluster's token as docs/cli.md makes it on the head: `ray get-auth-token --generate` (it saves the
    token in the head's ~/.ray/auth_token, here `home`, and prints it for the other nodes and the driver)."""
    home.mkdir(parents=True, exist_ok=True)
    made = subprocess.run([RAY, "get-auth-token", "--generate"], env={**env, "HOME": str(home)},
                          capture_output=True, text=True, timeout=180)
    assert made.returncode == 0, made.stderr[-2000:]
    token = made.stdout.strip()
    assert token and (home / ".ray" / "auth_token").read_text().strip() == token
    return token


@pytest.mark.skipif(not Path(RAY).exists(), reason="the ray command line is not installed")
def test_ray_keeps_its_token_in_the_suites_home_never_the_users(user_ray, tmp_path):
    """Ray writes a new token to ~/.ray/auth_token (`ray get-auth-token --generate`, and a first in-process
    ray.init() by the same code): in this suite that is the session's own HOME (tests/conftest.py), whatever
    ran before, and the user's ~/.ray is as the suite found it. tests/conftest.py checks it again at the end."""
    at_start, now = user_ray
    home = Path(os.environ["HOME"])
    assert home.name.startswith("dse-home-") and Path.home() == home
    before = (home / ".ray" / "auth_token").read_text() if (home / ".ray" / "auth_token").exists() else None
    made = subprocess.run([RAY, "get-auth-token", "--generate"], capture_output=True, text=True, timeout=180,
                          env={k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")})
    assert made.returncode == 0, made.stderr[-2000:]
    assert (home / ".ray" / "auth_token").read_text().strip() == made.stdout.strip() != ""
    assert before is None or before.strip() == made.stdout.strip()  # an existing token is kept, not replaced
    assert now() == at_start


@pytest.mark.slow
@pytest.mark.skipif(not Path(RAY).exists(), reason="the ray command line is not installed")
def test_a_two_node_cluster_survives_a_killed_worker(local_run, tree, tmp_path, netns):  # noqa: F811
    spec, local_store, _ = local_run
    temp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    port = 6379  # the namespace is ours alone: Ray's default port is free there
    inside = ["ip", "netns", "exec", netns]
    env = {**os.environ, "RAY_worker_niceness": "0", "PYTHONPATH": str(ROOT),
           "RAY_USAGE_STATS_ENABLED": "0", "DSE_CACHE": str(tmp_path / "cache")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=head_token(tmp_path / "head-home", env))
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
