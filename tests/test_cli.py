"""The CLI end to end on a tiny image tree: train -> info -> calibrate -> evaluate, plus bad input."""
import json

import pytest

from dse.domain.bn import BN_CHOICES
from dse.cli import main
from tests.test_data import make_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("cli") / "data", per_class=6)


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_train_info_calibrate_evaluate(tmp_path, tree, capsys, monkeypatch):
    monkeypatch.setenv("DSE_DATA", str(tree))
    ckpt = str(tmp_path / "m.safetensors")
    meta = run_json(capsys, "train", "--network", "resnet20", "--width", "0.5", "--shortcut-kernel", "3",
                    "--dropconnect", "0.3", "--epochs", "1", "--batch-size", "20", "--out", ckpt,
                    "--fault-rates", "0,0.1", "--device", "cpu")
    assert meta["complete"] and meta["shortcut_kernel"] == 3 and meta["calibration"]["rates"] == [0.0, 0.1]
    info = run_json(capsys, "info", ckpt)
    assert info["dropconnect"] == 0.3 and info["parameters"] > 0 and "optimizer_groups" not in info
    cal = run_json(capsys, "calibrate", ckpt, "--fault-rates", "0,0.2", "--calib-images", "30")
    assert cal["rates"] == [0.0, 0.1, 0.2] and cal["images"] == 30
    assert 0 <= cal["test_accuracy"] <= 100 and run_json(capsys, "info", ckpt)["test_accuracy"] == cal["test_accuracy"]
    ev = run_json(capsys, "evaluate", ckpt, "--fault-rate", "0.1", "--fault-rate", "0.15", "--instances", "3",
                  "--bn", "paper")
    assert [r["n"] for r in ev["results"]] == [3, 3]
    assert any("0.15" in w for w in ev["warnings"])  # 0.15 was not calibrated (the paper's protocol needs it)
    assert main(["evaluate", ckpt, "--fault-rate", "0.1", "--instances", "2"]) == 0  # human-readable table
    out = capsys.readouterr().out
    assert "95% CI" in out and "not comparable" not in out
    assert main(["evaluate", ckpt, "--fault-rate", "0.1", "--instances", "2", "--test-images", "20"]) == 0
    out = capsys.readouterr().out  # a subset's 8-bit figure is not set beside the full set's float one as a pair
    assert "fault-free 8-bit on these 20 test images" in out and "not comparable" in out
    sens = run_json(capsys, "sensitivity", ckpt, "--fault-rate", "0.2", "--instances", "2")
    assert [r["layer"] for r in sens["layers"]][0] == "conv1" and len(sens["layers"]) > 5
    assert sens["sum_of_layer_drops"] == pytest.approx(sum(r["drop"] for r in sens["layers"]))
    assert all(r["drop"] == pytest.approx(sens["fault_free_accuracy"] - r["accuracy"]) for r in sens["layers"])
    # every layer at once is the evaluation's own figure for the same two crossbars
    same = run_json(capsys, "evaluate", ckpt, "--fault-rate", "0.2", "--instances", "2")["results"][0]
    assert sens["all_layers_accuracy"] == pytest.approx(same["mean"], abs=0.01)
    assert main(["sensitivity", ckpt, "--fault-rate", "0.2", "--instances", "1"]) == 0
    assert "every layer at once" in capsys.readouterr().out
    chip = run_json(capsys, "evaluate", ckpt, "--fault-rate", "0.2", "--instances", "2", "--bn", "chip",
                    "--calib-images", "40")["results"][0]
    assert (chip["bn"], chip["calib_images"], chip["n"]) == ("chip", 40, 2)
    assert main(["evaluate", ckpt, "--fault-rate", "0.2", "--instances", "2", "--bn", "batch"]) == 0
    assert "BN: batch (transductive)" in capsys.readouterr().out
    store = str(tmp_path / "s.sqlite")
    curve = run_json(capsys, "calib-curve", ckpt, "--fault-rate", "0.2", "--images", "0,40", "--instances", "2",
                     "--store", store)
    assert [(r["calib_images"], r["bn"]) for r in curve["rows"]] == [(0, "paper"), (40, "chip")]
    assert curve["rows"][1]["mean"] == pytest.approx(chip["mean"])  # the same chips and images as evaluate's


@pytest.mark.parametrize("argv, match", [
    (["train", "--network", "resnet56", "--out", "x.safetensors"], "unknown network 'resnet56'"),
    (["train", "--width", "-1", "--out", "x.safetensors"], "width must be a positive finite number"),
    (["train", "--width", "nan", "--out", "x.safetensors"], "width must be a positive finite number"),
    (["train", "--dropconnect", "1", "--out", "x.safetensors"], "rate must be in [0, 1)"),
    (["train", "--epochs", "0", "--out", "x.safetensors"], "positive integer"),
    (["train", "--network", "vgg13", "--shortcut-kernel", "3", "--out", "x.safetensors"], "not available for vgg13"),
    (["train", "--out", "x.pt"], "must end in .safetensors"),
    (["evaluate", "nope.safetensors", "--fault-rate", "0.1"], "does not exist"),
    (["evaluate", "nope.safetensors", "--fault-rate", "1.0"], "rate must be in [0, 1)"),
    (["evaluate", "nope.safetensors", "--fault-rate", "abc"], "got 'abc'"),
    (["info", "missing.safetensors"], "does not exist"),
    (["sensitivity", "nope.safetensors", "--fault-rate", "-0.1"], "rate must be in [0, 1)"),
    (["sensitivity", "nope.safetensors", "--fault-rate", "0.1"], "does not exist"),
    (["evaluate", "nope.safetensors", "--fault-rate", "0.1", "--device", "tpu"], "argument --device: unknown device 'tpu'"),
    (["train", "--out", "x.safetensors", "--data", "/no/such/dir"], "does not exist"),
    (["evaluate", "nope.safetensors", "--fault-rate", "0.1", "--bn", "chips"],
     "unknown BN protocol 'chips'; choose one of paper, chip, batch"),
    (["evaluate", "nope.safetensors", "--fault-rate", "0.1", "--bn", "chip", "--calib-images", "0"],
     "argument --calib-images: expected a positive integer, got '0'"),
    (["calib-curve", "nope.safetensors", "--images", "32,x"], "got 'x'"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        code = main(argv)
        raise SystemExit(code)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_info_on_a_file_that_is_not_a_checkpoint_says_so(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# rram-dse\n\nA design-space explorer for fault-tolerant DNNs on RRAM crossbars.\n")
    assert main(["info", str(readme)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("is not a safetensors checkpoint (no safetensors header at its start)")
    assert "bytes" not in err and len(err.splitlines()) == 1


def test_every_bn_option_and_every_spec_job_and_page_default_is_the_one_default():
    """dse/domain/bn.py defines the BN default once; the commands, tasks, sweep specs and the page read it."""
    from dse.cli import build_parser
    from dse.domain.bn import BN_PROTOCOLS, DEFAULT_BN, DEFAULT_CALIB_IMAGES
    from dse.run.spec import GRIDS_DIR, PROTOCOL_DEFAULTS, load_spec
    from dse.domain.evalspec import EvalSpec
    from dse.domain.faultspec import parse_fault_model
    from dse.domain.point import DesignPoint

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    with_bn = {name: p for name, p in sub.choices.items() if any(a.dest == "bn" for a in p._actions)}
    assert {"evaluate", "yield", "lifetime", "spatial-report"} <= set(with_bn)
    for name, p in with_bn.items():
        assert (p.get_default("bn"), p.get_default("calib_images")) == (DEFAULT_BN, DEFAULT_CALIB_IMAGES), name
    assert build_parser().parse_args(["cost", "--network", "vgg13"]).calib_images == DEFAULT_CALIB_IMAGES
    spec = EvalSpec(DesignPoint("resnet20", 1.0), parse_fault_model("sa1", 0.1))
    assert (spec.bn.name, spec.bn.images) == (DEFAULT_BN, DEFAULT_CALIB_IMAGES)
    assert (PROTOCOL_DEFAULTS["bn"], PROTOCOL_DEFAULTS["calib_images"]) == (DEFAULT_BN, DEFAULT_CALIB_IMAGES)
    assert load_spec(GRIDS_DIR / "paper.toml").protocol["bn"] == "paper"  # the paper's grid says so itself
    assert BN_CHOICES[0] == DEFAULT_BN and sorted(BN_CHOICES) == sorted(BN_PROTOCOLS)
    assert DEFAULT_BN == "chip" and DEFAULT_CALIB_IMAGES == 500  # per-chip calibration on 500 images (docs/cli.md)
