"""What rebuilding `checkpoints/` relies on: fine-tuning from a base model, fp16 weights, grid blocks with
their own recipe and protocol, `--only` and `--instances`, evaluations that resume and extend from the
crossbars already run, and the manifest that carries results to another machine."""
import json
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dse.cli import main
from dse.core.errors import DSEError
from dse.core.evaluation.evaluate import Evaluator, Protocol
from dse.core.io.checkpoint import load_checkpoint
from dse.core.models import build_model
from dse.core.training.train import Recipe, TrainConfig, grown_state, train
from dse.results.catalog import MANIFEST, sync, write_manifest
from dse.results.store import DesignPoint, Store
from dse.run import jobs
from dse.run.spec import load_spec, parse_only, parse_spec
from dse.run.sweep import expand
from tests.test_data import make_tree

pytestmark = pytest.mark.slow  # fine-tunes and evaluates real (tiny) models


def quiet(*_):
    pass


def cfg(**kw):
    recipe = Recipe(epochs=kw.pop("epochs", 1), batch_size=32, lr=0.05, warmup_epochs=0.5)
    return TrainConfig(network="resnet20", width=0.5, seed=1, recipe=recipe, calib_rates=(0.0, 0.1),
                       calib_images=64, **kw)


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_data):
    out = tmp_path_factory.mktemp("base") / "base.safetensors"
    train(cfg(epochs=2), tiny_data, out, progress=False, log=quiet)
    return out


# ================================================================================ training
def test_finetune_starts_from_the_base_weights(tmp_path, tiny_data, base):
    b = load_checkpoint(base)
    out = tmp_path / "ft.safetensors"
    meta = train(cfg(dropconnect=0.3, init=str(base)), tiny_data, out, progress=False, log=quiet)
    assert meta["init"]["sha256"] == b.sha256 and meta["init"]["checkpoint"] == "base.safetensors"
    assert meta["config"]["init"] == "base.safetensors"  # the name, not the folder: a moved checkout resumes
    scratch = tmp_path / "scratch.safetensors"
    train(cfg(dropconnect=0.3), tiny_data, scratch, progress=False, log=quiet)
    ft, sc = load_checkpoint(out).state, load_checkpoint(scratch).state
    w = "layer3.2.conv2.weight"  # one epoch at a small lr moves the weights little from where they started
    assert (ft[w] - b.state[w]).norm() < (sc[w] - b.state[w]).norm()


def test_a_grown_shortcut_kernel_starts_as_the_same_function(tmp_path, tiny_data, base):
    """1x1 shortcut weights in the centre of a 3x3 kernel (zeros around it) compute what they computed."""
    small = load_checkpoint(base).build_model().eval()
    grown = build_model("resnet20", 0.5, 3)
    grown.load_state_dict(grown_state(small.state_dict(), grown))
    grown.eval()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(grown(x), small(x), atol=1e-5)
    w = grown.layer2[0].shortcut[0].weight
    off_centre = torch.ones(3, 3, dtype=torch.bool)
    off_centre[1, 1] = False
    assert w.shape[2:] == (3, 3) and w[:, :, 1, 1].abs().sum() > 0 and (w[:, :, off_centre] == 0).all()

    out = tmp_path / "k3.safetensors"
    meta = train(cfg(shortcut_kernel=3, dropconnect=0.3, init=str(base)), tiny_data, out, progress=False, log=quiet)
    assert meta["shortcut_kernel"] == 3 and meta["init"]["shortcut_kernel"] == 1
    assert load_checkpoint(out).state["layer2.0.shortcut.0.weight"].shape[2:] == (3, 3)
    with pytest.raises(DSEError, match="init checkpoint k3.safetensors is resnet20 width 0.5 kernel 3; "
                                       "this run is resnet20 width 0.5 kernel 1 \\(width and kernel may only grow\\)"):
        train(cfg(init=str(out)), tiny_data, tmp_path / "x.safetensors", progress=False, log=quiet)


def test_a_wider_network_is_fine_tuned_from_a_narrower_one(tmp_path, tiny_data, base):
    """The base is widened (dse.core.training.widen: the same function to start with), then trained; its copied channels
    become channels of their own, which equal shares of the outgoing weights would never let them."""
    out = tmp_path / "wide.safetensors"
    meta = train(replace(cfg(init=str(base)), width=0.8), tiny_data, out, progress=False, log=quiet)
    assert meta["width"] == 0.8 and meta["init"]["width"] == 0.5
    w = load_checkpoint(out).state["conv1.weight"]
    assert w.shape[0] == 12 and len({tuple(row.flatten().tolist()) for row in w}) == 12


def test_finetune_refuses_another_architecture_or_a_missing_base(tmp_path, tiny_data, base):
    with pytest.raises(DSEError, match="init checkpoint base.safetensors is resnet20 width 0.5 kernel 1; "
                                       "this run is resnet20 width 0.25 kernel 1"):
        train(replace(cfg(init=str(base)), width=0.25), tiny_data, tmp_path / "x.safetensors", progress=False,
              log=quiet)
    with pytest.raises(DSEError, match="does not exist; train it first"):
        train(cfg(init=str(tmp_path / "nope.safetensors")), tiny_data, tmp_path / "y.safetensors", progress=False,
              log=quiet)


def test_half_weights_are_stored_as_evaluated(tmp_path, tiny_data):
    out = tmp_path / "h.safetensors"
    meta = train(cfg(half=True), tiny_data, out, progress=False, log=quiet)
    ck = load_checkpoint(out)
    assert ck.meta["dtype"] == "float16" and ck.state["conv1.weight"].dtype == torch.float16
    assert ck.bn_stats[0.1]["bn1.running_var"].dtype == torch.float32
    ev = Evaluator(ck, tiny_data.test_x, tiny_data.test_y)
    ev.use_bn_for(0.0)
    assert ev.accuracy() == pytest.approx(meta["test_accuracy"], abs=1e-9)  # the figure is of the stored weights


# ================================================================================ grid specs
GRID = """
fault_rates = [0.0, 0.1]
manifest = true
[recipe]
epochs = 10
half = true
[protocol]
instances = 100
[[grid]]
network = "resnet20"
dropconnect = [0.0, 0.3]
finetune_from = { dropconnect = 0.0 }
finetune_recipe = { epochs = 3, lr = 0.05 }
[[grid]]
network = "resnet20"
mapping = "1x1-on-crossbar"
dropconnect = 0.3
finetune_from = { dropconnect = 0.0, mapping = "default" }
[[grid]]
network = "vgg13"
recipe = { epochs = 4 }
protocol = { adaptive = 0.5 }
"""


def test_finetuned_points_depend_on_their_base():
    spec = parse_spec(tomllib.loads(GRID))
    plan = expand(spec, data="/d")
    trains = {(j.point.network, j.point.mapping, j.point.dropconnect): j for j in plan if j.kind == "train"}
    base, ft, xbar, vgg = (trains[k] for k in [("resnet20", "default", 0.0), ("resnet20", "default", 0.3),
                                                ("resnet20", "1x1-on-crossbar", 0.3), ("vgg13", "default", 0.0)])
    assert base.deps == () and base.config["init"] is None and base.config["epochs"] == 10 and base.config["half"]
    assert ft.deps == (base.job_id,) and ft.config["init"] == base.config["out"]
    assert ft.config["epochs"] == 3 and ft.config["lr"] == 0.05
    assert xbar.deps == (base.job_id,) and xbar.config["epochs"] == 10  # no finetune_recipe: the block's recipe
    assert vgg.config["epochs"] == 4
    evals = {(j.point.network, j.config["fault_rates"][0]): j.config for j in plan if j.kind == "evaluate"}
    assert evals[("vgg13", 0.1)]["adaptive"] == 0.5 and evals[("resnet20", 0.1)]["adaptive"] is None
    assert spec.manifest


@pytest.mark.parametrize("text, message", [
    (GRID.replace('finetune_from = { dropconnect = 0.0 }', 'finetune_from = { dropconnect = 0.1 }'),
     "sweep spec grid[1].finetune_from: the base point"),
    (GRID.replace('finetune_from = { dropconnect = 0.0 }', 'finetune_from = { seed = 2 }'),
     "sweep spec grid[1].finetune_from.seed: unknown key; allowed: mapping, dropconnect, shortcut_kernel, width"),
    (GRID + '[[grid]]\nnetwork = "resnet20"\nwidth = 1.6\n[[grid]]\nnetwork = "resnet20"\n'
     'dropconnect = 0.5\nfinetune_from = { width = 1.6, dropconnect = 0.0 }',
     "sweep spec grid[5].finetune_from: width 1.6 is larger than the fine-tuned point's 1"),
    (GRID + '[[grid]]\nnetwork = "resnet20"\nshortcut_kernel = 3\n[[grid]]\nnetwork = "resnet20"\n'
     'dropconnect = 0.5\nfinetune_from = { shortcut_kernel = 3, dropconnect = 0.0 }',
     "sweep spec grid[5].finetune_from: shortcut_kernel 3 is larger than the fine-tuned point's 1"),
    (GRID.replace('recipe = { epochs = 4 }', 'recipe = { epochs = -4 }'),
     "sweep spec grid[3].recipe.epochs: expected a positive integer, got -4"),
    (GRID.replace('protocol = { adaptive = 0.5 }', 'protocol = { adaptive = nan }'),
     "sweep spec grid[3].protocol.adaptive: expected a positive CI half-width, got nan"),
    (GRID.replace('half = true', 'half = "yes"'), "sweep spec recipe.half: expected true or false, got 'yes'"),
    (GRID.replace('manifest = true', 'manifest = 1'), "sweep spec manifest: expected true or false, got 1"),
    ('[[grid]]\nnetwork = "vgg13"\nfinetune_recipe = { epochs = 1 }', "grid[1].finetune_recipe: needs finetune_from"),
])
def test_bad_grid_keys_name_the_key(text, message):
    with pytest.raises(DSEError) as e:
        parse_spec(tomllib.loads(text))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_only_keeps_the_selected_points_and_the_bases_they_need():
    from dataclasses import replace

    spec = parse_spec(tomllib.loads(GRID))
    plan = expand(replace(spec, only=parse_only(["mapping=1x1-on-crossbar"])), data="/d")
    assert [(j.kind, j.point.mapping) for j in plan] == [("train", "default")] + [("train", "1x1-on-crossbar")] + \
        [("evaluate", "1x1-on-crossbar")] * 2
    assert len(expand(replace(spec, only=parse_only(["network=vgg13", "dropconnect=0,0.3"])), data="/d")) == 3
    for bad, message in [(["width"], "expected AXIS=V1,V2"), (["color=red"], "expected AXIS=V1,V2"),
                         (["dropconnect=lots"], "expected a number, got 'lots'"),
                         (["network=resnet21"], "unknown network 'resnet21'")]:
        with pytest.raises(DSEError, match=message):
            parse_only(bad)
    with pytest.raises(DSEError, match="selects no design point"):
        expand(replace(spec, only=parse_only(["width=2"])), data="/d")


def test_the_shipped_grid_parses():
    spec = load_spec(Path(__file__).parents[1] / "checkpoints" / "grid.toml")
    points = [p for p, _ in spec.points()]
    assert len(points) == 15 and spec.manifest and spec.checkpoint_dir == "checkpoints"
    plan = expand(spec, data="/d")
    tuned = [j.point for j in plan if j.kind == "train" and j.config["init"] is not None]
    scratch = {(j.point.network, j.point.width) for j in plan if j.kind == "train" and j.config["init"] is None}
    assert scratch == {("resnet20", 1.0), ("vgg13", 1.0), ("mobilenetv2", 1.0)}
    assert len(tuned) == 12 and all(p.dropconnect > 0 or p.shortcut_kernel == 3 or p.width > 1 for p in tuned)


# ================================================================================ evaluation
def test_a_run_given_finished_instances_runs_only_the_rest(tiny_data, base):
    ev = Evaluator(load_checkpoint(base), tiny_data.test_x[:50], tiny_data.test_y[:50])
    full = ev.run(0.2, Protocol(instances=4), progress=False)["accuracies"]
    seen = []
    part = ev.run(0.2, Protocol(instances=4), progress=False, done=[-1.0, -2.0],
                  on_instance=lambda i, a: seen.append(i))
    assert part["accuracies"] == [-1.0, -2.0] + full[2:] and seen == [3, 4]
    assert ev.run(0.2, Protocol(instances=3), progress=False, done=full)["accuracies"] == full[:3]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("grid") / "data", per_class=4)


@pytest.fixture
def ck(tmp_path, base, monkeypatch):
    """A copy of the base checkpoint alone in a checkpoints folder, with a private evaluation cache."""
    monkeypatch.setenv("DSE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / base.name).write_bytes(base.read_bytes())
    return folder / base.name


def test_evaluate_jobs_resume_and_extend_from_their_crossbar_journal(tree, ck):
    c3 = jobs.evaluate_config(str(ck), [0.2], data=str(tree), instances=3, device="cpu", test_images=30)
    first = jobs.execute("evaluate", c3)["results"][0]["accuracies"]
    (journal,) = ck.parent.glob("*.crossbars-*.partial")
    doc = json.loads(journal.read_text())
    assert [round(a, 4) for a in doc["accuracies"]] == first and doc["seconds"] > 0
    doc["accuracies"][:2] = [12.5, 25.0]  # marks: a rerun that reuses them reports them
    doc["seconds"] = 1000.0  # and counts the time they took
    journal.write_text(json.dumps(doc))
    c5 = {**c3, "instances": 5}
    said = []
    result = jobs.execute("evaluate", c5, lambda f, m, force=False, eta_s=None: said.append((f, m, eta_s)))["results"][0]
    crossbars = [m for _, m, _ in said if "crossbar" in m and "of 5" in m]  # only the new ones: 4 and 5 of 5
    assert [m.split(" · ")[0] for m in crossbars] == ["f = 20%: crossbar 4 of 5", "f = 20%: crossbar 5 of 5"]
    assert all("running mean" in m for m in crossbars) and said[-1][0] == 1.0  # the mean counts reused crossbars
    assert said[-2][2] is None and said[-1][2] == 0  # no ETA from one timed crossbar; none left at the end
    again = result["accuracies"]
    assert again[:3] == [12.5, 25.0, first[2]] and len(again) == 5
    assert 1000 < result["time_s"] < 1000 + 60 and 1000 < json.loads(journal.read_text())["seconds"] < 1000 + 60
    other_seed = jobs.execute("evaluate", {**c3, "seed": 1})["results"][0]["accuracies"]
    assert 12.5 not in other_seed  # another protocol seed is other fault maps: not reused
    journal.write_text("{not json")
    assert jobs.execute("evaluate", c3)["results"][0]["accuracies"] == first  # a damaged journal is redone


# ================================================================================ manifest
def test_manifest_carries_the_evaluations_to_a_fresh_store(tmp_path, tree, ck, capsys):
    folder = ck.parent
    (folder / "broken.safetensors").write_bytes(b"garbage")
    store = Store(tmp_path / "a.sqlite")
    result = jobs.execute("evaluate", jobs.evaluate_config(str(ck), [0.0, 0.1], data=str(tree), instances=2,
                                                           device="cpu", test_images=30))
    jid, _ = store.submit_job("evaluate", "x", {"k": 1})
    jobs.record(store, jid, "evaluate", result)
    assert main(["store", "manifest", "--store", str(tmp_path / "a.sqlite"), "--checkpoints", str(folder)]) == 0
    assert "1 checkpoints, 2 evaluations" in capsys.readouterr().out
    doc = json.loads((folder / MANIFEST).read_text())
    (entry,) = doc["checkpoints"]
    assert entry["file"] == ck.name and entry["network"] == "resnet20" and len(entry["evaluations"]) == 2

    fresh = Store(tmp_path / "b.sqlite")
    report = sync(fresh, [folder])
    assert report["evaluations"] == 2 and len(report["problems"]) == 1
    cols = ["fault_rate", "n", "mean", "ci95", "worst", "accuracies", "quantized_accuracy", "protocol", "seed"]
    a, b = (s.evaluations()[cols].sort_values("fault_rate").reset_index(drop=True) for s in (store, fresh))
    assert a.equals(b)
    assert write_manifest(fresh, folder)["evaluations"] == 2  # a round trip writes the same manifest
    assert json.loads((folder / MANIFEST).read_text()) == doc

    write_manifest(fresh, folder, data=str(tree))  # with data: a spot check per checkpoint
    spot = json.loads((folder / MANIFEST).read_text())["checkpoints"][0]["spot_check"]
    from dse.core.evaluation.evaluate import spot_check
    from dse.core.io.data import load_cifar10

    d = load_cifar10(tree)
    assert spot == spot_check(load_checkpoint(ck), d.test_x, d.test_y) and spot["test_images"] == 500
    write_manifest(fresh, folder, data=str(tmp_path / "gone"))  # kept while the weights are the same
    assert json.loads((folder / MANIFEST).read_text())["checkpoints"][0]["spot_check"] == spot


def test_the_manifest_lists_evaluations_in_a_stable_order(tmp_path, tree, ck):
    """Within a fault rate, the smaller protocol comes first whatever order the store got them in."""
    store = Store(tmp_path / "a.sqlite")
    for instances in (3, 2):  # the larger protocol lands in the store first
        result = jobs.execute("evaluate", jobs.evaluate_config(str(ck), [0.2, 0.1], data=str(tree),
                                                               instances=instances, device="cpu", test_images=30))
        jid, _ = store.submit_job("evaluate", "x", {"k": instances})
        jobs.record(store, jid, "evaluate", result)
    write_manifest(store, ck.parent)
    (entry,) = json.loads((ck.parent / MANIFEST).read_text())["checkpoints"]
    assert [(e["fault_rate"], e["n"]) for e in entry["evaluations"]] == [(0.1, 2), (0.1, 3), (0.2, 2), (0.2, 3)]


def test_the_packaged_default_grid_is_the_shipped_one():
    """`reproduce --grid default` rebuilds checkpoints/ from scratch: same points, recipes and protocols."""
    from dataclasses import replace

    shipped, default = load_spec(Path(__file__).parents[1] / "checkpoints" / "grid.toml"), load_spec("default")
    assert default.checkpoint_dir == "runs/checkpoints" and not default.manifest
    same = ("name", "checkpoint_dir", "manifest", "source", "description")
    assert replace(default, **{k: getattr(shipped, k) for k in same}) == shipped


def test_the_converged_grid_names_the_29_points_and_runs_chip_first():
    """checkpoints/converged/grid.toml: today's 15 points plus VGG13/MobileNetV2 at p = 0.1-0.5, ResNet20 at
    1.2x/1.4x and VGG13 1.4x; every point trained with the converged recipe, crossbar layers stored as
    8-bit levels, evaluated under chip then paper, and every chip evaluation planned before any paper one."""
    from dse.run.spec import load_spec
    from dse.run.sweep import expand

    root = Path(__file__).resolve().parents[1]
    spec = load_spec(root / "checkpoints" / "converged" / "grid.toml")
    points = {p for p, _, _ in spec.blocks()}
    assert len(points) == 29
    key = {(p.network, p.width, p.shortcut_kernel, p.mapping, p.dropconnect) for p in points}
    for net in ("vgg13", "mobilenetv2"):
        assert {(net, 1.0, 1, "default", p) for p in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)} <= key
    assert {("resnet20", w, 1, "default", p) for w in (1.2, 1.4, 1.6) for p in (0.0, 0.3)} <= key
    assert {("vgg13", 1.4, 1, "default", p) for p in (0.0, 0.3)} <= key
    jobs = expand(spec, "data.tar.gz")
    trains = [j for j in jobs if j.kind == "train"]
    assert all(j.config["recipe"] == "converged" and j.config["int8"] for j in trains)
    bns = [j.config["bn"] for j in jobs if j.kind == "evaluate"]
    assert bns.count("chip") == bns.count("paper") == 29 * 4
    assert max(i for i, b in enumerate(bns) if b == "chip") < min(i for i, b in enumerate(bns) if b == "paper")
