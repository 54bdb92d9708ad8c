"""Typed tasks: the job config the store keeps is a task's canonical JSON, and it reads back as the same task."""
import json

import pytest

from dse.domain.errors import DSEError
from dse.domain.point import DesignPoint
from dse.run import jobs
from dse.run.tasks import EvaluateTask, SensitivityTask, TrainTask, from_json, task_id, to_json, train_task


@pytest.mark.parametrize("task", [
    train_task(DesignPoint("resnet20", 1.6, 3, "default", 0.3), epochs=4, data="/d", out_dir="/ck", lr=0.1,
               calib_rates=(0.3, 0.0, 0.05), init="/ck/base.safetensors"),
    EvaluateTask("/ck/m.safetensors", (0.3, 0.1), "/d", instances=20, adaptive=0.5, bn="chip", calib_images=100),
    SensitivityTask("/ck/m.safetensors", 0.2, "/d"),
])
def test_a_task_round_trips_through_its_json(task):
    doc = json.loads(json.dumps(to_json(task)))  # what the store keeps
    back = from_json(task.kind, doc)
    assert back == task and task_id(back) == task_id(task)


def test_equal_work_is_one_job_and_other_work_another():
    a = EvaluateTask("/m", (0.1, 0.2), "/d", bn="paper")
    assert task_id(a) == task_id(EvaluateTask("/m", [0.2, 0.1], "/d", bn="paper"))  # rates in any order
    assert task_id(a) == task_id(EvaluateTask("/m", (0.1, 0.2), "/d", bn="paper", calib_images=32))  # N: chip's only
    assert task_id(a) != task_id(EvaluateTask("/m", (0.1, 0.2), "/d", bn="chip"))
    assert task_id(EvaluateTask("/m", (0.1,), "/d")) != task_id(EvaluateTask("/m", (0.1,), "/d", calib_images=32))
    assert to_json(EvaluateTask("/m", (0.1,), "/d", bn="batch"))["calib_images"] == 0
    assert jobs.evaluate_config("/m", [0.1, 0.2], data="/d", bn="paper") == to_json(a)  # the helpers build tasks too


def test_a_stored_config_with_unknown_or_bad_keys_is_refused():
    with pytest.raises(DSEError, match="unknown key"):
        from_json("evaluate", {**to_json(EvaluateTask("/m", (0.1,), "/d")), "fault_rate": 0.1})
    with pytest.raises(DSEError, match="unknown job kind 'calibrate'"):
        from_json("calibrate", {})
    with pytest.raises(DSEError, match="unknown BN protocol 'chips'"):
        EvaluateTask("/m", (0.1,), "/d", bn="chips")
    assert isinstance(from_json("train", to_json(TrainTask(DesignPoint("vgg13", 1.0), 1, "/d", "/o"))).point,
                      DesignPoint)


def test_a_stored_evaluate_config_without_a_protocol_is_the_papers():
    """Tasks default to the one BN default (chip), but a config stored before tasks named their protocol was
    evaluated under the paper's: it reads back so, and keeps its id."""
    from dse.domain.bn import DEFAULT_BN, LEGACY_BN

    doc = to_json(EvaluateTask("/m", (0.1,), "/d", bn="paper"))
    old = {k: v for k, v in doc.items() if k not in ("bn", "calib_images")}
    back = from_json("evaluate", old)
    assert back.bn == LEGACY_BN != DEFAULT_BN and task_id(back) == task_id(EvaluateTask("/m", (0.1,), "/d", bn="paper"))
    assert from_json("evaluate", to_json(EvaluateTask("/m", (0.1,), "/d"))).bn == DEFAULT_BN
