"""Typed tasks: the job config the store keeps is a task's canonical JSON, and it reads back as the same task;
an evaluate task carries one EvalSpec, in the flat layout evaluate configs have always had, so stored jobs keep
their ids."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from dse.domain.bn import DEFAULT_BN, LEGACY_BN, Batch, Chip, Paper
from dse.domain.errors import DSEError
from dse.domain.evalspec import Budget, EvalSpec
from dse.domain.faultspec import parse_fault_model
from dse.domain.point import DesignPoint
from dse.run.tasks import (CalibrateTask, EvaluateTask, SensitivityTask, TrainTask, from_json, task_id, to_json,
                           train_task)

P = DesignPoint("resnet20", 1.0, 1, "default", 0.3)
LEGACY = json.loads((Path(__file__).parent / "data" / "journals-v3.json").read_text())


def spec(rate=0.1, **kw) -> EvalSpec:
    return EvalSpec(P, parse_fault_model(kw.pop("fault", "sa1"), rate), **kw)


@pytest.mark.parametrize("task", [
    train_task(DesignPoint("resnet20", 1.6, 3, "default", 0.3), epochs=4, data="/d", out_dir="/ck", lr=0.1,
               calib_rates=(0.3, 0.0, 0.05), init="/ck/base.safetensors"),
    EvaluateTask("/ck/m.safetensors", spec(0.3, bn=Chip(100), budget=Budget(20, 0.5)), "/d"),
    EvaluateTask("/ck/m.safetensors", spec(0.2, fault="clustered:8+remap:4", bn=Paper(recalibrate=False), seed=3,
                                           test_images=500, precision="bf16", rescale=False), "/d", "cpu",
                 batch_size=100, instances_per_pass=2),
    SensitivityTask("/ck/m.safetensors", 0.2, "/d"),
    CalibrateTask("/ck/m.safetensors", (0.3, 0.0), "/d", calib_images=200, seed=1, device="cpu"),
])
def test_a_task_round_trips_through_its_json(task):
    doc = json.loads(json.dumps(to_json(task)))  # what the store keeps
    back = from_json(task.kind, doc)
    assert back == task and task_id(back) == task_id(task)


def test_equal_work_is_one_job_and_other_work_another():
    a = EvaluateTask("/m", spec(bn=Paper()), "/d")
    assert task_id(a) == task_id(EvaluateTask("/m", spec(bn=Paper()), "/d", batch_size=100))  # speed only
    assert task_id(a) == task_id(EvaluateTask("/m", replace(spec(bn=Paper()), point=DesignPoint("vgg13", 1.0)), "/d"))
    assert task_id(a) != task_id(EvaluateTask("/m", spec(bn=Chip()), "/d"))
    assert task_id(a) != task_id(EvaluateTask("/m", spec(0.2, bn=Paper()), "/d"))
    assert task_id(EvaluateTask("/m", spec(), "/d")) != task_id(EvaluateTask("/m", spec(bn=Chip(32)), "/d"))
    assert to_json(EvaluateTask("/m", spec(bn=Batch()), "/d"))["calib_images"] == 0


def test_stored_jobs_keep_their_ids():
    """Jobs recorded by the code before EvalSpec (tests/data/journals-v3.json: their configs and ids) have the
    same ids as the tasks that describe the same work now, whatever design point the task names. (A config
    stored before tasks named their BN protocol had another id under that code already.)"""
    evaluations = [job for job in LEGACY["job_ids"] if job["kind"] == "evaluate" and "bn" in job["config"]]
    assert len(evaluations) >= 3
    for job in LEGACY["job_ids"]:
        if job["kind"] != "evaluate":
            assert task_id(from_json(job["kind"], job["config"])) == job["job_id"]
    for job in evaluations:
        c = job["config"]
        s = EvalSpec(DesignPoint("vgg13", 2.0), parse_fault_model(c.get("fault_model", "sa1"), c["fault_rates"][0]),
                     Chip(c["calib_images"]) if c["bn"] == "chip" else Paper(), seed=c["seed"],
                     budget=Budget(c["instances"], c["adaptive"]), test_images=c["test_images"],
                     precision=c.get("precision"))
        assert task_id(EvaluateTask(c["checkpoint"], s, c["data"], c["device"])) == job["job_id"], c


def test_a_stored_config_without_a_design_point_reads_it_from_its_checkpoint(tmp_path):
    from tests.fixtures import write_checkpoint

    ck = write_checkpoint(tmp_path, DesignPoint("resnet20", 0.25, 3, "default", 0.1), 50.0)
    old = {k: v for k, v in to_json(EvaluateTask(str(ck), spec(), "/d")).items() if k != "point"}
    back = from_json("evaluate", old)
    assert back.spec.point == DesignPoint("resnet20", 0.25, 3, "default", 0.1)
    with pytest.raises(DSEError, match="does not exist"):
        from_json("evaluate", {**old, "checkpoint": str(tmp_path / "gone.safetensors")})


def test_a_stored_config_with_unknown_or_bad_keys_is_refused():
    with pytest.raises(DSEError, match="unknown key"):
        from_json("evaluate", {**to_json(EvaluateTask("/m", spec(), "/d")), "fault_rate": 0.1})
    with pytest.raises(DSEError, match="one fault rate, its config has 2"):
        from_json("evaluate", {**to_json(EvaluateTask("/m", spec(), "/d")), "fault_rates": [0.1, 0.2]})
    with pytest.raises(DSEError, match="unknown job kind 'widen'"):
        from_json("widen", {})
    with pytest.raises(DSEError, match="calibrate job config lacks checkpoint, data, fault_rates"):
        from_json("calibrate", {})
    with pytest.raises(DSEError, match="unknown BN protocol 'chips'"):
        from_json("evaluate", {**to_json(EvaluateTask("/m", spec(), "/d")), "bn": "chips"})
    with pytest.raises(DSEError, match="carries an EvalSpec"):
        EvaluateTask("/m", (0.1,), "/d")
    assert isinstance(from_json("train", to_json(TrainTask(DesignPoint("vgg13", 1.0), 1, "/d", "/o"))).point,
                      DesignPoint)


def test_a_stored_evaluate_config_without_a_protocol_is_the_papers():
    """Specs default to the one BN default (chip), but a config stored before tasks named their protocol was
    evaluated under the paper's: it reads back so, and keeps its id."""
    doc = to_json(EvaluateTask("/m", spec(bn=Paper()), "/d"))
    old = {k: v for k, v in doc.items() if k not in ("bn", "calib_images")}
    back = from_json("evaluate", old)
    assert back.spec.bn == Paper() and back.spec.bn.name == LEGACY_BN != DEFAULT_BN
    assert task_id(back) == task_id(EvaluateTask("/m", spec(bn=Paper()), "/d"))
    assert from_json("evaluate", to_json(EvaluateTask("/m", spec(), "/d"))).spec.bn.name == DEFAULT_BN
