import torch

from dse.core.evaluation.calibrate import calibrate_bn, nearest_rate
from dse.core.io.checkpoint import bn_buffers
from dse.core.models import build_model


def test_calibration_changes_bn_statistics_and_nothing_else(tiny_data):
    torch.manual_seed(0)
    m = build_model("resnet20").eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    stats = calibrate_bn(m, tiny_data.train_x, [0.0, 0.3], max_images=256, batch_size=128, progress=False)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and own statistics untouched
    assert not m.training  # mode restored
    assert sorted(stats) == [0.0, 0.3]
    assert stats[0.0].keys() == bn_buffers(m).keys()
    k = "layer1.0.bn1.running_var"
    assert not torch.allclose(stats[0.0][k], before[k])  # fresh statistics, not the init ones
    assert not torch.allclose(stats[0.0][k], stats[0.3][k])  # and they depend on p'
    # the stem BN sees no dropped inputs of an earlier layer, but its own conv is dropped at p'
    assert stats[0.3]["bn1.running_var"].mean() > stats[0.0]["bn1.running_var"].mean()


def test_calibration_is_deterministic(tiny_data):
    torch.manual_seed(0)
    m = build_model("resnet20")
    a = calibrate_bn(m, tiny_data.train_x, [0.2], max_images=128, progress=False)
    b = calibrate_bn(m, tiny_data.train_x, [0.2], max_images=128, progress=False)
    assert all(torch.equal(a[0.2][k], b[0.2][k]) for k in a[0.2])


def test_nearest_rate():
    assert nearest_rate([0.0, 0.1, 0.2, 0.3], 0.12) == 0.1
    assert nearest_rate([0.0, 0.1], 0.1) == 0.1
    assert nearest_rate([], 0.1) is None
