"""Numerical faults: a training run whose loss or weights turn inf/NaN stops with a clear message and keeps the
last good epoch (which resumes); a model whose accuracy under faults falls to chance is reported as collapsed,
by the library, the CLI and the app, never as an error."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from dse.core.errors import DSEError
from dse.core.evaluation.evaluate import Protocol, evaluate
from dse.core.io.checkpoint import load_checkpoint
import dse.core.training.train
from dse.core.training.train import Recipe, TrainConfig, partial_path, train
from tests.fixtures import POINTS, build_store, fake_result
from tests.hardening.common import one_thread, run_cli
from tests.test_app import app, metric


def config(epochs: int = 3) -> TrainConfig:
    """ResNet20 0.5x on 40 synthetic images in batches of 10: 4 steps an epoch."""
    return TrainConfig(network="resnet20", width=0.5, dropconnect=0.3, seed=1, max_train_images=40,
                       recipe=Recipe(epochs=epochs, batch_size=10, lr=0.05, warmup_epochs=0.5),
                       calib_rates=(0.0,), calib_images=20)


def quiet(*_):
    pass


@pytest.mark.parametrize("poisoned_step", [6, 8], ids=["mid-epoch", "last-step-of-epoch"])
def test_inf_weights_stop_training_and_keep_the_last_good_epoch(tmp_path, tiny_data, monkeypatch, poisoned_step):
    """An overflow in step 6 or 8 (both in epoch 2): after step 8 the epoch's loss is still finite, only the
    weights show it, and epoch 2 must not be saved as the resume point."""
    real, calls = dse.core.training.train.train_step, [0]

    def overflowing_step(model, *args, **kwargs):
        out = real(model, *args, **kwargs)
        calls[0] += 1
        if calls[0] == poisoned_step:
            with torch.no_grad():
                next(model.parameters()).mul_(float("inf"))
        return out

    out = tmp_path / "m.safetensors"
    monkeypatch.setattr(dse.core.training.train, "train_step", overflowing_step)
    with one_thread(), pytest.raises(DSEError) as e:
        train(config(), tiny_data, out, progress=False, log=quiet)
    assert str(e.value).startswith("training diverged at epoch 2: ") and f"kept in {partial_path(out)}" in str(e.value)
    kept = load_checkpoint(partial_path(out))
    assert kept.meta["epochs_done"] == 1 and all(torch.isfinite(t).all() for t in kept.state.values())
    assert not out.exists()

    monkeypatch.setattr(dse.core.training.train, "train_step", real)  # the last good epoch resumes to a finished model
    with one_thread():
        meta = train(config(), tiny_data, out, progress=False, log=quiet, resume=True)
    assert meta["complete"] and all(torch.isfinite(t).all() for t in load_checkpoint(out).state.values())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data):
    """A model clearly above chance on the synthetic data (about 60%)."""
    out = tmp_path_factory.mktemp("collapse") / "m.safetensors"
    cfg = TrainConfig(network="resnet20", width=0.5, seed=1, max_train_images=200, calib_rates=(0.0, 0.1),
                      calib_images=100, recipe=Recipe(epochs=2, batch_size=20, lr=0.05, warmup_epochs=0.5))
    with one_thread():
        train(cfg, tiny_data, out, progress=False, log=quiet)
    return load_checkpoint(out)


def test_accuracy_at_chance_is_a_result_not_an_error(trained, tiny_data):
    with one_thread():
        fine, gone = evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.0, 0.99], protocol=Protocol(instances=2),
                              progress=False)["results"]
    assert fine["mean"] > 30 and not fine["at_chance"]
    assert abs(gone["mean"] - 10.0) <= 3 and gone["at_chance"]  # 99% of crossbar weights read 0: it guesses


def write_tree(data, root):
    """The synthetic data as an image tree (PNG is lossless: the same tensors come back)."""
    from dse.core.io.data import CLASSES

    for split, xs, ys in (("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            folder = root / split / CLASSES[int(y)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(x.permute(1, 2, 0).numpy())).save(folder / f"{i:04d}.png")
    return root


def test_cli_says_at_chance_level_and_succeeds(trained, tiny_data, tmp_path):
    tree = write_tree(tiny_data, tmp_path / "data")
    argv = ["evaluate", trained.path, "--data", str(tree), "--fault-rate", "0", "--fault-rate", "0.99",
            "--instances", "2", "--device", "cpu"]
    with one_thread():
        code, out, err = run_cli(argv)
        assert code == 0 and "error" not in err, err
        assert out.count("at chance level") == 1 and "at fault rate 0.99 the accuracy (10.00%) is at chance" in out
        code, out, _ = run_cli([*argv, "--json"])
    assert code == 0 and [r["at_chance"] for r in json.loads(out)["results"]] == [False, True]


def test_app_says_a_collapsed_point_is_at_chance_level(tmp_path, monkeypatch):
    store, _ = build_store(tmp_path)
    p = POINTS[1]  # the default selection, at the default 10% faults
    sha = store.points().set_index("point_id").loc[p.point_id, "checkpoint_sha"]
    store.add_evaluation(p.point_id, sha, fake_result(0.1, 10.0, bn="chip"), {"recalibrate": True})
    at = app(tmp_path, monkeypatch)
    assert not at.exception and not at.error
    assert metric(at, "Accuracy under faults") == "10.00%"
    assert any("at chance level (10.00%" in w.value and "collapsed" in w.value for w in at.warning)
