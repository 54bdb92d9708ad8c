"""The per-chip BN protocol (`--bn chip`) and its transductive ablation (`--bn batch`)."""
import pytest
import torch

from dse.core.errors import DSEError
from dse.core.evaluation.calibrate import calibration_batches, chip_bn_stats
from dse.core.evaluation.evaluate import Evaluator, Protocol, evaluate
from dse.core.io.checkpoint import bn_buffers


def test_chip_calibration_changes_only_bn_statistics(trained, tiny_data):
    ev = Evaluator(trained, tiny_data.test_x, tiny_data.test_y)
    ev.set_calibration(tiny_data.train_x, 64)
    before = {k: v.clone() for k, v in ev.model.state_dict().items()}
    w = ev.injector.weights(0, 0.3)
    out = ev.chip_weights(w)
    assert all(torch.equal(out[k], w[k]) for k in w)  # the chip's weights are untouched
    stats = set(out) - set(w)
    assert stats and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in stats)
    trained_bn = bn_buffers(ev.model)
    assert any(not torch.allclose(out[k], trained_bn[k]) for k in stats if k.endswith("running_mean"))
    after = ev.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model itself is left as it was


def test_every_chip_calibrates_on_the_same_training_images(tiny_data):
    a = calibration_batches(tiny_data.train_x, 100, seed=0, batch_size=40)
    b = calibration_batches(tiny_data.train_x, 100, seed=0, batch_size=40)
    assert [len(x) for x in a] == [40, 40, 20]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = calibration_batches(tiny_data.train_x, 100, seed=1, batch_size=40)
    assert not torch.equal(a[0], c[0])


def test_chip_statistics_never_see_test_images(trained, tiny_data):
    """The statistics of a chip depend on the training images and its map, not on the test set."""
    ev1 = Evaluator(trained, tiny_data.test_x, tiny_data.test_y)
    ev2 = Evaluator(trained, torch.zeros_like(tiny_data.test_x), tiny_data.test_y)
    for ev in (ev1, ev2):
        ev.set_calibration(tiny_data.train_x, 64)
    w = ev1.injector.weights(1, 0.2)
    s1, s2 = ev1.chip_weights(w), ev2.chip_weights(w)
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    with pytest.raises(DSEError, match="training images"):
        evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.1], protocol=Protocol(instances=2, bn="chip"),
                 progress=False)


def test_chip_statistics_are_an_exact_average_over_the_pass(trained, tiny_data):
    """One batch: the running mean is that batch's mean at the first BN (before any faulty weight matters)."""
    ev = Evaluator(trained, tiny_data.test_x, tiny_data.test_y)
    batches = calibration_batches(tiny_data.train_x, 50, seed=0, batch_size=50)
    stats = chip_bn_stats(ev.model, {}, batches)
    first_conv = next(m for m in ev.model.modules() if isinstance(m, torch.nn.Conv2d))
    first_bn = next(k for k in stats if k.endswith("running_mean"))
    with torch.no_grad():
        want = first_conv(batches[0]).mean((0, 2, 3))
    assert torch.allclose(stats[first_bn], want, atol=1e-4)


def test_chip_protocol_is_reproducible_and_keyed(trained, tiny_data):
    run = lambda n: evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.2],  # noqa: E731
                             protocol=Protocol(instances=3, bn="chip", calib_images=n), progress=False,
                             calib_x=tiny_data.train_x)["results"][0]
    a, b = run(64), run(64)
    assert a["accuracies"] == b["accuracies"]
    assert (a["bn"], a["calib_images"], a["bn_rate"]) == ("chip", 64, None)


def test_chip_calibration_recovers_what_a_strong_fault_takes(trained, tiny_data):
    """SA0 cells read the largest weight of their sign: every channel's mean and variance move a long way,
    and only statistics measured through the faulty chip follow them."""
    common = dict(instances=3, fault_model="sa0")
    paper = evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.3], protocol=Protocol(**common), progress=False)
    chip = evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.3], protocol=Protocol(**common, bn="chip",
                    calib_images=256), progress=False, calib_x=tiny_data.train_x)
    assert chip["results"][0]["mean"] > paper["results"][0]["mean"] + 5


def test_batch_statistics_leave_the_model_alone(trained, tiny_data):
    ev = Evaluator(trained, tiny_data.test_x, tiny_data.test_y)
    before = {k: v.clone() for k, v in ev.model.state_dict().items()}
    acc = ev.accuracy(ev.injector.weights(0, 0.3), bn="batch")
    assert 0 <= acc <= 100
    assert all(torch.equal(before[k], v) for k, v in ev.model.state_dict().items())
    assert not any(m.training for m in ev.model.modules())


@pytest.mark.parametrize("kw, match", [
    ({"bn": "perchip"}, "unknown BN protocol 'perchip'; choose one of paper, chip, batch"),
    ({"bn": "chip", "calib_images": 0}, "calibration images must be a positive integer, got 0"),
    ({"bn": "chip", "recalibrate": False}, "--no-recalibrate applies to the paper BN protocol only"),
])
def test_bad_bn_protocols(kw, match):
    with pytest.raises(DSEError, match=match):
        Protocol(**kw).check()


def test_chips_calibrated_together_get_each_their_own_statistics(trained, tiny_data):
    """Several chips share each calibration forward (vmap), and each gets the statistics it gets alone."""
    ev = Evaluator(trained, tiny_data.test_x, tiny_data.test_y)
    ev.set_calibration(tiny_data.train_x, 100)
    ws = [ev.injector.weights(i, 0.3) for i in range(3)]
    together, alone = ev.chips_weights(ws), [ev.chip_weights(w) for w in ws]
    for t, a in zip(together, alone):
        assert t.keys() == a.keys()
        assert all(torch.allclose(t[k].float(), a[k].float(), rtol=1e-4, atol=1e-5) for k in a)  # summation order
    means = [k for k in alone[0] if k.endswith("running_mean")]
    assert any(not torch.allclose(alone[0][k], alone[1][k]) for k in means)  # two chips, two sets of statistics
