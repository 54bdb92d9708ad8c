"""One short run on the real CIFAR-10 copy in ../shared/data: a few hundred steps of ResNet20 must
learn well above chance, and the calibrate/evaluate path must run on real images."""
import pytest

from dse.core.evaluation.evaluate import Protocol, evaluate
from dse.core.io.checkpoint import load_checkpoint
from dse.core.io.data import load_cifar10
from dse.core.training.train import Recipe, TrainConfig, train

pytestmark = pytest.mark.slow  # real CIFAR-10


@pytest.mark.slow
def test_short_real_run_learns(shared_cifar, tmp_path):
    data = load_cifar10(shared_cifar)
    assert data.train_x.shape == (50000, 3, 32, 32) and data.test_x.shape == (10000, 3, 32, 32)
    assert data.train_y.bincount().tolist() == [5000] * 10
    cfg = TrainConfig(network="resnet20", dropconnect=0.1, seed=0,
                      recipe=Recipe(epochs=1, batch_size=64, lr=0.1, warmup_epochs=0.1),
                      max_train_images=64 * 250, calib_rates=(0.0, 0.1), calib_images=2000)
    data.test_x, data.test_y = data.test_x[:2000], data.test_y[:2000]  # a slice keeps CI short
    out = tmp_path / "r.safetensors"
    meta = train(cfg, data, out, progress=False, log=lambda *_: None)
    assert meta["test_accuracy"] > 35, meta  # chance is 10%; 250 steps reach about 45-50%
    res = evaluate(load_checkpoint(out), data.test_x[:1000], data.test_y[:1000], [0.1], protocol=Protocol(instances=3),
                   progress=False)
    assert 10 < res["results"][0]["mean"] <= res["fault_free_quantized_accuracy"] + 5
