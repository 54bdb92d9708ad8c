import pytest
import torch

from dse.core.crossbar.mapping import crossbar_layers
from dse.core.errors import DSEError
from dse.core.faults.dropconnect import DropConnect, add_dropconnect, plain_state_dict, remove_dropconnect, set_dropconnect_rate
from dse.core.models import build_model


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keeps_about_1_minus_p_with_the_right_scale(p):
    torch.manual_seed(0)
    w = torch.randn(64, 64, 3, 3)
    out = DropConnect(p).train()(w)
    kept = out != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.01
    assert torch.allclose(out[kept], w[kept] / (1 - p))


def test_dropped_weights_get_no_gradient_and_masks_are_fresh():
    torch.manual_seed(0)
    w = torch.randn(32, 16, 3, 3, requires_grad=True)
    dc = DropConnect(0.3).train()
    out = dc(w)
    out.sum().backward()
    dropped = out.detach() == 0
    assert (w.grad[dropped] == 0).all()
    assert torch.allclose(w.grad[~dropped], torch.full_like(w.grad[~dropped], 1 / 0.7))
    assert not torch.equal(dc(w) == 0, dropped)  # a new mask on the next iteration


def test_eval_mode_and_zero_rate_are_identity():
    w = torch.randn(8, 8, 3, 3)
    assert torch.equal(DropConnect(0.4).eval()(w), w)
    assert torch.equal(DropConnect(0.0).train()(w), w)


def test_mask_is_shared_by_the_whole_batch():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 4, 3, bias=False)
    add_dropconnect(torch.nn.Sequential(conv), 0.5)
    x = torch.randn(1, 1, 5, 5)
    out = conv(torch.cat([x, x]))  # one weight draw per forward
    assert torch.equal(out[0], out[1])


def test_applies_to_exactly_the_crossbar_layers():
    m = add_dropconnect(build_model("resnet20"), 0.3)
    names = {n for n, mod in m.named_modules() if torch.nn.utils.parametrize.is_parametrized(mod, "weight")}
    assert names == set(crossbar_layers(build_model("resnet20")))


def test_plain_state_dict_and_removal_keep_the_weights():
    torch.manual_seed(0)
    plain = build_model("resnet20")
    m = build_model("resnet20")
    m.load_state_dict(plain.state_dict())
    add_dropconnect(m, 0.3)
    sd = plain_state_dict(m)
    assert sd.keys() == plain.state_dict().keys()
    assert all(torch.equal(sd[k], v) for k, v in plain.state_dict().items())
    set_dropconnect_rate(m, 0.1)
    assert all(d.p == 0.1 for d in m.modules() if isinstance(d, DropConnect))
    remove_dropconnect(m)
    assert m.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "x"])
def test_bad_rates(bad):
    with pytest.raises(DSEError, match="drop-connect rate"):
        DropConnect(bad)
