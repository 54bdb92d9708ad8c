"""Named training recipes and their options (schedule, EMA, cutout, BN learning-rate scale): each stays
finite on tiny data, resumes exactly mid-epoch, and is recorded in the checkpoint and by `dse info`."""
import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from dse.core.errors import DSEError
from dse.core.io.checkpoint import load_checkpoint
from dse.core.io.data import cutout
from dse.core.recipes import RECIPES, Recipe, recipe
from dse.core.training.train import TrainConfig, lr_at, partial_path, train

OPTIONS = {"triangular": {"schedule": "triangular"}, "ema": {"ema": 0.9}, "cutout": {"cutout": 8},
           "bn_lr_scale": {"bn_lr_scale": 4.0}}


def config(**options):
    r = Recipe(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0.5, **options)
    return TrainConfig(network="resnet20", width=0.25, dropconnect=0.2, seed=3, recipe=r, calib_rates=(0.0,),
                       calib_images=64, max_train_images=256)


def quiet(*_):
    pass


class Killed(Exception):
    pass


def kill_at(step):
    def on_step(done, total):
        if done == step:
            raise Killed
    return on_step


@pytest.mark.slow
@pytest.mark.parametrize("option", list(OPTIONS))
def test_each_option_stays_finite_and_resumes_exactly(tmp_path, tiny_data, option):
    cfg = config(**OPTIONS[option])
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    train(cfg, tiny_data, a, progress=False, log=quiet, track_test=True)
    with pytest.raises(Killed):  # a kill mid-way through the second epoch, a partial after every step
        train(cfg, tiny_data, b, progress=False, log=quiet, save_every_s=0, on_step=kill_at(8 + 3))
    train(cfg, tiny_data, b, progress=False, log=quiet, resume=True, track_test=True)
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    for k, v in sa.state.items():
        assert torch.isfinite(v.float()).all(), k
        assert torch.equal(v, sb.state[k]), k
    assert [h["train_loss"] for h in sa.meta["history"]] == [h["train_loss"] for h in sb.meta["history"]]
    assert all(0 <= h["test_accuracy"] <= 100 for h in sa.meta["history"])
    assert sa.meta["recipe"] == {**sa.meta["recipe"], **OPTIONS[option]}  # the option is in the metadata


@pytest.mark.slow
def test_tracking_the_test_accuracy_changes_nothing_in_the_run(tmp_path, tiny_data):
    cfg = config(ema=0.9)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    train(cfg, tiny_data, a, progress=False, log=quiet, track_test=True)
    train(cfg, tiny_data, b, progress=False, log=quiet)
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert all(torch.equal(v, sb.state[k]) for k, v in sa.state.items())


@pytest.mark.slow
def test_an_ema_checkpoint_holds_the_ema_weights_with_their_own_bn_statistics(tmp_path, tiny_data):
    """The saved weights are the EMA's, not the live ones; the saved BN statistics are re-estimated for
    them (equal to a fresh calibration pass at the training rate), and evaluate with them."""
    from dse.core.evaluation.calibrate import calibrate_bn
    from dse.core.io.checkpoint import bn_buffers

    cfg = dataclasses.replace(config(ema=0.5), dropconnect=0.0)  # no masks: the pass is exactly repeatable
    out = tmp_path / "e.safetensors"
    train(cfg, tiny_data, out, progress=False, log=quiet, stop_after_epochs=1, save_every_s=0)
    train(cfg, tiny_data, out, progress=False, log=quiet, resume=True)
    ck = load_checkpoint(out)
    model = ck.build_model()
    stats = calibrate_bn(model, tiny_data.train_x, (0.0,), max_images=64, seed=3, progress=False)
    ours = bn_buffers(model)
    for k, v in stats[0.0].items():
        assert torch.allclose(ours[k].float(), v.float(), atol=1e-5), k
    assert 0 <= ck.meta["test_accuracy_trained_bn"] <= 100


def test_recipes_are_named_and_overridable():
    assert RECIPES["legacy"] == Recipe()  # today's recipe, unchanged
    r = recipe("converged", epochs=5, lr=None)  # None: an unset CLI option
    assert r.name == "converged" and r.epochs == 5 and r.lr == RECIPES["converged"].lr
    with pytest.raises(DSEError, match="unknown recipe 'fast'"):
        recipe("fast")
    for bad, match in (({"schedule": "step"}, "schedule 'step'"), ({"ema": 1.0}, "ema decay"),
                       ({"cutout": 40}, "cutout"), ({"bn_lr_scale": 0.0}, "bn_lr_scale")):
        with pytest.raises(DSEError, match=match):
            Recipe(**bad)


def test_legacy_partials_keep_their_identity():
    """A config on the legacy recipe has the identity it had before the options existed (its partials resume)."""
    ident = TrainConfig().identity()["recipe"]
    assert set(ident) == {"epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "label_smoothing",
                          "warmup_epochs", "crop_pad"}
    assert TrainConfig(recipe=recipe("converged")).identity()["recipe"]["schedule"] == RECIPES["converged"].schedule


def test_triangular_schedule_decays_linearly_to_zero():
    lrs = [lr_at(s, 100, 10, 1.0, "triangular") for s in range(100)]
    assert lrs[9] == pytest.approx(1.0) and lrs[55] == pytest.approx(0.5) and lrs[-1] == pytest.approx(1 / 90)


def test_cutout_zeroes_one_square_per_image():
    x = torch.ones(64, 3, 32, 32)
    out = cutout(x, torch.Generator().manual_seed(0), 8)
    zeroed = (out == 0).all(1).sum((1, 2))  # pixels zeroed in every channel, per image
    assert (zeroed <= 64).all() and (zeroed > 0).all()
    assert ((out == 0) | (out == 1)).all()


@pytest.mark.slow
def test_cli_train_records_the_recipe_and_info_shows_it(tmp_path):
    from tests.test_data import make_tree

    out, tree = tmp_path / "m.safetensors", make_tree(tmp_path / "data", per_class=4)
    cmd = [sys.executable, "-m", "dse", "train", "--data", str(tree), "--out", str(out), "--width", "0.25",
           "--epochs", "1", "--batch-size", "32", "--no-calibrate", "--recipe", "converged",
           "--cutout", "4", "--json"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    meta = load_checkpoint(out).meta
    assert meta["recipe_name"] == "converged" and meta["recipe"]["cutout"] == 4
    assert meta["recipe"]["ema"] == RECIPES["converged"].ema
    info = json.loads(subprocess.run([sys.executable, "-m", "dse", "info", str(out), "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["recipe"]["cutout"] == 4 and info["recipe_name"] == "converged"
    text = subprocess.run([sys.executable, "-m", "dse", "info", str(out)], check=True, capture_output=True, text=True)
    assert "recipe converged" in text.stdout and "cutout 4" in text.stdout
