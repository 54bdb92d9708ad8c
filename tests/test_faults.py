import pytest
import torch

from dse.core.errors import DSEError
from dse.core.faults import FaultInjector, instance_seed, quantize
from dse.core.mapping import crossbar_layers
from dse.core.models import build_model


def model(seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("resnet20", **kw)


def test_quantisation_is_8_bit_symmetric_per_channel():
    w = torch.randn(16, 8, 3, 3)
    levels, scale = quantize(w)
    assert levels.abs().max() <= 127 and torch.equal(levels, levels.round())
    assert torch.equal(levels.flatten(1).abs().amax(1), torch.full((16,), 127.0))  # each channel uses the range
    assert ((levels * scale - w).abs() <= scale / 2 + 1e-7).all()


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_sa1_zeroes_about_f_of_crossbar_weights_only(rate):
    m = model()
    inj = FaultInjector(m)
    clean = inj.weights(None, 0.0)
    faulty = inj.weights(0, rate, rescale=False)
    assert set(faulty) == {f"{n}.weight" for n in crossbar_layers(m)}  # nothing off the crossbar is touched
    newly_zero = sum(((faulty[k] == 0) & (clean[k] != 0)).sum().item() for k in faulty)
    total = sum(v.numel() for v in clean.values())
    assert abs(newly_zero / total - rate) < 0.01
    for k in faulty:  # healthy cells keep their quantised value
        healthy = faulty[k] != 0
        assert torch.equal(faulty[k][healthy], clean[k][healthy])


def test_rescale_multiplies_by_one_over_one_minus_f():
    inj = FaultInjector(model())
    a, b = inj.weights(3, 0.2, rescale=False), inj.weights(3, 0.2, rescale=True)
    assert all(torch.allclose(b[k], a[k] / 0.8) for k in a)


def test_maps_reproducible_by_seed_and_shared_by_same_shapes():
    a, b = FaultInjector(model(0)), FaultInjector(model(1))  # different weights, same shapes
    ma, mb = a.fault_maps(5, 0.1, seed=7), b.fault_maps(5, 0.1, seed=7)
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    assert any(not torch.equal(ma[k], a.fault_maps(6, 0.1, seed=7)[k]) for k in ma)
    assert any(not torch.equal(ma[k], a.fault_maps(5, 0.1, seed=8)[k]) for k in ma)
    other = FaultInjector(model(0, width=1.2))
    assert instance_seed(7, 5, list(a.shape_of.values())) != instance_seed(7, 5, list(other.shape_of.values()))


def test_maps_nest_across_rates():
    inj = FaultInjector(model())
    lo, hi = inj.fault_maps(0, 0.1), inj.fault_maps(0, 0.2)
    assert all((hi[k] | ~lo[k]).all() for k in lo)  # every fault at 10% is one at 20%


def test_sa0_reads_the_largest_magnitude_of_the_sign():
    m = model()
    inj = FaultInjector(m)
    maps = inj.fault_maps(0, 0.2)
    w = inj.weights(0, 0.2, fault_model="sa0", rescale=False)
    for name, (levels, scale) in inj.quantized.items():
        got = (w[f"{name}.weight"] / scale)[maps[name]]
        assert torch.allclose(got.abs(), torch.full_like(got, 127.0), atol=1e-3)
        assert (torch.sign(got) == torch.where(levels[maps[name]] < 0, -1.0, 1.0)).all()


def test_unknown_fault_model():
    with pytest.raises(DSEError, match="unknown fault model 'sa2'"):
        FaultInjector(model()).weights(0, 0.1, fault_model="sa2")


def test_injection_leaves_the_model_untouched():
    m = model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    inj = FaultInjector(m)
    inj.weights(0, 0.3)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
