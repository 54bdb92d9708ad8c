"""Grow a trained network wider so that it computes the same function (Net2WiderNet, Chen et al. 2016).

A widened network can then be fine-tuned from the narrower one instead of trained from scratch. Each extra
channel copies an existing one (its incoming weights and BatchNorm entries); every layer that sums over those
channels gets the copies' outgoing weights split among them, the parts adding up to the original weight, so
the sum is unchanged. The parts are drawn at random, not equal: equal halves would give the copies equal
gradients for ever, and they would never become different channels.

Which tensor dimensions must be copied alike (a "channel space": say, the residual stream of a ResNet stage,
written by several convs and BNs and read by several more) is read off the network's graph (torch.fx), so
one function serves ResNet20, VGG13 and MobileNetV2."""
from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from dse.core.errors import DSEError

# Ops that keep a tensor's channels where they are (elementwise, spatial pooling, flattening a 1x1 map).
_SAME_CHANNELS_FUNCTIONS = {F.relu, F.relu6, F.adaptive_avg_pool2d, F.avg_pool2d, F.max_pool2d, torch.flatten}
_SAME_CHANNELS_METHODS = {"flatten", "relu", "contiguous"}
_SAME_CHANNELS_MODULES = (nn.ReLU, nn.ReLU6, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten,
                          nn.Dropout, nn.Identity)


def channel_spaces(model: nn.Module) -> dict[str, tuple[int, int]]:
    """For each conv, BN and linear layer: (space of its output channels, space of its input channels).
    Spaces are numbered; two dimensions with the same number must be widened alike. Space 0 is the input."""
    parent: list[int] = [0]

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def new() -> int:
        parent.append(len(parent))
        return len(parent) - 1

    space: dict[fx.Node, int] = {}
    layers: dict[str, tuple[int, int]] = {}
    for node in fx.symbolic_trace(model).graph.nodes:
        args = [a for a in node.args if isinstance(a, fx.Node)]
        if node.op == "placeholder":
            space[node] = 0
        elif node.op == "output":
            continue
        elif node.op == "call_module":
            m = model.get_submodule(node.target)
            s_in = space[args[0]]
            if isinstance(m, nn.Conv2d):
                if m.groups == 1:
                    s_out = new()
                elif m.groups == m.in_channels == m.out_channels:  # depthwise: channel c reads channel c only
                    s_out = s_in
                else:
                    raise DSEError(f"cannot widen {node.target}: grouped convolution with {m.groups} groups")
                layers[node.target] = (s_out, s_in)
            elif isinstance(m, nn.Linear):
                s_out = new()
                layers[node.target] = (s_out, s_in)
            elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                s_out = s_in
                layers[node.target] = (s_in, s_in)
            elif isinstance(m, _SAME_CHANNELS_MODULES):
                s_out = s_in
            else:
                raise DSEError(f"cannot widen {node.target}: {type(m).__name__} layers are not supported")
            space[node] = s_out
        elif node.op == "call_function" and node.target in (operator.add, torch.add):
            a, b = (find(space[x]) for x in args)
            parent[b] = a  # a residual sum: both operands live in one space
            space[node] = a
        elif (node.op == "call_function" and node.target in _SAME_CHANNELS_FUNCTIONS) or \
                (node.op == "call_method" and node.target in _SAME_CHANNELS_METHODS):
            space[node] = space[args[0]]
        else:
            raise DSEError(f"cannot widen the network: its graph uses {node.op} {node.target}")
    return {name: (find(o), find(i)) for name, (o, i) in layers.items()}


def _growth(n: int, m: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """(source, share) for m channels grown from n: new channel j copies channel source[j]; share[j] is its
    part of each outgoing weight, the parts of one source's copies adding up to 1."""
    source = torch.cat([torch.arange(n), torch.randint(n, (m - n,), generator=gen)])
    u = torch.rand(m, generator=gen, dtype=torch.float64) + 0.5  # in [0.5, 1.5): unequal, never near zero
    total = torch.zeros(n, dtype=torch.float64).index_add_(0, source, u)
    return source, (u / total[source]).float()


def widened_state(state: dict[str, Tensor], small: nn.Module, big: nn.Module, seed: int = 0) -> dict[str, Tensor]:
    """`state` (of `small`) grown to fit `big`, the same network with more channels; `big` then computes what
    `small` did (up to float rounding)."""
    layers = channel_spaces(small)
    small_mods, big_mods = dict(small.named_modules()), dict(big.named_modules())
    sizes: dict[int, tuple[int, int]] = {}  # space -> (channels in small, channels in big)
    for name, (s_out, s_in) in layers.items():
        a, b = small_mods[name], big_mods[name]
        if isinstance(a, nn.BatchNorm2d | nn.BatchNorm1d):
            pairs = [(s_out, a.num_features, b.num_features)]
        elif isinstance(a, nn.Linear):
            pairs = [(s_out, a.out_features, b.out_features), (s_in, a.in_features, b.in_features)]
        else:
            pairs = [(s_out, a.out_channels, b.out_channels), (s_in, a.in_channels, b.in_channels)]
        for s, n, m in pairs:
            if sizes.setdefault(s, (n, m)) != (n, m) or m < n:
                raise DSEError(f"cannot widen {name}: {n} channels to {m} (a network may only grow, alike "
                               "wherever channels are added together)")
    gen = torch.Generator().manual_seed(seed)
    growth = {s: _growth(n, m, gen) for s, (n, m) in sorted(sizes.items())}

    out = {}
    for key, want in big.state_dict().items():
        name, _, kind = key.rpartition(".")
        t = state[key].float() if state[key].is_floating_point() else state[key]
        if name in layers and t.dim() > 0:
            s_out, s_in = layers[name]
            t = t[growth[s_out][0]]  # copy the rows of the channels each new one copies
            depthwise = isinstance(small_mods[name], nn.Conv2d) and small_mods[name].groups > 1
            if kind == "weight" and t.dim() >= 2 and not depthwise:
                source, share = growth[s_in]
                t = t[:, source] * share.view(1, -1, *[1] * (t.dim() - 2)).to(t.dtype)
        if t.shape != want.shape:
            raise DSEError(f"widened {key!r} is {tuple(t.shape)}; the wider network needs {tuple(want.shape)}")
        out[key] = t.to(want.dtype).clone()
    return out
