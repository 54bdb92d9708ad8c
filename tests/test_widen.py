"""dse.core.training.widen: a narrower trained network grown wider computes the same function, for every network the
explorer has, and its copied channels are set up to become different channels when fine-tuned."""
import pytest
import torch
from torch import nn

from dse.core.errors import DSEError
from dse.core.models import build_model
from dse.core.training.widen import channel_spaces, widened_state


def trained_looking(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so that a wrong copy would show in the outputs."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(1 + 0.2 * torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return model.eval()


@pytest.mark.parametrize("network, kernel", [("resnet20", 1), ("resnet20", 3), ("vgg13", 1), ("mobilenetv2", 1)])
def test_a_widened_network_computes_what_the_narrow_one_did(network, kernel):
    torch.manual_seed(0)
    small = trained_looking(build_model(network, 0.5, kernel))
    big = build_model(network, 0.8, kernel)
    big.load_state_dict(widened_state(small.state_dict(), small, big, seed=3))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        a, b = small(x), big.eval()(x)
    assert (a - b).abs().max() <= 1e-4 * a.abs().max()
    assert sum(p.numel() for p in big.parameters()) > 1.5 * sum(p.numel() for p in small.parameters())


def test_copies_split_their_outgoing_weights_unequally():
    """A copy and its source start with the same incoming weights, but different shares of the outgoing ones:
    equal shares would give them equal gradients, and they would stay one channel twice."""
    small = trained_looking(build_model("resnet20", 0.5, 1))
    big = build_model("resnet20", 0.8, 1)
    state = widened_state(small.state_dict(), small, big)
    w_in, w_out = state["conv1.weight"], state["layer1.0.conv1.weight"]  # the stem writes 12 channels from 8
    n = small.conv1.out_channels
    for j in range(n, big.conv1.out_channels):
        src = next(i for i in range(n) if torch.equal(w_in[i], w_in[j]))
        assert not torch.allclose(w_out[:, j], w_out[:, src])
        parts = [k for k in range(big.conv1.out_channels) if torch.equal(w_in[k], w_in[src])]
        total = sum(w_out[:, k] for k in parts)  # the shares of one source's copies add up to its weight
        before = small.state_dict()["layer1.0.conv1.weight"][:, src]  # (its rows are widened too: the first are kept)
        assert torch.allclose(total[: len(before)], before, atol=1e-6)


def test_a_residual_stream_is_one_space():
    spaces = channel_spaces(build_model("resnet20", 1.0, 1))
    stream = spaces["conv1"][0]
    assert {spaces[f"layer1.{b}.conv2"][0] for b in range(3)} == {stream}  # identity shortcuts add into it
    assert spaces["layer2.0.conv1"][1] == spaces["layer2.0.shortcut.0"][1] == stream
    assert spaces["layer2.0.shortcut.0"][0] == spaces["layer2.2.conv2"][0] != stream
    assert spaces["layer1.0.conv1"][0] not in (stream, spaces["layer1.1.conv1"][0])  # each block's own


def test_a_network_cannot_be_narrowed():
    small, big = build_model("resnet20", 0.8, 1), build_model("resnet20", 0.5, 1)
    with pytest.raises(DSEError, match="cannot widen conv1: 12 channels to 8"):
        widened_state(small.state_dict(), small, big)


def test_unsupported_layers_are_named():
    class Grouped(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(4, c, 3, groups=2)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(DSEError, match="cannot widen conv: grouped convolution with 2 groups"):
        channel_spaces(Grouped(4))
