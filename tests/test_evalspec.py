"""EvalSpec: one evaluation named once. Its key round-trips through the columns the store keeps, equal specs
have equal keys and different ones different keys, the BN protocols parse and format to their stored names,
and the crossbar journals written before EvalSpec keep their files."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from dse.core.evaluation.journal import Journal
from dse.domain.bn import BN_PROTOCOLS, Batch, Chip, Paper, bn_label, parse_bn
from dse.domain.errors import DSEError
from dse.domain.evalspec import Budget, EvalSpec, eval_key, parse_budget, spec_of
from dse.domain.faultspec import parse_fault_model
from dse.domain.point import DesignPoint

P = DesignPoint("resnet20", 1.6, 3, "1x1-on-crossbar", 0.3)
LEGACY = json.loads((Path(__file__).parent / "data" / "journals-v3.json").read_text())
SPECS = [
    EvalSpec(P, parse_fault_model("sa1", 0.1)),
    EvalSpec(P, parse_fault_model("sa1", 0.1), Paper()),
    EvalSpec(P, parse_fault_model("sa1", 0.1), Paper(recalibrate=False), rescale=False),
    EvalSpec(P, parse_fault_model("sa1", 0.1), Chip(32)),
    EvalSpec(P, parse_fault_model("sa1", 0.1), Batch()),
    EvalSpec(P, parse_fault_model("sa1", 0.2)),
    EvalSpec(P, parse_fault_model("clustered:8+remap:4", 0.1)),
    EvalSpec(P, parse_fault_model("sa0+bpc:2", 0.1), seed=3, test_images=1000),
    EvalSpec(replace(P, dropconnect=0.0), parse_fault_model("sa1", 0.1)),
]


def columns(spec: EvalSpec) -> dict:
    """The columns a store row holds for `spec` (what add_evaluation writes)."""
    return {**spec.identity(), "protocol": spec.budget.name}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key())
def test_a_spec_round_trips_through_its_stored_columns(spec):
    back = spec_of(spec.point, json.loads(json.dumps(columns(spec))))
    assert back == spec and back.key() == spec.key()
    assert eval_key(**spec.identity()) == spec.key()  # the store's migration computes the same key


def test_equal_specs_share_one_key_and_different_ones_do_not():
    assert len({s.key() for s in SPECS}) == len(SPECS)
    same = EvalSpec(P, parse_fault_model("sa1", 0.1), Chip(500), 0, Budget(100), None, None, True)
    assert same == SPECS[0] and hash(same) == hash(SPECS[0]) and same.key() == SPECS[0].key()
    # neither the budget nor the precision changes what crossbar i measures: one key, so one journal
    assert replace(SPECS[0], budget=Budget(20, 0.5), precision="bf16").key() == SPECS[0].key()
    assert SPECS[0].at(0.2) == SPECS[5] and SPECS[0].at(0.2).fault.name == "sa1"


def test_bn_protocols_parse_and_format_to_their_stored_names():
    assert [parse_bn(name).name for name in BN_PROTOCOLS] == list(BN_PROTOCOLS) == ["paper", "chip", "batch"]
    assert parse_bn("chip", 32) == Chip(32) and parse_bn("paper", 32) == Paper() and parse_bn("batch", 5) == Batch()
    assert Chip(32).images == 32 and Paper().images == 0 == Batch().images  # only Chip carries an image count
    assert bn_label("chip", 32) == "chip (N=32)" and bn_label("paper") == "paper (Algorithm 1)"
    with pytest.raises(DSEError, match="unknown BN protocol 'chips'"):
        parse_bn("chips")
    with pytest.raises(DSEError, match="calibration images must be a positive integer, got 0"):
        Chip(0)


def test_bad_specs_and_budgets_are_refused_in_one_line():
    with pytest.raises(DSEError, match="fault rate must be in"):
        parse_fault_model("sa1", 1.0)
    with pytest.raises(DSEError, match="instances must be an integer >= 1"):
        Budget(0)
    with pytest.raises(DSEError, match="adaptive CI target must be a positive number"):
        Budget(adaptive=-1.0)
    with pytest.raises(DSEError, match="BN protocol must be Paper"):
        EvalSpec(P, parse_fault_model("sa1", 0.1), "chip")
    with pytest.raises(DSEError, match="unknown precision 'fp16'"):
        EvalSpec(P, parse_fault_model("sa1", 0.1), precision="fp16")
    assert parse_budget("fixed(20)") == Budget(20) and parse_budget("adaptive(0.5)").name == "adaptive(0.5)"
    with pytest.raises(DSEError, match="unknown crossbar budget"):
        parse_budget("some(3)")


@pytest.mark.parametrize("old", LEGACY["journals"], ids=lambda j: j["file"])
def test_journals_written_before_evalspec_keep_their_files(tmp_path, old):
    """The file a journal of the code before EvalSpec wrote is the one the same spec's journal reads now."""
    spec = EvalSpec(P, parse_fault_model(old["fault_model"], old["fault_rate"]),
                    parse_bn(old["bn"], old["calib_images"] or None), seed=old["seed"], test_images=old["test_images"])
    journal = Journal(str(tmp_path / "m.safetensors"), LEGACY["checkpoint_sha"], spec)
    assert journal.path.name == old["file"].format(checkpoint="m.safetensors")
    journal.path.write_text(json.dumps(old["doc"]))
    assert journal.read() == (old["doc"]["accuracies"], old["doc"]["seconds"])
    other = Journal(journal.checkpoint, journal.sha, spec.at(0.25))
    other.path.write_text(json.dumps(old["doc"]))  # a foreign journal under this name is not trusted
    assert other.read() == ([], 0.0)
    journal.write([1.0, 2.0, 3.0], 4.0)  # written anew: by the spec's key
    assert journal.read() == ([1.0, 2.0, 3.0], 4.0)
    assert Journal(journal.checkpoint, "other-weights", spec).read() == ([], 0.0)
