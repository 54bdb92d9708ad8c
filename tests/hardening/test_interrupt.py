"""Interruption: real processes SIGKILLed mid-epoch, inside a checkpoint write, mid-evaluation and mid-sweep,
then resumed. Nothing half-written is ever loaded, a resumed training equals an uninterrupted one, and no
evaluation row exists without all its crossbar instances; a rerun does only what is missing."""
import json
import os
import time
from pathlib import Path

import pytest
import torch

from dse.core.io.checkpoint import load_checkpoint
from dse.core.training.train import partial_path
from dse.results.store import DesignPoint, Store
from dse.run import jobs
from dse.run.spec import load_spec
from dse.run.sweep import run_sweep
from tests.hardening.common import ROOT, one_thread, run_cli, run_until_stalled
from tests.test_data import make_tree

pytestmark = pytest.mark.slow  # trainings killed in subprocesses

# 40 training images in batches of 10: 4 steps an epoch, 3 epochs
TRAIN = ["train", "--network", "resnet20", "--width", "0.5", "--dropconnect", "0.3", "--epochs", "3",
         "--batch-size", "10", "--lr", "0.05", "--fault-rates", "0,0.1", "--calib-images", "20", "--device", "cpu",
         "--seed", "1", "--json"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("interrupt") / "data", per_class=4)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tree):
    """The same training, never interrupted (one torch thread, as the killed subprocesses use)."""
    out = tmp_path_factory.mktemp("reference") / "m.safetensors"
    with one_thread():
        code, _, err = run_cli([*TRAIN, "--data", str(tree), "--out", str(out)])
    assert code == 0, err
    return load_checkpoint(out)


@pytest.mark.parametrize("stall, save_every, kept", [
    ("train_step:6", [], (1, 0)),  # mid-epoch: step 2 of epoch 2; the resume file is epoch 1's
    ("train_step:7", ["--save-every", "0"], (1, 2)),  # the same with a resume file after every step
    ("atomic_write:m.safetensors.partial:2", [], (1, 0)),  # while writing epoch 2's resume file
    ("atomic_write:m.safetensors:1", [], (3, 0)),  # while writing the finished checkpoint
], ids=["mid-epoch", "mid-epoch-saved", "mid-partial-write", "mid-final-write"])
def test_killed_training_resumes_to_the_uninterrupted_weights(tmp_path, tree, reference, stall, save_every, kept):
    out = tmp_path / "m.safetensors"
    argv = [*TRAIN, "--data", str(tree), "--out", str(out), *save_every]
    run_until_stalled(argv, stall, tmp_path)

    assert not out.exists()
    resume_file = load_checkpoint(partial_path(out))  # the last complete resume file loads, verified
    assert (resume_file.meta["epochs_done"], resume_file.meta.get("epoch_steps_done", 0)) == kept
    assert not resume_file.meta["complete"]
    if stall.startswith("atomic_write"):  # the kill really landed inside the write: its temp file is left
        assert list(tmp_path.glob(f".{stall.split(':')[1]}.*.tmp"))

    with one_thread():
        code, out_json, err = run_cli([*argv, "--resume"])
    assert code == 0, err
    assert json.loads(out_json)["complete"] and not partial_path(out).exists()
    done = load_checkpoint(out)
    assert done.state.keys() == reference.state.keys()
    for k, v in reference.state.items():
        assert torch.allclose(v, done.state[k], rtol=1e-5, atol=1e-6), k
    for rate, stats in reference.bn_stats.items():
        assert all(torch.allclose(t, done.bn_stats[rate][k], rtol=1e-5, atol=1e-6) for k, t in stats.items())
    assert done.meta["test_accuracy"] == reference.meta["test_accuracy"]


def _mark(journal: Path) -> list[float]:
    """Overwrite the finished crossbars' accuracies with marks: a rerun that reuses them reports the marks."""
    doc = json.loads(journal.read_text())
    marks = [11.0 * (i + 1) for i in range(len(doc["accuracies"]))]
    doc["accuracies"] = marks
    journal.write_text(json.dumps(doc))
    return marks


INSTANCES = 6


def test_killed_evaluation_job_leaves_no_row_and_its_retry_runs_only_the_missing_crossbars(tmp_path, tree, reference,
                                                                                            monkeypatch):
    ck = tmp_path / "m.safetensors"
    ck.write_bytes(Path(reference.path).read_bytes())
    store = Store(tmp_path / "results.sqlite")
    store.add_checkpoint(ck)
    point = DesignPoint("resnet20", 0.5, 1, "default", 0.3)
    cfg = jobs.evaluate_config(str(ck), [0.1], data=str(tree), instances=INSTANCES, device="cpu", test_images=20)
    jid, _ = jobs.submit(store, "evaluate", point, cfg, spawn=False)

    # the worker dies while recording crossbar 3: crossbars 1 and 2 are in the journal
    run_until_stalled(["worker", jid, "--store", str(store.path)], "atomic_write:*.crossbars-*.partial:3", tmp_path)
    assert store.evaluations().empty  # no row without all its instances
    job = store.jobs().set_index("job_id").loc[jid]
    assert job.state == "failed" and "stopped without finishing" in job.error  # the app's Jobs tab offers Retry
    (journal,) = tmp_path.glob("m.safetensors.crossbars-*.partial")
    marks = _mark(journal)
    assert len(marks) == 2

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the worker imports this checkout, with one torch thread
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    jobs.retry(store, jid)  # the app's Retry button: a fresh worker process
    t0 = time.time()
    while store.job(jid)["state"] not in ("done", "failed") and time.time() - t0 < 180:
        time.sleep(0.2)
    try:
        os.waitpid(int(store.job(jid)["pid"]), 0)  # our child: reap it
    except ChildProcessError:  # subprocess already reaped it
        pass
    ev = store.evaluations()
    assert store.job(jid)["state"] == "done" and len(ev) == 1
    accs = json.loads(ev.accuracies.iloc[0])
    assert ev.n.iloc[0] == INSTANCES and accs[:2] == marks and not set(accs[2:]) & set(marks)
    log = (tmp_path / "logs" / f"{jid}.log").read_text()
    assert "reusing finished crossbars: f=0.1: 2" in log


SPEC = """
name = "tiny"
data = "{data}"
checkpoint_dir = "{ckpt}"
device = "cpu"
fault_rates = [0.1]
recipe = {{ epochs = 1, batch_size = 20, calib_images = 20 }}
protocol = {{ instances = {instances}, test_images = 20 }}
[[grid]]
network = "resnet20"
width = 0.5
dropconnect = 0.3
"""


def test_killed_sweep_reruns_only_the_missing_crossbars(tmp_path, tree):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC.format(data=tree, ckpt=tmp_path / "ck", instances=INSTANCES))
    store_path = tmp_path / "results.sqlite"
    run_until_stalled(["sweep", str(spec), "--store", str(store_path), "--no-progress"],
                      "atomic_write:*.crossbars-*.partial:3", tmp_path)

    store = Store(store_path)
    states = dict(zip(store.jobs().kind, store.jobs().state))
    assert states == {"train": "done", "evaluate": "failed"} and store.evaluations().empty
    (ckpt,) = (tmp_path / "ck").glob("*.safetensors")
    before = ckpt.read_bytes()
    marks = _mark(next((tmp_path / "ck").glob("*.crossbars-*.partial")))

    with one_thread():
        summary = run_sweep(load_spec(spec), store, progress=False, log=lambda s: None)
    assert (summary["skipped"], summary["ran"], summary["done"]) == (1, 1, 1)
    assert ckpt.read_bytes() == before  # the finished training was not redone
    ev = store.evaluations()
    accs = json.loads(ev.accuracies.iloc[0])
    assert len(ev) == 1 and ev.n.iloc[0] == INSTANCES and accs[:2] == marks
