"""The fast evaluation forward: a model's eval-mode graph rewritten (torch.fx) so that every conv+BN is one conv.

Each instance's faulty conv weights are folded with the eval-mode BatchNorm that
follows them (W' = W_faulty * gamma/sqrt(var+eps), b' = beta - mean*gamma/sqrt(var+eps)), so no pass over
the activations is spent on BN, and on CPU the following ReLU / residual add run inside oneDNN's conv.
Faults and quantisation still act on the conv weights before folding, so the maps and answers are those
of the plain model (logits agree to ~1e-6; checked at start-up, with the plain path as the fallback).
Measured on the 2-core AVX2 EPYC (ResNet20, batch 500, fp32 channels_last): folding +10%, fusing ReLU/add
into the conv another +10-15%. Not kept: torch.jit.freeze/optimize_for_inference (slower), torch.compile
(+8% more, but ~50 s of compiling per model and a C++ compiler needed), other batch sizes (no gain).
"""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Unsupported(Exception):
    """The model holds something the folded forward does not handle; the plain path is used."""


_RELUS = (F.relu, torch.relu)


def _unary_of(node, modules) -> tuple[str, list] | None:
    """('relu', []) or ('hardtanh', [0, 6]) when `node` is a ReLU / ReLU6 that can run inside the conv."""
    if node.op == "call_function" and node.target in _RELUS and len(node.args) == 1:
        return "relu", []
    if node.op == "call_function" and node.target is F.relu6 and len(node.args) == 1:
        return "hardtanh", [0.0, 6.0]
    if node.op == "call_module":
        m = modules[node.target]
        if type(m) is nn.ReLU:
            return "relu", []
        if type(m) is nn.ReLU6:
            return "hardtanh", [0.0, 6.0]
    return None


def _mkldnn_conv_ok() -> bool:
    """oneDNN's fused conv (+ReLU / +add) is a private op: use it only where it exists and is exact."""
    try:
        op = torch.ops.mkldnn._convolution_pointwise
        if not torch.backends.mkldnn.is_available():
            return False
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 4, 6, 6, generator=g).contiguous(memory_format=torch.channels_last)
        w, b = torch.randn(5, 4, 3, 3, generator=g), torch.randn(5, generator=g)
        other = torch.randn(2, 5, 6, 6, generator=g).contiguous(memory_format=torch.channels_last)
        a = op.default(x, w, b, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
        c = op.binary(x, other, w, b, [1, 1], [1, 1], [1, 1], 1, "add", 1.0, "relu", [], "")
        ref = F.conv2d(x, w, b, padding=1)
        return torch.allclose(a, ref.relu(), atol=1e-5) and torch.allclose(c, (ref + other).relu(), atol=1e-5)
    except Exception:  # missing op, no oneDNN, or a build that rejects the call
        return False


def _conv_block(x, w, b, *, stride, padding, dilation, groups, other, unary, scalars, mkldnn):
    """conv(x) [+ other] [-> ReLU/ReLU6]; inside oneDNN's conv when `mkldnn`, else as separate ops."""
    if mkldnn and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"):
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, w, b, padding, stride, dilation, groups,
                                                           unary or "none", scalars, "")
        return torch.ops.mkldnn._convolution_pointwise.binary(x, other, w, b, padding, stride, dilation, groups,
                                                              "add", 1.0, unary, scalars, "")
    y = F.conv2d(x, w, b, stride, padding, dilation, groups)
    if other is not None:
        y = y + other
    if unary == "relu":
        y = F.relu(y)
    elif unary == "hardtanh":
        y = F.hardtanh(y, *scalars)
    return y


def _fused_after(end, modules: dict, claimed: set) -> tuple:
    """What fuses into a conv (or conv+BN) ending at `end`: (residual add node or None, unary or None, the
    chain's last node). An add is claimed by the first conv that reaches it."""
    user = next(iter(end.users)) if len(end.users) == 1 else None
    if user is not None and _unary_of(user, modules):
        return None, _unary_of(user, modules), user
    if (user is not None and user not in claimed and user.op == "call_function"
            and user.target in (operator.add, torch.add) and len(user.args) == 2 and not user.kwargs
            and all(isinstance(a, torch.fx.Node) for a in user.args) and user.args[0] is not user.args[1]):
        claimed.add(user)
        after = next(iter(user.users)) if len(user.users) == 1 else None
        if after is not None and _unary_of(after, modules):
            return user, _unary_of(after, modules), after
        return user, None, user
    return None, None, end


def _emit(gm: torch.fx.GraphModule, modules: dict, skip: set, emit_at: dict, mkldnn: bool) -> torch.fx.Graph:
    """The second walk: the rewritten graph, `forward(x, params)`, each chain one `_conv_block` at its last node."""
    graph = torch.fx.Graph()
    env: dict = {}
    params = None

    def param(key: str):
        return graph.call_function(operator.getitem, (params, key))

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            env[node] = graph.node_copy(node, lambda n: env[n])
            continue
        if params is None:
            params = graph.placeholder("params")
        if node in emit_at:
            env[node] = _emit_block(graph, modules, env, param, emit_at[node], mkldnn)
        elif node in skip:
            continue
        elif node.op == "call_module":
            env[node] = _emit_module(graph, node, modules[node.target], env, param)
        elif node.op == "get_attr":
            env[node] = param(node.target)
        else:
            env[node] = graph.node_copy(node, lambda n: env[n])
    return graph


def _emit_block(graph: torch.fx.Graph, modules: dict, env: dict, param, chain: tuple, mkldnn: bool):
    """One conv chain as a `_conv_block` call on its folded weight and bias."""
    conv_node, bn_name, add, end, unary = chain
    conv = modules[conv_node.target]
    other = None
    if add is not None:
        other = env[add.args[1] if add.args[0] is end else add.args[0]]
    name = conv_node.target
    return graph.call_function(
        _conv_block, (env[conv_node.args[0]], param(f"{name}.weight#folded"), param(f"{name}.bias#folded")),
        dict(stride=list(conv.stride), padding=list(conv.padding), dilation=list(conv.dilation),
             groups=conv.groups, other=other, unary=unary[0] if unary else None,
             scalars=unary[1] if unary else [], mkldnn=mkldnn))


def _emit_module(graph: torch.fx.Graph, node, m: nn.Module, env: dict, param):
    """A layer outside the chains: a linear or a lone BN on `params`, a stateless one copied as it is."""
    if isinstance(m, nn.Linear):
        b = param(f"{node.target}.bias") if m.bias is not None else None
        return graph.call_function(F.linear, (env[node.args[0]], param(f"{node.target}.weight"), b))
    if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:  # BN not after a conv
        t = node.target
        w, b = (param(f"{t}.weight"), param(f"{t}.bias")) if m.affine else (None, None)
        return graph.call_function(F.batch_norm, (
            env[node.args[0]], param(f"{t}.running_mean"), param(f"{t}.running_var"), w, b, False, 0.0, m.eps))
    if next(m.parameters(), None) is None and next(m.buffers(), None) is None:
        return graph.node_copy(node, lambda n: env[n])  # stateless: pooling, ReLU, ...
    raise _Unsupported(f"layer {node.target} ({type(m).__name__}) holds weights")


class FoldedForward:
    """A model's eval-mode forward rewritten (torch.fx) as `forward(x, params)`: every conv+BN becomes one
    conv with folded weight and bias, and a ReLU/ReLU6 or residual add(+ReLU) right after it is fused into
    it. `params` maps the model's parameter/buffer names to tensors, with any substitutes (faulty crossbar
    weights) already in; `fold(params)` computes the folded conv weights from them for each call.
    Raises _Unsupported for a model with a layer it does not know (the caller keeps the plain forward)."""

    def __init__(self, model: nn.Module, mkldnn: bool):
        try:
            gm = torch.fx.symbolic_trace(model)
        except Exception as e:  # data-dependent control flow and the like
            raise _Unsupported(f"cannot trace: {e}") from None
        modules = dict(gm.named_modules())
        self.names = {*dict(model.named_parameters()), *dict(model.named_buffers())}  # what `params` may override
        self.convs: list[tuple[str, str | None]] = []  # (conv name, BN name or None), in graph order
        self.eps: dict[str, float] = {}
        self.affine: dict[str, bool] = {}
        skip, emit_at = self._chains(gm, modules)
        self.module = torch.fx.GraphModule(gm, _emit(gm, modules, skip, emit_at, mkldnn))

    def _chains(self, gm: torch.fx.GraphModule, modules: dict) -> tuple[set, dict]:
        """The first walk: each conv's chain (its BN, then a ReLU/ReLU6 or a residual add(+ReLU)), recorded in
        convs, eps and affine. Returns (the nodes the chains fold away, the last node of each chain -> (conv
        node, BN name, add node, the conv or its BN, unary))."""
        skip: set = set()
        claimed: set = set()  # residual adds already fused into a conv (add(conv_a, conv_b) takes one)
        emit_at: dict = {}
        for node in gm.graph.nodes:
            if node.op != "call_module" or not isinstance(modules[node.target], nn.Conv2d):
                continue
            conv = modules[node.target]
            if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
                raise _Unsupported(f"conv {node.target} pads with {conv.padding_mode!r}/{conv.padding!r}")
            end, bn_name = node, None
            user = next(iter(node.users)) if len(node.users) == 1 else None
            if user is not None and user.op == "call_module" and isinstance(modules[user.target], nn.BatchNorm2d):
                bn = modules[user.target]
                if bn.running_mean is not None and len(user.args) == 1:  # eval BN with statistics: affine
                    end, bn_name = user, user.target
                    self.eps[bn_name], self.affine[bn_name] = bn.eps, bn.affine
                    skip.add(user)
            add, unary, last = _fused_after(end, modules, claimed)
            for n in (node, end, add, last):
                if n is not None:
                    skip.add(n)
            skip.discard(last)
            emit_at[last] = (node, bn_name, add, end, unary)
            self.convs.append((node.target, bn_name))
        return skip, emit_at

    def bn_affine(self, p: dict[str, Tensor], bn: str | None) -> tuple[Tensor | None, Tensor | None]:
        """Eval-mode BN `bn` as y = x * scale + shift, per channel, from the statistics in `p` (None: no BN)."""
        if bn is None:
            return None, None
        s = torch.rsqrt(p[f"{bn}.running_var"] + self.eps[bn])
        shift = -p[f"{bn}.running_mean"] * s
        if self.affine[bn]:
            s = s * p[f"{bn}.weight"]
            shift = p[f"{bn}.bias"] - p[f"{bn}.running_mean"] * s
        return s, shift

    def fold(self, p: dict[str, Tensor]) -> dict[str, Tensor]:
        """`p` plus each conv's folded weight and bias (faults were applied to p's conv weights already)."""
        out = dict(p)
        for conv, bn in self.convs:
            w, b = p[f"{conv}.weight"], p.get(f"{conv}.bias")
            if bn is not None:
                s, shift = self.bn_affine(p, bn)
                w = w * s.view(-1, 1, 1, 1).to(w.dtype)
                b = shift if b is None else shift + b * s
            out[f"{conv}.weight#folded"], out[f"{conv}.bias#folded"] = w, b
        return out

    def __call__(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        return self.module(x, self.fold(p))


