import pytest
import torch

from dse.core.errors import DSEError
from dse.core.io.checkpoint import load_checkpoint
from dse.core.training.train import Recipe, TrainConfig, lr_at, partial_path, train

pytestmark = pytest.mark.slow  # every test trains


def config(**kw):
    recipe = Recipe(epochs=3, batch_size=32, lr=0.05, warmup_epochs=0.5)
    return TrainConfig(network="resnet20", width=0.5, dropconnect=0.3, seed=1, recipe=recipe,
                       calib_rates=(0.0, 0.2), calib_images=128, **kw)


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_data):
    """config()'s training run from start to end, which the interrupted ones must equal."""
    out = tmp_path_factory.mktemp("uninterrupted") / "a.safetensors"
    meta = train(config(), tiny_data, out, progress=False, log=quiet)
    return out, meta


def test_training_learns_and_writes_a_complete_checkpoint(tiny_data, uninterrupted):
    out, meta = uninterrupted
    ck = load_checkpoint(out)
    assert ck.meta["complete"] and ck.meta["epochs_done"] == 3
    assert ck.meta["test_accuracy"] == meta["test_accuracy"] > 25  # chance is 10%
    assert ck.meta["calibrated_rates"] == [0.0, 0.2] and ck.meta["calibration"]["images"] == 128
    assert ck.meta["dataset"]["fingerprint"] == tiny_data.fingerprint
    assert ck.meta["versions"]["torch"] == torch.__version__
    assert not partial_path(out).exists()
    assert not any(k.startswith("optim") for k in ck.extra)  # no optimizer state in a finished checkpoint


def test_resume_equals_uninterrupted(tmp_path, tiny_data, uninterrupted):
    a, b = uninterrupted[0], tmp_path / "b.safetensors"
    train(config(), tiny_data, b, progress=False, log=quiet, stop_after_epochs=1)  # "interrupted"
    assert partial_path(b).exists() and not b.exists()
    assert load_checkpoint(partial_path(b)).meta["epochs_done"] == 1
    train(config(), tiny_data, b, progress=False, log=quiet, resume=True)
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    for k, v in sa.state.items():
        assert torch.allclose(v, sb.state[k], atol=1e-6), k
    assert sa.meta["test_accuracy"] == sb.meta["test_accuracy"]


class Killed(Exception):
    pass


def test_resume_mid_epoch_equals_uninterrupted(tmp_path, tiny_data, uninterrupted):
    a, b = uninterrupted[0], tmp_path / "b.safetensors"
    steps = len(tiny_data.train_x) // 32

    def kill_at(step):
        def on_step(done, total):
            if done == step:
                raise Killed

        return on_step

    with pytest.raises(Killed):  # save_every_s=0: a partial after every step, as a kill would find it
        train(config(), tiny_data, b, progress=False, log=quiet, save_every_s=0, on_step=kill_at(steps + 3))
    meta = load_checkpoint(partial_path(b)).meta
    assert (meta["epochs_done"], meta["epoch_steps_done"]) == (1, 3)
    lines = []
    train(config(), tiny_data, b, progress=False, log=lines.append, resume=True)
    assert any(f"step 3/{steps}" in line for line in lines)
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    for k, v in sa.state.items():
        assert torch.equal(v, sb.state[k]), k
    assert [h["train_loss"] for h in sa.meta["history"]] == [h["train_loss"] for h in sb.meta["history"]]
    assert sa.meta["test_accuracy"] == sb.meta["test_accuracy"]


def test_existing_checkpoint_is_not_overwritten_by_accident(tmp_path, tiny_data):
    out = tmp_path / "m.safetensors"
    cfg = config()
    cfg.recipe.epochs = 1
    train(cfg, tiny_data, out, progress=False, log=quiet)
    with pytest.raises(DSEError, match="exists; pass --resume"):
        train(cfg, tiny_data, out, progress=False, log=quiet)
    assert train(cfg, tiny_data, out, progress=False, log=quiet, resume=True)["complete"]


def test_resume_refuses_another_configuration(tmp_path, tiny_data):
    out = tmp_path / "m.safetensors"
    train(config(), tiny_data, out, progress=False, log=quiet, stop_after_epochs=1)
    other = config()
    other.dropconnect = 0.1
    with pytest.raises(DSEError, match="different configuration"):
        train(other, tiny_data, out, progress=False, log=quiet, resume=True)


def test_divergence_stops_with_a_clear_message(tmp_path, tiny_data):
    cfg = config()
    cfg.recipe.lr = float("inf")
    with pytest.raises(DSEError, match="diverged at epoch 1"):
        train(cfg, tiny_data, tmp_path / "m.safetensors", progress=False, log=quiet)


def test_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.01
