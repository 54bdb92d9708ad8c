"""Precision choice: a pure function of capability, measurement and the equivalence check; the per-machine
cache; and bf16 evaluation agreeing with fp32 on a small model."""
import json
import subprocess
import sys

import pytest

from dse.core.errors import DSEError
from dse.core.evaluation.evaluate import Evaluator, Protocol, evaluate
from dse.core.runtime import precision as P

AMX = P.Capability("cpu", True, "AMX")
AVX2 = P.Capability("cpu", False, "AVX2")
SAME = {"ok": True, "diff": 0.03}


@pytest.mark.parametrize("phase", P.PHASES)
def test_no_native_bf16_means_fp32_whatever_the_speed(phase):
    c = P.choose("auto", phase, AVX2, speedup=3.0, equivalence=SAME)
    assert c.precision == "fp32" and "AVX2: no native bf16" in c.reason


def test_training_takes_bf16_when_native_and_faster():
    assert P.choose("auto", "train", AMX, speedup=1.8).precision == "bf16"
    slow = P.choose("auto", "train", AMX, speedup=1.01)
    assert slow.precision == "fp32" and "1.01x" in slow.reason
    assert P.choose("auto", "train", AMX, speedup=None).precision == "fp32"  # unmeasured: never a guess


@pytest.mark.parametrize("phase", ["evaluate", "calibrate"])
def test_evaluation_needs_bf16_shown_equal_on_this_machine(phase):
    assert P.choose("auto", phase, AMX, speedup=2.0, equivalence=None).precision == "fp32"
    moved = P.choose("auto", phase, AMX, speedup=2.0, equivalence={"ok": False, "diff": 0.31})
    assert moved.precision == "fp32" and "0.31 points" in moved.reason
    assert P.choose("auto", phase, AMX, speedup=2.0, equivalence=SAME).precision == "bf16"
    assert P.choose("auto", phase, AMX, speedup=1.0, equivalence=SAME).precision == "fp32"


def test_an_explicit_precision_is_kept_and_emulation_named():
    assert P.choose("fp32", "train", AMX, speedup=2.0).precision == "fp32"
    c = P.choose("bf16", "evaluate", AVX2)
    assert c.precision == "bf16" and "emulated" in c.reason


@pytest.mark.parametrize("bad", ["fp16", "BF16", "", None, 32])
def test_bad_precision_names_the_value_and_the_choices(bad):
    with pytest.raises(DSEError, match=r"unknown precision .*; choose one of auto, fp32, bf16"):
        P.choose(bad, "train", AMX)


def test_bad_precision_on_the_command_line_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dse", "evaluate", str(tmp_path / "x.safetensors"),
                        "--fault-rate", "0.1", "--precision", "fp8"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown precision 'fp8'; choose one of auto, fp32, bf16" in r.stderr


def test_speed_is_measured_once_per_machine_and_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("DSE_CACHE", str(tmp_path))
    monkeypatch.setattr(P, "capability", lambda device="cpu": AMX)
    calls = []

    def fake_measure(network, phase, device="cpu", reps=2):
        calls.append((network, phase))
        return {"fp32_s": 2.0, "bf16_s": 1.0, "speedup": 2.0, "batch": 256}

    monkeypatch.setattr(P, "measure_speed", fake_measure)
    assert P.resolve("auto", "resnet20", "train").precision == "bf16"
    assert P.resolve("auto", "resnet20", "train").precision == "bf16"
    assert calls == [("resnet20", "train")]  # the second answer came from the cache
    cached = json.loads((tmp_path / "precision.json").read_text())
    assert cached[P.machine_key()]["speed"]["resnet20/train"]["speedup"] == 2.0
    # evaluation waits for the equivalence check, and uses bf16 once it is recorded as passed
    assert P.resolve("auto", "resnet20", "evaluate").precision == "fp32"
    P.record("cpu", "equivalence", "resnet20", {"ok": True, "diff": 0.02})
    assert P.resolve("auto", "resnet20", "evaluate").precision == "bf16"
    assert calls == [("resnet20", "train"), ("resnet20", "evaluate")]
    assert P.resolve("fp32", "vgg13", "train").precision == "fp32" and len(calls) == 2  # asked: nothing measured


def test_a_broken_cache_is_measured_again(monkeypatch, tmp_path):
    monkeypatch.setenv("DSE_CACHE", str(tmp_path))
    (tmp_path / "precision.json").write_text("{not json")
    assert P.machine_record() == {}


def test_measure_speed_times_both_precisions():
    m = P.measure_speed("resnet20", "evaluate", reps=1)
    assert m["fp32_s"] > 0 and m["bf16_s"] > 0 and m["speedup"] == pytest.approx(m["fp32_s"] / m["bf16_s"], rel=1e-2)


def test_bf16_and_fp32_agree_on_a_small_model(trained, tiny_data):
    runs = {p: evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.0, 0.3], protocol=Protocol(instances=4),
                        progress=False, precision=p) for p in ("fp32", "bf16")}
    assert runs["bf16"]["precision"] == "bf16" and runs["fp32"]["precision"] == "fp32"
    assert all(r["precision"] == p for p in runs for r in runs[p]["results"])
    for a, b in zip(runs["fp32"]["results"], runs["bf16"]["results"]):
        assert abs(a["mean"] - b["mean"]) <= 2.0  # tiny test set: one image is 0.5 points
    assert abs(runs["fp32"]["fault_free_quantized_accuracy"] - runs["bf16"]["fault_free_quantized_accuracy"]) <= 2.0


def test_the_default_precision_comes_from_the_environment(monkeypatch, trained, tiny_data):
    monkeypatch.setenv("DSE_PRECISION", "bf16")
    assert Evaluator(trained, tiny_data.test_x[:8], tiny_data.test_y[:8]).precision == "bf16"
    monkeypatch.setenv("DSE_PRECISION", "half")
    with pytest.raises(DSEError, match="unknown precision 'half'"):
        Evaluator(trained, tiny_data.test_x[:8], tiny_data.test_y[:8])


def test_training_records_its_precision(tiny_data, tmp_path):
    from dse.core.io.checkpoint import load_checkpoint
    from dse.core.training.train import Recipe, TrainConfig, train

    cfg = TrainConfig(network="resnet20", width=0.25, recipe=Recipe(epochs=1, batch_size=32), calib_rates=(),
                      max_train_images=64)
    meta = train(cfg, tiny_data, tmp_path / "m.safetensors", progress=False, log=lambda s: None, precision="bf16")
    assert meta["precision"] == "bf16" and meta["history"][0]["precision"] == "bf16"
    assert load_checkpoint(tmp_path / "m.safetensors").meta["precision"] == "bf16"


@pytest.mark.parametrize("bn", ["paper", "chip"])
def test_batched_instances_give_the_per_instance_accuracies_of_one_at_a_time(trained, tiny_data, bn):
    def run(k):
        p = Protocol(instances=7, bn=bn, calib_images=64)
        return evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.3], protocol=p, progress=False,
                        instances_per_pass=k, calib_x=tiny_data.train_x)["results"][0]["accuracies"]

    one = run(1)
    assert run(3) == one and run(8) == one  # same maps, same answers, whether 7 is a multiple of K or not


def test_a_batched_adaptive_run_stops_where_one_at_a_time_does(trained, tiny_data):
    p = Protocol(instances=40, adaptive=50.0, min_instances=5)
    runs = [evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.1], protocol=p, progress=False,
                     instances_per_pass=k)["results"][0] for k in (1, 4)]
    assert runs[0]["n"] == runs[1]["n"] == 5 and runs[0]["accuracies"] == runs[1]["accuracies"]


def test_instances_per_pass_is_measured_once_and_cached(monkeypatch, tmp_path, trained, tiny_data):
    monkeypatch.setenv("DSE_CACHE", str(tmp_path))
    monkeypatch.delenv("DSE_INSTANCES_PER_PASS")
    ev = Evaluator(trained, tiny_data.test_x, tiny_data.test_y)
    k = ev.instances_per_pass()
    assert k in (1, 2, 4, 8)
    rec = P.machine_record()["instances_per_pass"][f"resnet20/{ev.precision}/cpu"]
    assert rec["k"] == k and set(rec["seconds_per_instance"]) == {"1", "2", "4", "8"}
    again = Evaluator(trained, tiny_data.test_x, tiny_data.test_y)
    monkeypatch.setattr(again, "_measure_per_pass", lambda: pytest.fail("measured twice"))
    assert again.instances_per_pass() == k


def test_bad_instances_per_pass_in_the_environment(monkeypatch, trained, tiny_data):
    monkeypatch.setenv("DSE_INSTANCES_PER_PASS", "0")
    with pytest.raises(DSEError, match="DSE_INSTANCES_PER_PASS must be a positive integer or auto, got '0'"):
        Evaluator(trained, tiny_data.test_x[:8], tiny_data.test_y[:8])
