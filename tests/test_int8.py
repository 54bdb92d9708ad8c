"""The int8 evaluation engine (dse/core/evaluation/int8.py): the int8 layer is the float layer on integer inputs, stuck
cells are 0 levels, a small model's int8 and fp32 accuracies agree, and int8 is chosen as a pure function of
capability and measurement (faked both ways). No timing assertions."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from dse.core.errors import DSEError
from dse.core.evaluation.evaluate import Evaluator, Protocol, evaluate
from dse.core.evaluation.int8 import Int8Forward, packed_conv_weight, qparams
from dse.core.runtime import precision as P
from dse.core.runtime.int8_kernels import int8_capability, quantized_engine

HAS_INT8, WHY = int8_capability()
needs_int8 = pytest.mark.skipif(not HAS_INT8, reason=f"no int8 kernels here: {WHY}")

VNNI = P.Capability("cpu", True, "AVX512-BF16", True, "VNNI")
NO_INT8 = P.Capability("cpu", True, "AVX512-BF16", False, "AVX2: no VNNI or AMX-INT8")
SAME = {"ok": True, "diff": 0.03}
ALL_SAME = {k: {"ok": True, "diff": 0.05, "instances": 10, "images": 10_000} for k in P.INT8_CHECKS}
FAST = {"vs_fp32": 5.0, "vs_bf16": 2.6}


@needs_int8
@pytest.mark.parametrize("engine", ["x86", "onednn", "fbgemm"])
def test_the_int8_layer_is_the_float_layer_on_integer_inputs(engine):
    """Faulty levels (SA1 zeros included) x per-channel scale x BN scale (negative ones too), integer inputs
    0..255: the int8 conv's output is the float conv's, rounded to the output's 8-bit grid."""
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"{engine} not in this torch")
    g = torch.Generator().manual_seed(0)
    levels = torch.randint(-127, 128, (8, 6, 3, 3), generator=g).float()
    levels[torch.rand(levels.shape, generator=g) < 0.3] = 0.0  # stuck-at-1 cells
    scale = torch.rand(8, 1, 1, 1, generator=g) * 1e-3 + 1e-4
    bn = torch.randn(8, generator=g)  # some channels' BN scale negative
    bias = torch.randn(8, generator=g)
    x = torch.randint(0, 256, (4, 6, 9, 9), generator=g).float()
    want = F.conv2d(x.double(), (levels * scale).double() * bn.double().view(-1, 1, 1, 1), bias.double(), padding=1)
    out_scale, out_zp = qparams(float(want.min()), float(want.max()))
    with quantized_engine(engine):
        qw = packed_conv_weight(levels, scale, bn)
        packed = torch.ops.quantized.conv2d_prepack(qw, bias, [1, 1], [1, 1], [1, 1], 1)
        qx = torch.quantize_per_tensor(x, 1.0, 0, torch.quint8)
        q = torch.ops.quantized.conv2d(qx, packed, out_scale, out_zp)
    got, ints = q.dequantize().double(), q.int_repr().long()
    grid = ((want / out_scale).round() + out_zp).clamp(0, 255).long()  # the exact output, requantised
    assert (got - want).abs().max() <= out_scale * 0.5 + 1e-5  # within half a step of the exact value
    assert (ints - grid).abs().max() <= 1 and (ints != grid).float().mean() < 1e-3  # the same 8-bit code but at ties


@needs_int8
def test_stuck_cells_are_zero_levels_in_the_int8_weights(trained, tiny_data):
    ev = Evaluator(trained, tiny_data.test_x[:50], tiny_data.test_y[:50], precision="int8",
                   calib_x=tiny_data.train_x)
    ev.use_bn_for(0.3)
    w = ev.injector.weights(0, 0.3, seed=0)
    maps = ev.injector.fault_maps(0, 0.3, seed=0)
    packed = Int8Forward(ev.fast).pack(ev._params(w))
    checked = 0
    for node, (conv, _) in Int8Forward(ev.fast).convs.items():
        name = conv
        if name not in maps:
            continue  # an off-crossbar 1x1 conv: fault-free
        with quantized_engine(ev.int8.engine.engine):
            qw, _ = torch.ops.quantized.conv2d_unpack(packed[node.name])
        ints = qw.int_repr()
        levels, _ = ev.injector.quantized[name]
        assert bool((ints[maps[name]] == 0).all())  # every stuck cell reads 0
        assert torch.equal(ints.abs()[~maps[name]].float(), levels.abs()[~maps[name]])  # the rest: its level
        checked += 1
    assert checked == len(maps)


@needs_int8
@pytest.mark.parametrize("bn", ["paper", "chip"])
def test_int8_and_fp32_agree_on_a_small_model(trained, tiny_data, bn):
    runs = {p: evaluate(trained, tiny_data.test_x, tiny_data.test_y, [0.0, 0.3], protocol=Protocol(instances=3, bn=bn),
                        progress=False, precision=p, calib_x=tiny_data.train_x) for p in ("fp32", "int8")}
    assert runs["int8"]["precision"] == "int8" and all(r["precision"] == "int8" for r in runs["int8"]["results"])
    for a, b in zip(runs["fp32"]["results"], runs["int8"]["results"]):
        assert abs(a["mean"] - b["mean"]) <= 3.0  # 200 test images: one image is 0.5 points


@needs_int8
def test_int8_without_calibration_images_stays_float_and_says_why(trained, tiny_data):
    ev = Evaluator(trained, tiny_data.test_x[:8], tiny_data.test_y[:8], precision="int8")
    assert ev.precision == "fp32" and "no training images" in ev.choice.reason


def test_auto_takes_int8_only_where_shown_equal_and_faster():
    c = P.choose("auto", "evaluate", VNNI, 1.7, SAME, int8_speed=FAST, int8_equivalence=ALL_SAME)
    assert c.precision == "int8" and c.float_precision == "bf16" and "2.60x bf16" in c.reason
    assert P.choose("auto", "evaluate", VNNI, 1.7, None, int8_speed=FAST,  # bf16 unproven: int8 against fp32
                    int8_equivalence=ALL_SAME).float_precision == "fp32"
    unchecked = P.choose("auto", "evaluate", VNNI, 1.7, SAME, int8_speed=FAST,
                         int8_equivalence={k: v for k, v in ALL_SAME.items() if k != "chip/0.3"})
    assert unchecked.precision == "bf16" and "chip/0.3 unchecked" in unchecked.reason
    small = P.choose("auto", "evaluate", VNNI, 1.7, SAME, int8_speed=FAST,
                     int8_equivalence={**ALL_SAME, "chip/0.1": {**ALL_SAME["chip/0.1"], "images": 1000}})
    assert small.precision == "bf16" and "too few images (chip/0.1" in small.reason
    moved = P.choose("auto", "evaluate", VNNI, 1.7, SAME, int8_speed=FAST,
                     int8_equivalence={**ALL_SAME, "paper/0.3": {**ALL_SAME["paper/0.3"], "ok": False, "diff": 0.41}})
    assert moved.precision == "bf16" and "0.41 points under paper at 0.3" in moved.reason
    slow = P.choose("auto", "evaluate", VNNI, 1.7, SAME, int8_speed={"vs_fp32": 1.5, "vs_bf16": 0.9},
                    int8_equivalence=ALL_SAME)
    assert slow.precision == "bf16" and "0.90x bf16, not faster" in slow.reason
    assert P.choose("auto", "evaluate", VNNI, 1.7, SAME, int8_equivalence=ALL_SAME).precision == "bf16"


@pytest.mark.parametrize("phase", ["train", "calibrate"])
def test_auto_never_trains_or_calibrates_in_int8(phase):
    assert P.choose("auto", phase, VNNI, 1.7, SAME, int8_speed=FAST, int8_equivalence=ALL_SAME).precision == "bf16"
    with pytest.raises(DSEError, match="int8 is for evaluation only"):
        P.choose("int8", phase, VNNI)


def test_no_int8_kernels_keeps_float_and_refuses_an_explicit_int8():
    c = P.choose("auto", "evaluate", NO_INT8, 1.7, SAME, int8_speed=FAST, int8_equivalence=ALL_SAME)
    assert c.precision == "bf16" and "int8 not used: AVX2: no VNNI or AMX-INT8" in c.reason
    with pytest.raises(DSEError, match="needs int8 kernels, which this machine lacks"):
        P.choose("int8", "evaluate", NO_INT8)
    asked = P.choose("int8", "evaluate", VNNI, 1.7, SAME)
    assert asked.precision == "int8" and asked.float_precision == "bf16"


def test_int8_for_training_is_one_line_on_the_command_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dse", "train", "--network", "resnet20", "--out",
                        str(tmp_path / "m.safetensors"), "--precision", "int8"], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "int8 is for evaluation only" in r.stderr
    assert not list(tmp_path.iterdir())
