import numpy as np
import pytest
import torch
from scipy import stats

from dse.core.errors import DSEError
from dse.core.evaluation.evaluate import Evaluator, Protocol, evaluate, summarize


def test_summary_statistics():
    accs = [90.0, 91.0, 89.5, 92.0, 90.5]
    s = summarize(accs)
    a = np.array(accs)
    assert s["mean"] == pytest.approx(a.mean()) and s["std"] == pytest.approx(a.std(ddof=1))
    assert s["ci95"] == pytest.approx(stats.t.ppf(0.975, 4) * a.std(ddof=1) / np.sqrt(5))
    assert s["worst"] == 89.5 and s["best"] == 92.0 and s["p5"] == pytest.approx(np.percentile(a, 5))


def test_the_interval_stays_within_what_an_accuracy_can_be():
    s = summarize([50.59 + 50.82, 50.59])  # two crossbars far apart: the t interval reaches past 100
    assert s["mean"] + s["ci95"] > 100 and s["ci_high"] == 100.0 and s["ci_low"] == 0.0
    assert np.isnan(summarize([90.0])["ci_low"]) and np.isnan(summarize([90.0])["ci_high"])  # one network: none
    s = summarize([80.0, 81.0, 82.0])
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((s["mean"] - s["ci95"], s["mean"] + s["ci95"]))


def test_fixed_protocol_reports_every_instance(trained, tiny_data):
    res = evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.0, 0.3], protocol=Protocol(instances=5),
                   progress=False)
    r0, r3 = res["results"]
    assert r0["n"] == 1 and r0["mean"] == res["fault_free_quantized_accuracy"]  # no faults: one network
    assert r3["n"] == 5 and len(r3["accuracies"]) == 5 and r3["bn_rate"] == 0.3
    assert r3["worst"] <= r3["mean"] <= r3["best"]
    assert len(set(r3["accuracies"])) > 1  # instances differ
    assert res["fault_free_accuracy"] == trained.meta["test_accuracy"]


def test_results_are_reproducible_and_seed_dependent(trained, tiny_data):
    run = lambda seed: evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.2],  # noqa: E731
                                protocol=Protocol(instances=3, seed=seed), progress=False)["results"][0]["accuracies"]
    assert run(0) == run(0)
    assert run(0) != run(1)


def test_heavy_faults_hurt_accuracy(trained, tiny_data):
    res = evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.0, 0.9], protocol=Protocol(instances=3),
                   progress=False)
    assert res["results"][1]["mean"] < res["results"][0]["mean"]


def test_adaptive_stops_early(trained, tiny_data):
    p = Protocol(instances=60, adaptive=50.0, min_instances=4)  # a loose target is met at the minimum
    r = evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.1], protocol=p, progress=False)["results"][0]
    assert r["n"] == 4 and r["protocol"] == "adaptive(50.0)"


def test_uncalibrated_rate_warns_and_uses_the_nearest(trained, tiny_data):
    ev = Evaluator(trained, tiny_data.test_x, tiny_data.test_y)
    with pytest.warns(UserWarning, match="using those for 0.3"):
        assert ev.use_bn_for(0.25) == 0.3
    assert ev.use_bn_for(0.25, recalibrate=False) is None


def test_evaluation_never_changes_the_weights(trained, tiny_data):
    ev = Evaluator(trained, tiny_data.test_x, tiny_data.test_y)
    before = {k: v.clone() for k, v in ev.model.named_parameters()}
    ev.run(0.3, Protocol(instances=2), progress=False)
    assert all(torch.equal(before[k], v) for k, v in ev.model.named_parameters())


@pytest.mark.parametrize("p, match", [
    (Protocol(instances=0), "instances"),
    (Protocol(adaptive=-1.0), "adaptive"),
    (Protocol(fault_model="sa9"), "fault model"),
])
def test_bad_protocols(p, match):
    with pytest.raises(DSEError, match=match):
        p.check()


def test_bad_fault_rate(trained, tiny_data):
    ev = Evaluator(trained, tiny_data.test_x[:10], tiny_data.test_y[:10])
    with pytest.raises(DSEError, match="fault rate must be in"):
        ev.run(1.0, Protocol(instances=2), progress=False)


def test_a_rate_the_checkpoint_was_not_calibrated_for_gets_its_own_statistics(trained, tiny_data):
    """Any fault rate under the paper protocol: Algorithm 1's statistics for it are computed as the checkpoint's
    own were (same image count and seed), not borrowed from the nearest calibrated rate."""
    from dse.core.evaluation.calibrate import calibrate_bn

    assert 0.15 not in trained.bn_stats
    with pytest.warns(UserWarning, match=r"fault rate\(s\) 0.15 were not in the checkpoint: computed now"):
        res = evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.15], protocol=Protocol(instances=2),
                       progress=False,
                       calib_x=tiny_data.train_x)
    assert res["results"][0]["bn_rate"] == 0.15
    ev = Evaluator(trained, tiny_data.test_x, tiny_data.test_y)
    ev.calibrate_missing([0.15, 0.3], tiny_data.train_x)  # 0.3 is calibrated: kept as it is
    assert torch.equal(ev.bn_stats[0.3]["bn1.running_mean"], trained.bn_stats[0.3]["bn1.running_mean"])
    cal = trained.meta["calibration"]
    want = calibrate_bn(trained.build_model(), tiny_data.train_x, [0.15], trained.meta["mapping"],
                        max_images=cal["images"], seed=cal["seed"], progress=False)[0.15]
    assert all(torch.allclose(ev.bn_stats[0.15][k].float(), v.float(), rtol=1e-4, atol=1e-5) for k, v in want.items()), \
        max(float((ev.bn_stats[0.15][k].float() - v.float()).abs().max()) for k, v in want.items())
    without = evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.15], protocol=Protocol(instances=2),
                       progress=False)
    assert without["results"][0]["bn_rate"] in (0.0, 0.3)  # no training images given: a nearest calibrated rate
