"""The benchmark command as a smoke test on tiny synthetic data (structure, never timings), and the fast
evaluation path it measures: the BN-folded forward must give the plain model's answers."""
import json
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from dse.core.runtime import allocator
from tests.fixtures import POINTS
from dse.bench import measure, synthetic_data, untrained_checkpoint
from dse.cli import main
from dse.core.evaluation.evaluate import Evaluator, FoldedForward, _mkldnn_conv_ok
from dse.core.faults.injector import FaultInjector
from dse.core.models import build_model


@pytest.fixture
def one_thread():
    """Tiny ops on a busy 2-core machine spend more time in thread barriers than in work."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def with_random_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return model.eval()


@pytest.mark.parametrize("network, kernel", [("resnet20", 1), ("resnet20", 3), ("vgg13", 1), ("mobilenetv2", 1)])
@pytest.mark.parametrize("mkldnn", [False, True])
def test_folded_forward_gives_the_plain_models_logits(network, kernel, mkldnn):
    if mkldnn and not _mkldnn_conv_ok():
        pytest.skip("oneDNN fused convolution unavailable in this build")
    torch.manual_seed(0)
    model = with_random_bn(build_model(network, 0.5, kernel)).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    faulty = FaultInjector(model).weights(0, 0.2)  # substituted weights go in before the fold
    params = {**dict(model.named_parameters()), **dict(model.named_buffers()), **faulty}
    fast = FoldedForward(model, mkldnn)
    with torch.no_grad():
        want = functional_call(model, faulty, (x,))
        got = fast(x, params)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * (1 + want.abs().max().item()))
    assert len(fast.convs) == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())


class TwoBranches(torch.nn.Module):
    """add(conv+BN, conv+BN) with no ReLU after it: only one branch may take the add into its conv."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn_a, self.bn_b = torch.nn.BatchNorm2d(8), torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, x):
        y = self.bn_a(self.a(x)) + self.bn_b(self.b(x))
        return self.fc(y.mean((2, 3)))


@pytest.mark.parametrize("mkldnn", [False, True])
def test_folded_forward_fuses_a_shared_add_once(mkldnn):
    if mkldnn and not _mkldnn_conv_ok():
        pytest.skip("oneDNN fused convolution unavailable in this build")
    torch.manual_seed(0)
    model = with_random_bn(TwoBranches())
    x = torch.randn(2, 3, 8, 8)
    params = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    with torch.no_grad():
        assert torch.allclose(FoldedForward(model, mkldnn)(x, params), model(x), atol=1e-5)


def test_evaluator_fast_path_and_its_fallback_agree(monkeypatch, one_thread):
    data = synthetic_data(8, 60)
    ck = untrained_checkpoint("resnet20", 0.5, 0.1)
    ev = Evaluator(ck, data.test_x, data.test_y, batch_size=25)
    assert ev.fast is not None, ev.fast_reason
    w = ev.injector.weights(1, 0.1)
    fast = ev.accuracy(w), ev.accuracy(None)

    def refuse(*a, **k):
        raise RuntimeError("no fx here")

    monkeypatch.setattr("dse.core.evaluation.evaluate.FoldedForward", refuse)
    plain = Evaluator(ck, data.test_x, data.test_y, batch_size=25)
    assert plain.fast is None and "no fx here" in plain.fast_reason
    one_image = 100 / 60  # logits agree to ~1e-6; at most a near-tie could flip one prediction
    assert plain.accuracy(w) == pytest.approx(fast[0], abs=one_image)
    assert plain.accuracy(None) == pytest.approx(fast[1], abs=one_image)


def test_quick_bench_writes_the_table(tmp_path, capsys, one_thread):
    out = tmp_path / "BENCH.md"
    argv = ["bench", "--quick", "--networks", "resnet20", "--width", "0.5", "--scaling-widths", "0.5,0.75",
            "--batch-size", "16", "--train-steps", "1", "--warmup-steps", "1", "--instances", "2",
            "--test-images", "40", "--calib-images", "32", "--batched-instances", "2", "--synthetic-images", "48",
            "--in-process", "--device", "cpu", "--out", str(out), "--page", str(tmp_path / "ck"), "--json"]
    from tests.fixtures import build_store

    build_store(tmp_path / "page", points=POINTS[:2])  # a checkpoint folder with its evaluations, for the page
    (tmp_path / "page" / "checkpoints").rename(tmp_path / "ck")
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["page"]["renders"] == 3 and 0 < res["page"]["median_s"] and len(res["page"]["times_s"]) == 4
    assert res["data"]["synthetic"] and res["machine"]["cpu"] and res["machine"]["torch"] == torch.__version__
    (tr,) = res["training"]
    assert set(tr["images_per_s"]) == {"project", "project_p0", "model_step", "reference"}
    assert min(tr["images_per_s"].values()) > 0 and tr["precision"] == "fp32"  # the suite's $DSE_PRECISION
    assert res["precision"]["choices"]["resnet20"]["evaluate"]["precision"] == "fp32"
    assert res["train_end_to_end"][0]["images_per_s"] > 0 and res["train_end_to_end"][0]["peak_rss_mb"] > 0
    (c,) = res["campaign"]
    from dse.core.runtime.int8_kernels import int8_capability
    from dse.core.runtime.precision import capability

    int8 = int8_capability()[0]  # the int8 engine's row where the CPU has int8 kernels, with bf16 beside fp32
    extra = ({"int8"} | ({"bf16"} if capability("cpu").native_bf16 else set())) if int8 else set()
    assert set(c["image_instances_per_s"]) == {"project", "chip", "plain", "naive"} | extra
    assert c["path"].startswith("bn-folded")
    if int8:
        assert set(c["int8_parts_s"]) == {"pack_s", "ranges_s", "test_s", "ranges_once_s"} and c["int8_engine"]
        assert len(c["accuracies"]["int8"]) == c["instances"]
    assert c["calib_images"] == 48 and c["calib_s"] >= 0 and c["chip_overhead_full_test_set"] >= 0  # all 48 images
    eq = res["equivalence"][0]
    from dse.bench.measure import balanced_orders

    # 2 rounded up to a whole balanced design of the 4 (or, with int8 and bf16 rows, 6) ways
    assert eq["instances"] == len(balanced_orders(4 + len(extra))) and eq["images"] == 40
    assert eq["mean_diff"] <= 0.1 and eq["batched_mean_diff"] <= 0.1  # speed must not change answers
    assert eq["evaluate_matches"]  # evaluate() reports the accuracies the interleaved run measured
    assert [c["rate"] for c in res["calibration"][0]["rates"]] == [0.0, 0.1]
    assert [r["instances"] for r in res["scaling"]["instances"]["rows"]] == [1, 2]
    assert [r["width"] for r in res["scaling"]["width_eval"]["rows"]] == [0.5, 0.75]
    assert [r["width"] for r in res["scaling"]["width_train"]["rows"]] == [0.5, 0.75]
    assert res["profile"]["train_step"]["top"] and res["profile"]["eval_fast"]["conv_share"] > 0.5
    names = [t["name"] for t in res["targets"]]
    assert len(names) == 7 + 2 * int8 and all(t["met"] in (True, False) for t in res["targets"]
                                              if t["target"] is not None)
    assert any(n.startswith("training resnet20: project / the model's own step") for n in names)
    assert any(n.startswith("fault campaign resnet20: chip BN protocol (N=48)") for n in names)
    text = out.read_text()
    assert text == res["markdown"] and text.startswith("# Benchmarks")
    assert f"`{res['command']}`" in text and "--quick" in res["command"]
    for heading in ("## Machine", "## Targets", "## 1. Training throughput", "## 2. Fault-campaign throughput",
                    "## 3. Accuracy equivalence", "## 4. BN calibration and memory", "## 5. Scaling",
                    "## Where the time goes"):
        assert heading in text
    assert "synthetic" in text and "load average" in text
    assert ("## int8 evaluation" in text) == int8
    assert "glibc's default malloc" in text  # measured only in fresh processes: "-" with --in-process


@pytest.mark.slow
def test_a_measurement_in_its_own_process_reports_its_memory():
    r = measure("campaign_project", isolate=True, data={"synthetic": [8, 20]},
                ckpt={"untrained": ["resnet20", 0.5, 0.1]}, rate=0.1, instances=2, test_images=20, batch_size=10)
    assert r["isolated"] and r["images"] == 20 and r["instances"] == 2 and r["image_instances_per_s"] > 0
    assert r["peak_rss_mb"] >= r["rss_baseline_mb"] > 0
    assert r["keep_freed"] is (allocator._glibc() is not None)  # as the CLI runs it (dse.core.runtime.allocator)
    assert measure("campaign_project", keep_freed=False, data={"synthetic": [8, 20]},
                   ckpt={"untrained": ["resnet20", 0.5, 0.1]}, rate=0.1, instances=1, test_images=20,
                   batch_size=10)["keep_freed"] is False


@pytest.mark.parametrize("argv, match", [
    (["bench", "--networks", "resnet56"], "unknown network 'resnet56'"),
    (["bench", "--fault-rate", "0", "--no-write"], "fault rate above 0"),
    (["bench", "--instances", "0"], "positive integer"),
    (["bench", "--data", "/no/such/dir", "--no-write"], "does not exist"),
])
def test_bad_bench_arguments_give_one_line(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    # the error is one line (a library warning on a first import may precede it), never a traceback
    assert match in err.splitlines()[-1] and "Traceback" not in err
    assert not list(tmp_path.glob("BENCHMARKS*"))


@pytest.mark.parametrize("argv, where", [
    ([], "RUNS/benchmarks.md"),  # a plain or quick run never replaces the committed record
    (["--quick"], "RUNS/benchmarks.md"),
    (["--write"], "BENCHMARKS.md"),
    (["--quick", "--out", "elsewhere.md"], "elsewhere.md"),
    (["--write", "--no-write"], None),
])
def test_the_record_is_written_only_when_asked(argv, where, monkeypatch, tmp_path):
    from dse.cli import build_parser
    from dse.commands.bench import command_line, report_path

    monkeypatch.setenv("DSE_RUNS", str(tmp_path / "runs"))
    args = build_parser().parse_args(["bench", *argv])
    want = None if where is None else Path(where.replace("RUNS", str(tmp_path / "runs")))
    assert report_path(args) == want
    assert ("--write" in command_line(args)) == ("--write" in argv)  # the record says how it was made


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_balanced_orders_put_each_implementation_after_each_other_equally_often(n):
    from collections import Counter

    from dse.bench.measure import balanced_orders

    orders = balanced_orders(n)
    assert all(sorted(o) == list(range(n)) for o in orders)
    follows = Counter((a, b) for o in orders for a, b in zip(o, o[1:]))
    assert set(follows) == {(a, b) for a in range(n) for b in range(n) if a != b}
    assert len(set(follows.values())) <= 1  # the same count for every ordered pair


def test_interleaved_runs_whole_balanced_designs():
    from dse.bench.measure import interleaved

    calls = []
    times = interleaved({k: (lambda i, k=k: calls.append((i, k))) for k in "abc"}, 4, 1, torch.device("cpu"))
    assert all(len(v) == 6 for v in times.values())  # 4 rounded up to the 6 orders of a 3-way design
    assert len(calls) == 3 * 7 and {k for i, k in calls if i == 0} == set("abc")
