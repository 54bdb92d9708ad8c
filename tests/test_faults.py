import pytest
import torch

from dse.core.crossbar.mapping import crossbar_layers
from dse.core.crossbar.quantize import quantize
from dse.core.errors import DSEError
from dse.core.faults.draws import instance_seed
from dse.core.faults.injector import FaultInjector
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


# ---- bits per cell: a weight over 8/b cells, each stuck on its own ----

# sha256 of ResNet20's SA1 maps (instance 3, rate 0.1, seed 0) as the per-weight model drew them before
# bits per cell existed: 8 bits per cell must keep them bit for bit
MAPS_BEFORE_BPC = "d1f6f03f15e8c0b78f72a7ce4f562d9718443731ce21a52a9894556ca3c54342"


def test_8_bits_per_cell_keeps_todays_fault_maps_and_weights():
    import hashlib

    from dse.core.protocol import fault_model_name

    inj = FaultInjector(model())
    assert fault_model_name("sa1", bits_per_cell=8) == "sa1"  # same name, so same store keys
    maps = inj.fault_maps(3, 0.1, 0, "sa1+bpc:8")
    digest = hashlib.sha256(b"".join(maps[k].numpy().tobytes() for k in maps)).hexdigest()
    assert digest == MAPS_BEFORE_BPC
    a, b = inj.weights(3, 0.1, 0, "sa1"), inj.weights(3, 0.1, 0, "sa1+bpc:8")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_2_bits_per_cell_zeroes_only_the_stuck_slices():
    inj = FaultInjector(model())
    maps = inj.fault_maps(0, 0.2, 0, "sa1+bpc:2")
    faulty = inj.weights(0, 0.2, 0, "sa1+bpc:2", rescale=False)
    for name, (levels, scale) in inj.quantized.items():
        stuck = maps[name]
        assert stuck.shape == (*levels.shape, 4) and abs(stuck.float().mean().item() - 0.2) < 0.02
        got = (faulty[f"{name}.weight"] / scale).round()
        mag, want = levels.abs().to(torch.int32), levels.abs().to(torch.int32)
        for j in range(4):  # by hand: each stuck 2-bit slice of the magnitude cleared
            want = torch.where(stuck[..., j], want & ~(3 << (2 * j)), want)
        assert torch.equal(got, torch.sign(levels) * want.float()), name
        untouched = ~stuck.any(-1)
        assert torch.equal(got[untouched], levels[untouched])  # a weight with no stuck cell is exact
        assert (got.abs() <= mag).all()  # SA1 per cell only ever removes magnitude
    # far fewer weights are wiped out entirely than at one cell per weight
    whole = sum(((faulty[f"{n}.weight"] == 0) & (lv != 0)).sum().item() for n, (lv, _) in inj.quantized.items())
    assert whole / sum(lv.numel() for lv, _ in inj.quantized.values()) < 0.2 * 0.5


def test_bits_per_cell_in_the_fault_model_name_and_its_errors():
    from dse.core.protocol import fault_model_name, parse_fault_model

    assert fault_model_name("sa0", bits_per_cell=2) == "sa0+bpc:2" == parse_fault_model("sa0+bpc:2").name
    for bad, words in (("sa1+bpc:3", ["bits per cell", "1, 2, 4, 8", "'3'"]),
                       ("rows+bpc:2", ["sa1 and sa0"]), ("sa1+remap+bpc:2", ["+remap"])):
        with pytest.raises(DSEError) as err:
            parse_fault_model(bad)
        assert "\n" not in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


def test_sa0_per_cell_sets_the_stuck_slice_within_range():
    from dse.core.faults.stuck_at import cell_slices

    levels = torch.tensor([0.0, -1.0, 5.0])
    stuck = torch.tensor([[False, False, False, True], [True, False, False, False], [False, False, False, False]])
    assert cell_slices(levels, stuck, 2, "sa0").tolist() == [127.0, -3.0, 5.0]  # top slice clamps to 127
    assert cell_slices(levels, stuck, 2, "sa1").tolist() == [0.0, 0.0, 5.0]
