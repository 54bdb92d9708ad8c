"""The int8 evaluation engine: the crossbar's own integer levels and 8-bit inputs, on PyTorch's x86
quantized kernels (oneDNN / fbgemm, VNNI or AMX-INT8).

What it computes, per crossbar instance:
- each crossbar conv's weights are the chip's faulty 8-bit levels exactly as the fault model produced them
  (dse/core/faults/; stuck cells included: an SA1 cell is a 0 level), never re-quantised; the per-column
  (output-channel) scale of the quantisation, the 1/(1-f) rescale and the BN that follows are folded into one
  per-channel weight scale (a negative BN scale flips the channel's levels, which is exact for -127..127) and a
  float bias;
- off-crossbar 1x1 convs (shortcuts, MobileNetV2's point-wise convs) run int8 too, their float weights
  quantised once to 8 bits per output channel as the crossbar's are (fault-free); the linear classifier runs in
  float on the dequantised features (it is ~0.1% of the MACs);
- activations are 8-bit per tensor (uint8 with a zero point; 0 after a ReLU), each tensor's range the min-max
  seen on calibration images run through the BN-folded float forward (`observe`): the caller picks the images
  and the weights (dse/core/evaluation/evaluate.py: the chip's own N images under `chip`, a fixed set under `paper`);
- accumulation is exact in int32, and each conv's output is requantised to the next tensor's 8-bit scale.
Not modelled: the ADC's resolution of partial sums (a 128-row column's sum is exact here), DAC bit-slicing.

`Int8Forward(folded)` is built once per model; `pack(params)` (the per-instance rebuild: per-channel scales and
one `conv2d_prepack` per conv) and `observe(params, batches)` (activation ranges) per instance or rate, then
`forward(x, packed, ranges)` per test batch.
"""
from __future__ import annotations

import operator
import time
import warnings

import torch
from torch import Tensor

from dse.core.crossbar.quantize import LEVELS_ATTR, WEIGHT_BITS, quantize
from dse.core.evaluation.folded import FoldedForward, _conv_block
from dse.core.runtime.int8_kernels import default_engine, quantized_engine
from dse.core.runtime.precision import autocast
from dse.domain.bn import Chip
from dse.domain.faultspec import FaultSpec

# PyTorch's notice that its quantized tensor types are deprecated: docs/int8.md states it once, a run need not
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized",
                        category=UserWarning)
INPUT_BITS = 8  # the DAC's resolution this engine models, whatever the cost model's knob says
# stateless ops that accept quantized tensors as they are (pooling keeps its input's scale)
_QUANT_SAFE_MODULES = (torch.nn.MaxPool2d, torch.nn.AdaptiveAvgPool2d, torch.nn.AvgPool2d, torch.nn.Flatten,
                       torch.nn.Identity, torch.nn.Dropout)
_QUANT_SAFE_FUNCTIONS = {torch.flatten, torch.nn.functional.adaptive_avg_pool2d, torch.nn.functional.max_pool2d,
                         torch.nn.functional.avg_pool2d, torch.nn.functional.dropout}
_QUANT_SAFE_METHODS = {"flatten", "view", "reshape", "contiguous", "size"}


class Int8Unsupported(Exception):
    """This machine or model cannot run the int8 engine (the caller says why and keeps float)."""


def qparams(lo: float, hi: float, cap: float | None = None) -> tuple[float, int]:
    """uint8 scale and zero point covering [lo, hi] (0 always inside; `cap` clips hi, as ReLU6 does)."""
    if cap is not None:
        hi = min(hi, cap)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    return scale, int(min(255, max(0, round(-lo / scale))))


def tag_levels(weight: Tensor, levels: Tensor, scale: Tensor) -> Tensor:
    """Attach a crossbar weight's integer levels and per-channel scale (weight == levels * scale) to it."""
    setattr(weight, LEVELS_ATTR, (levels, scale))
    return weight


def levels_of(weight: Tensor) -> tuple[Tensor, Tensor]:
    """(levels, per-channel scale) of a conv weight: the fault model's own where tagged, else the weight
    quantised to 8 bits per output channel (an off-crossbar layer, or float weights)."""
    tagged = getattr(weight, LEVELS_ATTR, None)
    if tagged is not None:
        return tagged
    return quantize(weight, WEIGHT_BITS)


def packed_conv_weight(levels: Tensor, scale: Tensor, bn_scale: Tensor | None) -> Tensor:
    """A per-channel qint8 weight whose integers are `levels` (sign-flipped where the folded scale is negative)
    and whose scales are |scale * bn_scale|: the BN-folded weight, the levels untouched."""
    s = scale.flatten().double()
    if bn_scale is not None:
        s = s * bn_scale.detach().double()
    q = levels.to(torch.int8)
    neg = s < 0
    if bool(neg.any()):
        q = torch.where(neg.view(-1, *([1] * (q.dim() - 1))), -q, q)
    s = s.abs().clamp_min(1e-30)
    return torch._make_per_channel_quantized_tensor(q.contiguous(), s, torch.zeros(len(s), dtype=torch.long), 0)


def _identity(p: dict, conv: str, bn: str | None) -> tuple[tuple, tuple]:
    """The tensors a conv's packed weight is made of, and their versions (an in-place copy bumps a version)."""
    names = [f"{conv}.weight", f"{conv}.bias"]
    if bn is not None:
        names += [f"{bn}.{k}" for k in ("running_mean", "running_var", "weight", "bias")]
    ts = tuple(p.get(n) for n in names)
    return tuple(None if t is None else t._version for t in ts), ts


def _arg(env: dict, a):
    return env[a] if isinstance(a, torch.fx.Node) else a


def _deq(t):
    return t.dequantize() if isinstance(t, Tensor) and t.is_quantized else t


def _quant(t, ranges: dict, name: str, cap=None):
    """`t` quantised to the range observed for node `name` (as it is when already quantised)."""
    if not isinstance(t, Tensor) or t.is_quantized:
        return t
    if name not in ranges:
        raise Int8Unsupported(f"no activation range observed for {name!r}")
    scale, zp = qparams(*ranges[name], cap)
    return torch.quantize_per_tensor(t.float(), scale, zp, torch.quint8)


class Int8Forward:
    """An int8 twin of a FoldedForward's graph (same nodes, same parameter names)."""

    def __init__(self, folded: FoldedForward, engine: str | None = None):
        self.folded = folded
        self.gm = folded.module
        self.engine = engine or default_engine()
        self.nodes = list(self.gm.graph.nodes)
        self.modules = dict(self.gm.named_modules())
        self.input_name = next(n.name for n in self.nodes if n.op == "placeholder")
        self._fixed: dict[str, tuple] = {}  # conv node -> (tensor versions, tensors, packed): off-crossbar convs
        self.convs = {}  # conv block node -> (conv name, BN name or None, args)
        bn_of = dict(folded.convs)
        for n in self.nodes:
            if n.op == "call_function" and n.target is _conv_block:
                key = n.args[1].args[1]  # getitem(params, "name.weight#folded")
                conv = key[: -len(".weight#folded")]
                self.convs[n] = (conv, bn_of[conv])

    def pack(self, p: dict[str, Tensor]) -> dict[str, object]:
        """The per-instance rebuild: for each conv, its prepacked int8 weight (levels, BN-folded per-channel
        scales) and float bias. `p`: the model's parameters and buffers by name, faulty weights substituted. An
        off-crossbar conv whose weight and BN tensors are unchanged since the last call is not packed again."""
        out = {"#params": p}  # the float layers' parameters (the classifier)
        with torch.no_grad(), quantized_engine(self.engine):
            for node, (conv, bn) in self.convs.items():
                key = _identity(p, conv, bn)
                hit = self._fixed.get(node.name)
                if hit is not None and hit[0] == key[0] and all(a is b for a, b in zip(hit[1], key[1])):
                    out[node.name] = hit[2]
                    continue
                out[node.name] = self._pack_one(node, conv, bn, p)
                if not hasattr(p[f"{conv}.weight"], LEVELS_ATTR):  # off the crossbar: the same every instance
                    self._fixed[node.name] = (*key, out[node.name])
        return out

    def _pack_one(self, node, conv: str, bn: str | None, p: dict[str, Tensor]):
        s, shift = self.folded.bn_affine(p, bn)
        b = p.get(f"{conv}.bias")
        bias = shift if b is None else (b if s is None else shift + b * s)
        qw = packed_conv_weight(*levels_of(p[f"{conv}.weight"]), s)
        stride, padding, dilation, groups = (node.kwargs[k] for k in ("stride", "padding", "dilation", "groups"))
        return torch.ops.quantized.conv2d_prepack(qw, None if bias is None else bias.float().contiguous(), stride,
                                                  padding, dilation, groups)

    @torch.no_grad()
    def observe(self, p: dict[str, Tensor], batches, ranges: dict | None = None) -> dict[str, tuple[float, float]]:
        """Min-max of every tensor the int8 graph quantises, over `batches` through the BN-folded float forward
        with `p` (merged into `ranges` when given): the activation scales' calibration."""
        ranges = dict(ranges or {})
        fp = self.folded.fold(p)

        def seen(key, t):
            lo, hi = (float(v) for v in torch.aminmax(t))
            old = ranges.get(key)
            ranges[key] = (lo, hi) if old is None else (min(lo, old[0]), max(hi, old[1]))

        for x in batches:
            env = {}
            for n in self.nodes:
                if n.op == "placeholder":
                    env[n] = x if n.name == self.input_name else fp
                    if n.name == self.input_name:
                        seen(n.name, x)
                elif n in self.convs:
                    xin, w, b = (_arg(env, a) for a in n.args)
                    k = {name: _arg(env, v) for name, v in n.kwargs.items()}
                    other, unary, scalars = k["other"], k["unary"], k["scalars"]
                    y = torch.nn.functional.conv2d(xin, w, b, k["stride"], k["padding"], k["dilation"], k["groups"])
                    if other is not None:
                        seen(n.name + ":conv", y)
                        y = y + other
                    env[n] = y.relu() if unary == "relu" else y.clamp(*scalars) if unary == "hardtanh" else y
                    seen(n.name, env[n])
                elif n.op == "output":
                    break
                else:
                    env[n] = self._float_node(n, env)
                    if isinstance(env[n], Tensor) and env[n].is_floating_point() and env[n].dim() == 4:
                        seen(n.name, env[n])  # a float op's output a later conv may quantise
        return ranges

    def _float_node(self, n, env):
        args = [_arg(env, a) for a in n.args]
        kwargs = {k: _arg(env, v) for k, v in n.kwargs.items()}
        if n.op == "call_module":
            return self.modules[n.target](*args, **kwargs)
        if n.op == "call_method":
            return getattr(args[0], n.target)(*args[1:], **kwargs)
        return n.target(*args, **kwargs)

    def _quant_safe(self, n) -> bool:
        if n.op == "call_module":
            return isinstance(self.modules[n.target], _QUANT_SAFE_MODULES)
        if n.op == "call_method":
            return n.target in _QUANT_SAFE_METHODS
        return n.target in _QUANT_SAFE_FUNCTIONS or n.target is operator.getitem

    def _qconv(self, n, env, packed, ranges):
        """One conv block in int8: conv (+ReLU, ReLU6 as a ReLU whose range stops at 6) or conv + add (+ReLU)."""
        xin, other, unary = env[n.args[0]], n.kwargs["other"], n.kwargs["unary"]
        xin = _quant(xin, ranges, n.args[0].name)
        w = packed[n.name]
        cap = 6.0 if unary == "hardtanh" else None
        if other is None:
            scale, zp = qparams(*ranges[n.name], cap)
            op = torch.ops.quantized.conv2d_relu if unary else torch.ops.quantized.conv2d
            return op(xin, w, scale, zp)
        y = torch.ops.quantized.conv2d(xin, w, *qparams(*ranges[n.name + ":conv"]))
        o = _quant(env[other], ranges, other.name)
        scale, zp = qparams(*ranges[n.name], cap)
        add = torch.ops.quantized.add_relu if unary else torch.ops.quantized.add
        return add(y, o, scale, zp)

    @torch.no_grad()
    def forward(self, x: Tensor, packed: dict, ranges: dict) -> Tensor:
        """Logits (float) of a normalised float batch `x`, through the int8 graph."""
        env = {}
        with quantized_engine(self.engine):
            for n in self.nodes:
                if n.op == "placeholder":
                    env[n] = _quant(x, ranges, n.name) if n.name == self.input_name else packed["#params"]
                elif n in self.convs:
                    env[n] = self._qconv(n, env, packed, ranges)
                elif n.op == "output":
                    return _deq(_arg(env, n.args[0]))
                elif n.op == "call_function" and n.target is operator.getitem and str(n.args[1]).endswith("#folded"):
                    continue
                elif self._quant_safe(n):
                    env[n] = self._float_node(n, env)
                else:  # anything else (the classifier) in float on the dequantised tensor
                    env[n] = self._float_node_deq(n, env)
        raise AssertionError("a traced graph ends in an output node")

    def _float_node_deq(self, n, env):
        deq = {k: _deq(v) for k, v in env.items() if k in n.all_input_nodes}
        return self._float_node(n, {**env, **deq})


CALIB_MAP_SEED = 2**31 - 1  # the paper protocol's calibration maps: a seed no evaluation uses for its instances
CALIB_MAPS = 4  # maps per rate whose activation ranges are merged (each run over the whole fixed set)


class Int8State:
    """An Evaluator's int8 side: the engine over its BN-folded graph, the activation ranges (per chip under the
    `chip` protocol; per fault rate under `paper`, calibrated through CALIB_MAPS maps of the same fault model
    drawn with CALIB_MAP_SEED, i.e. as Algorithm 1 calibrates BN: through random masks at p' = f), the test
    batches quantised once per input scale, and the seconds of the last instance's parts (for dse bench)."""

    def __init__(self, ev, engine: str | None = None):
        self.ev = ev
        self.engine = Int8Forward(ev.fast, engine)
        self._rate = 0.0
        self.maps = (FaultSpec("sa1"), True)  # faults and rescale of the paper protocol's calibration maps (run sets them)
        self._ranges: dict = {}
        self._qx: tuple | None = None
        self.last: dict[str, float] = {}

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:  # new BN statistics (use_bn_for): new ranges
        self._rate = float(value)
        self._ranges.clear()

    def reset(self) -> None:
        """Forget the ranges (new calibration images)."""
        self._ranges.clear()

    def _paper_ranges(self) -> dict:
        fault, rescale = self.maps
        fault = fault.at(self._rate)  # the rate whose BN statistics are loaded
        key = (fault, rescale)
        if key not in self._ranges:
            inj = self.ev.injector
            sets = ([inj.chip(i, fault, CALIB_MAP_SEED, rescale) for i in range(CALIB_MAPS)]
                    if self._rate > 0 else [inj.chip(None, fault)])
            ranges = None
            for w in sets:
                ranges = self._observe(self.ev._params(w), ranges)
            self._ranges[key] = ranges
        return self._ranges[key]

    def _observe(self, p: dict, ranges: dict | None = None) -> dict:
        batches = [x.contiguous(memory_format=torch.channels_last) for x in self.ev.calib]
        with autocast(self.ev.device, self.ev.float_precision):
            return self.engine.observe(p, batches, ranges)

    def _test_batches(self, rng: tuple[float, float]) -> list[Tensor]:
        """The test batches quantised to the input's scale (the same for every chip: the same images)."""
        qp = qparams(*rng)
        if self._qx is None or self._qx[0] != qp:
            xs = [torch.quantize_per_tensor(x.contiguous(memory_format=torch.channels_last), *qp, torch.quint8)
                  for x in self.ev.x]
            self._qx = (qp, xs)
        return self._qx[1]

    def describe(self, bn, calib_images: int) -> str:
        """One line for an evaluation's output (`bn`: its BN protocol): what the int8 engine models, and its
        calibration images."""
        where = ("each chip's own" if isinstance(bn, Chip) else
                 f"a fixed set, through {CALIB_MAPS} calibration maps per rate")
        return (f"int8 ({self.engine.engine} engine): crossbar weights are the faulty {WEIGHT_BITS}-bit levels, BN "
                f"folded; inputs {INPUT_BITS}-bit (the DACs: {INPUT_BITS} bits modelled whatever the cost model's "
                f"input_bits); activation ranges from {calib_images} training images ({where}); 1x1 convs 8-bit, "
                "classifier float; ADC resolution of partial sums not modelled")

    @torch.no_grad()
    def accuracy(self, p: dict[str, Tensor], chip: bool) -> float:
        """Test accuracy (percent) of the instance whose parameters (faulty weights, BN statistics) are `p`."""
        t0 = time.perf_counter()
        packed = self.engine.pack(p)
        t1 = time.perf_counter()
        ranges = self._observe(p) if chip else self._paper_ranges()
        t2 = time.perf_counter()
        correct = 0
        for x, y in zip(self._test_batches(ranges[self.engine.input_name]), self.ev.y):
            correct += (self.engine.forward(x, packed, ranges).argmax(1) == y).sum()
        t3 = time.perf_counter()
        self.last = {"pack_s": t1 - t0, "ranges_s": t2 - t1, "test_s": t3 - t2}
        return 100.0 * int(correct) / self.ev.n_images
