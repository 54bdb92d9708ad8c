"""Cost model: Table II reproduced in paper mode, crossbar tiling and component energy in isaac mode."""
import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dse.cli import main
from dse.core.cost import per_image as cost
from dse.core.cost import isaac
from dse.core.errors import DSEError
from dse.core.models import build_model

# Table II cells given in shared/paper-notes.md: width -> (latency ns, energy uJ) per image
TABLE_II = {
    ("resnet20", 1.0): (15.74, 113.32),
    ("resnet20", 1.2): (22.13, 159.28),
    ("resnet20", 1.4): (29.80, 214.53),
    ("resnet20", 1.6): (39.11, 281.56),
    ("vgg13", 1.0): (87.83, 632.16),
}


def layer(report, name):
    return next(r for r in report.layers if r.name == name)


# ---- paper mode ----


@pytest.mark.parametrize("key", sorted(TABLE_II))
def test_paper_mode_reproduces_table_ii(key):
    latency, energy = TABLE_II[key]
    got = cost.paper_cost(*key)
    assert got["latency_ns"] == pytest.approx(latency, rel=1e-3)
    assert got["energy_uj"] == pytest.approx(energy, rel=1e-3)


def test_paper_mode_uses_the_papers_ptflops_counts():
    assert cost.paper_cost("resnet20")["macs"] == 41_214_602
    assert cost.paper_cost("vgg13")["macs"] == 229_917_706


def test_paper_mode_grows_with_width_for_every_network():
    for network in cost.TABLE_NETWORKS:
        figures = [cost.paper_cost(network, w) for w in cost.TABLE_WIDTHS]
        latencies = [f["latency_ns"] for f in figures]
        energies = [f["energy_uj"] for f in figures]
        assert latencies == sorted(latencies) and len(set(latencies)) == 4, network
        assert energies == sorted(energies) and len(set(energies)) == 4, network
    # almost every MAC is in layers whose in and out channels both widen, so ~w^2 (the stem grows as w)
    ratio = cost.paper_cost("resnet20", 1.6)["macs"] / cost.paper_cost("resnet20", 1.0)["macs"]
    assert 0.95 * 1.6**2 < ratio < 1.6**2


def test_paper_mode_lists_placement_and_keeps_table_ii_beside_it():
    a = cost.estimate("resnet20", policy="default")
    b = cost.estimate("resnet20", policy="all-on-crossbar")
    assert sum(not r["on_crossbar"] for r in a["layers"]) == 3  # two 1x1 shortcuts and fc
    assert all(r["on_crossbar"] for r in b["layers"])
    # every layer on the crossbar: paper mode is Table II's figure read with a MAC = 2 ops, exactly twice
    table = cost.paper_cost("resnet20")
    assert b["totals"]["interval_ns"] == pytest.approx(2 * table["latency_ns"], rel=1e-12)
    assert b["totals"]["latency_ns"] == b["totals"]["interval_ns"]  # nothing on the processor
    assert b["totals"]["energy_uj"] == pytest.approx(2 * table["energy_uj"], rel=1e-12)
    for t in (a["totals"], b["totals"]):  # Table II stays available whatever the mapping
        assert (t["table_ii_latency_ns"], t["table_ii_energy_uj"]) == (table["latency_ns"], table["energy_uj"])


def test_paper_mode_prices_mobilenetv2s_1x1_layers_where_the_mapping_puts_them():
    off = cost.estimate("mobilenetv2", policy="default")["totals"]
    on = cost.estimate("mobilenetv2", policy="1x1-on-crossbar")["totals"]
    assert off["latency_ns"] != pytest.approx(on["latency_ns"], rel=0.01)
    assert off["energy_uj"] != pytest.approx(on["energy_uj"], rel=0.01)
    assert off["macs_processor"] > on["macs_processor"] == 1280 * 10  # only the classifier stays off
    # the moved MACs leave ISAAC's rate for the processor's; both stages pipelined, energies summed
    p = cost.PROCESSOR
    assert off["latency_processor_ns"] == pytest.approx(off["macs_processor"] / p.macs_per_s * 1e9)
    assert off["interval_ns"] == max(off["latency_crossbar_ns"], off["latency_processor_ns"])
    assert off["latency_ns"] == pytest.approx(off["latency_crossbar_ns"] + off["latency_processor_ns"])
    assert off["energy_uj"] == pytest.approx(off["energy_crossbar_uj"] + off["macs_processor"] * p.pj_per_mac * 1e-6)
    assert off["macs_ptflops"] == cost.paper_cost("mobilenetv2")["macs"]
    # macs_crossbar counts real MACs only: ptflops' BatchNorm and bias operations are not MACs
    assert off["macs_crossbar"] + off["macs_processor"] == off["macs"] == sum(
        r.macs for r in cost.count_layers("mobilenetv2"))
    assert off["macs"] < off["macs_ptflops"]


def test_paper_mode_hardware_is_the_64_chip_system():
    t = cost.estimate("vgg13", policy="all-on-crossbar")["totals"]
    assert t["area_mm2"] == pytest.approx(64 * 85.4)
    peak = 478.95e9 * 85.4 * 64 / 363.7e9  # the chips at ISAAC's peak rate, priced at the paper's energy per op
    assert t["peak_power_w"] == pytest.approx(peak)  # no layer on the processor
    assert t["average_power_w"] <= t["peak_power_w"] * (1 + 1e-9)
    # one convention, a MAC = 2 ops, on both sides: ISAAC's 363.7 GOPs/J is 0.3637 TOPS/W of real MACs (less the
    # BatchNorm and bias operations ptflops adds), never above ISAAC's 0.62-0.64 TOPS/W peak
    assert t["tops_per_w"] == pytest.approx(0.3637 * t["macs"] / t["macs_ptflops"], rel=1e-9)
    assert t["average_power_w"] == pytest.approx(t["energy_uj"] * 1e-6 * t["images_per_s"])
    assert cost.estimate("vgg13")["totals"]["peak_power_w"] == pytest.approx(peak + 2.0)  # + the processor
    for net in ("resnet20", "mobilenetv2"):  # never an average above the peak, whatever is on the crossbar
        for policy in ("default", "all-on-crossbar", "1x1-on-crossbar"):
            tt = cost.estimate(net, policy=policy)["totals"]
            assert tt["average_power_w"] <= tt["peak_power_w"] * (1 + 1e-9), (net, policy)
    for key in ("energy_breakdown_uj", "area_breakdown_mm2"):
        total = t["energy_uj" if key.startswith("energy") else "area_mm2"]
        assert sum(t[key].values()) == pytest.approx(total, rel=1e-3)


# ---- operation counting ----


@pytest.mark.parametrize("network", ["resnet20", "vgg13", "mobilenetv2"])
def test_hook_counts_match_torch_flop_counter(network):
    with torch.device("meta"):  # shapes are all either counter needs
        model = build_model(network).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 32, 32, device="meta"))
    assert sum(r.macs for r in cost.count_layers(network)) == counter.get_total_flops() // 2


def test_count_layers_records_shapes_positions_and_groups():
    rows = {r.name: r for r in cost.count_layers("vgg13")}
    assert (rows["features.0"].positions, rows["features.31"].positions) == (32 * 32, 2 * 2)
    assert rows["classifier.0"].kind == "linear" and rows["classifier.0"].positions == 1
    assert rows["features.24"].weights == 512 * 512 * 9
    depthwise = [r for r in cost.count_layers("mobilenetv2") if r.groups > 1]
    assert depthwise and all(r.groups == r.in_channels == r.out_channels for r in depthwise)
    assert all(r.rows == 9 and r.cols == 1 and r.weights == 9 * r.groups for r in depthwise)


def test_width_scales_the_wide_layers_with_its_square():
    for w in (1.2, 1.4, 1.6):
        wide = {r.name: r for r in cost.count_layers("vgg13", w)}["features.24"]
        assert wide.macs == 16 * int(512 * w) ** 2 * 9
        assert wide.macs / (16 * 512 * 512 * 9) == pytest.approx(w * w, rel=0.01)


def test_3x3_shortcuts_add_the_expected_macs():
    # shortcuts: 16->32 at 16x16 outputs and 32->64 at 8x8; a 3x3 kernel adds 8 taps per weight
    extra = 8 * (16 * 16 * 32 * 16 + 8 * 8 * 64 * 32)
    assert extra == 2_097_152
    one = cost.count_layers("resnet20", shortcut_kernel=1)
    three = cost.count_layers("resnet20", shortcut_kernel=3)
    assert sum(r.macs for r in three) - sum(r.macs for r in one) == extra
    assert cost.paper_cost("resnet20", 1.0, 3)["macs"] - cost.paper_cost("resnet20")["macs"] == extra
    # 3x3 shortcuts are on the crossbar by the default policy: (16*9=144 rows -> 2) + (288 rows -> 3)
    isaac_one, isaac_three = cost.isaac_cost("resnet20"), cost.isaac_cost("resnet20", shortcut_kernel=3)
    assert isaac_three.totals["crossbars_one_copy"] - isaac_one.totals["crossbars_one_copy"] == 5
    assert isaac_three.totals["macs_processor"] == 640  # only fc is left on the processor


# ---- isaac mode: mapping ----


def test_crossbar_tiling_of_a_known_layer():
    assert layer(cost.isaac_cost("vgg13"), "features.24").crossbars == 36 * 4  # 4608 x 512 on 128x128
    assert layer(cost.isaac_cost("vgg13", bits_per_cell=2), "features.24").crossbars == 36 * 16
    assert layer(cost.isaac_cost("vgg13", xbar_size=256), "features.24").crossbars == 18 * 2
    # depth-wise 3x3 over 32 channels: 9x1 blocks, 14 to a crossbar on the diagonal -> 3 crossbars
    first_dw = next(r for r in cost.isaac_cost("mobilenetv2").layers if r.groups == 32)
    assert first_dw.crossbars == 3


def test_moving_1x1_layers_onto_the_crossbar_adds_their_crossbars():
    base = cost.isaac_cost("resnet20")
    moved = cost.isaac_cost("resnet20", policy="1x1-on-crossbar")
    assert moved.totals["crossbars_one_copy"] - base.totals["crossbars_one_copy"] == 2  # 16x32, 32x64: one each
    assert moved.totals["macs_crossbar"] - base.totals["macs_crossbar"] == 2 * 131_072

    base, moved = cost.isaac_cost("mobilenetv2"), cost.isaac_cost("mobilenetv2", policy="1x1-on-crossbar")
    point_wise = [r for r in cost.count_layers("mobilenetv2") if r.kind == "conv" and r.kernel == 1]
    expected = sum(math.ceil(r.rows / 128) * math.ceil(r.cols / 128) for r in point_wise)
    assert expected > 0 and moved.totals["crossbars_one_copy"] - base.totals["crossbars_one_copy"] == expected
    assert moved.totals["macs_processor"] == 1280 * 10  # only the classifier remains
    assert moved.totals["energy_processor_uj"] < base.totals["energy_processor_uj"]

    # VGG13's classifier: 512x512 -> 16, 512x512 -> 16, 512x10 -> 4 crossbars
    base, moved = cost.isaac_cost("vgg13"), cost.isaac_cost("vgg13", policy="linear-on-crossbar")
    assert moved.totals["crossbars_one_copy"] - base.totals["crossbars_one_copy"] == 36


def test_imas_tiles_and_chips_follow_isaacs_hierarchy():
    report = cost.isaac_cost("vgg13", 1.6, chips=1)
    rows = [r for r in report.layers if r.device == "crossbar"]
    assert all(r.imas == math.ceil(r.crossbars * r.replicas / 8) for r in rows)
    t = report.totals
    assert t["imas"] == t["pipeline_copies"] * sum(r.imas for r in rows) <= t["budget_imas"] == 168 * 12
    assert t["tiles"] == math.ceil(t["imas"] / 12) and t["chips"] == 1
    assert report.energy_by_component_uj["links"] == 0  # one chip: no chip-to-chip links
    tiny = cost.isaac_cost("vgg13", 1.6, xbar_size=16)  # many more crossbars: several chips
    assert tiny.totals["chips"] == math.ceil(tiny.totals["tiles"] / 168) > 1
    # the links are on all the time: their energy per image is their power over the interval, not the latency
    assert tiny.energy_by_component_uj["links"] == pytest.approx(10.4e3 * tiny.totals["chips"]
                                                                 * tiny.totals["interval_ns"] * 1e-6)


def test_isaac_crossbars_and_energy_grow_with_width():
    reports = [cost.isaac_cost("vgg13", w) for w in cost.TABLE_WIDTHS]
    xbars = [r.totals["crossbars_one_copy"] for r in reports]
    energy = [r.totals["energy_uj"] for r in reports]
    assert xbars == sorted(xbars) and energy == sorted(energy) and len(set(energy)) == 4
    # crossbars grow roughly as w^2 (rounding up to whole crossbars adds a little)
    assert 1.6**2 * 0.9 < xbars[-1] / xbars[0] < 1.6**2 * 1.25


# ---- isaac mode: ADC resolution ----


@pytest.mark.parametrize("rows, bits_per_cell, dac_bits, bits", [
    (128, 2, 1, 8),  # ISAAC: 128 x 3 = 384 levels, 9 bits, 8 with the flip encoding
    (128, 8, 1, 14),  # the paper's 8-bit cells: 128 x 255 = 32,640 levels, 15 bits, 14 flipped
    (128, 1, 1, 7), (256, 2, 1, 9), (64, 4, 1, 9), (128, 2, 2, 10), (1024, 1, 1, 10), (16, 8, 1, 11),
])
def test_adc_bits_follow_rows_bits_per_cell_and_dac_bits(rows, bits_per_cell, dac_bits, bits):
    assert isaac.adc_bits_needed(rows, bits_per_cell, dac_bits) == bits
    top = rows * (2**bits_per_cell - 1) * (2**dac_bits - 1)
    assert 2 ** (bits + 1) > top >= 2**bits  # one bit below what the raw sum needs: the flip encoding's saving
    config = isaac.IsaacConfig(xbar_size=rows, bits_per_cell=bits_per_cell, dac_bits=dac_bits)
    assert config.adc_resolution == bits and isaac.IsaacConfig(adc_bits=10).adc_resolution == 10


def test_an_adc_the_column_cannot_have_is_one_clear_line():
    with pytest.raises(DSEError) as err:
        isaac.IsaacConfig(xbar_size=1024, bits_per_cell=8).check()  # 1024 x 255: a 17-bit ADC
    assert "\n" not in str(err.value) and "17-bit ADC" in str(err.value) and "at most 16" in str(err.value)
    lossy = cost.isaac_cost("resnet20", adc_bits=8).totals  # asked for explicitly: priced, flagged
    assert lossy["adc_bits"] == 8 and lossy["adc_bits_needed"] == 14 and not lossy["adc_lossless"]


def test_adc_energy_and_area_scale_as_two_to_the_bits():
    base, more = cost.isaac_cost("resnet20", adc_bits=10), cost.isaac_cost("resnet20", adc_bits=12)
    assert more.energy_by_component_uj["adc"] == pytest.approx(4 * base.energy_by_component_uj["adc"])
    assert isaac.unit_area_mm2(isaac.IsaacConfig(adc_bits=12))["adc"] == pytest.approx(
        4 * isaac.unit_area_mm2(isaac.IsaacConfig(adc_bits=10))["adc"])
    # the default (14 bits for 8-bit cells) is what most of the energy and area go to
    t = cost.isaac_cost("resnet20").totals
    assert t["adc_bits"] == 14 and t["adc_energy_share"] > 0.9 and t["adc_area_share"] > 0.9


# ---- isaac mode: events, timing and energy ----


def test_conversions_equal_a_hand_count_on_a_small_layer():
    report = cost.isaac_cost("resnet20")
    # layer1.0.conv1: 16 -> 16 3x3 = 144 rows on two 128-row crossbars, 16 used columns each (8-bit cells),
    # 32x32 positions, 8 input bits one a cycle: 2 x 16 x 1024 x 8 conversions (not 2 x 128 x ...)
    assert layer(report, "layer1.0.conv1").conversions == 2 * 16 * 1024 * 8 == 262_144
    two_bit = layer(cost.isaac_cost("resnet20", bits_per_cell=2), "layer1.0.conv1")
    assert two_bit.conversions == 2 * 16 * 4 * 1024 * 8  # 4 cells per weight: 64 used columns
    assert layer(report, "conv1").conversions == 1 * 16 * 1024 * 8  # 27 rows: one crossbar
    assert report.totals["conversions"] == sum(r.conversions for r in report.layers)


def test_crossbar_layer_stage_is_its_positions_over_its_copies():
    report = cost.isaac_cost("resnet20", chips=1)
    for r in (r for r in report.layers if r.device == "crossbar"):
        assert r.latency_ns == math.ceil(r.positions / r.replicas) * 8 * 100.0
    one = cost.isaac_cost("resnet20", input_bits=16, dac_bits=2)  # 16 bits, 2 a cycle: 8 cycles
    assert layer(one, "conv1").cycles == 8
    assert report.totals["latency_ns"] == pytest.approx(sum(r.latency_ns for r in report.layers))


def test_crossbar_layer_energy_by_hand():
    # conv1 of ResNet20: one crossbar, 27 rows x 16 columns used, 1024 positions x 8 cycles, 14-bit ADC
    steps, conv, pj = 1024 * 8, 16, isaac.event_energy_pj(isaac.IsaacConfig())
    adc = 2.0 / 1.28 * 2 ** 6  # pJ per conversion: 2 mW at 1.28 GS/s, x 2^(14-8)
    assert pj["adc"] == pytest.approx(adc)
    per_step = (conv * (adc + 0.2 / 10.24 + 0.01 / 1024 * 100) + 27 * 4.0 / 1024 * 100 + 27 * 16 * 2.4 / 8 / 128**2 * 100
                + (1.24 + 0.23) / 8 * 100 + (20.7 + 7.0 + 42 / 4 + 0.52 + 0.05 + 0.4 + 1.68) / 96 * 100)
    assert layer(cost.isaac_cost("resnet20"), "conv1").energy_uj == pytest.approx(per_step * steps * 1e-6, rel=1e-9)


def test_every_cell_busy_draws_table_6_power():
    """Event energies are Table 6's powers per event: a crossbar using all its cells every 100 ns cycle draws
    exactly its share of ISAAC's chip power."""
    c = isaac.IsaacConfig(bits_per_cell=2, adc_bits=8)
    pj = isaac.event_energy_pj(c)
    per_cycle = (128 * (pj["adc"] + pj["ima_shift_add"] + pj["sample_hold"] + pj["dac"]) + 128 * 128 * pj["crossbar"]
                 + sum(pj[k] for k in ("input_register", "output_register") + isaac.TILE_PARTS))
    chip = isaac.occupied(168 * 96, 168 * 12, 168, 1, c)
    assert per_cycle / 100.0 * 168 * 96 / 1e3 == pytest.approx(chip["power_w"], rel=1e-9)


def test_processor_layers_use_the_processor_model():
    report = cost.isaac_cost("resnet20", processor=cost.Processor(macs_per_s=1e9, pj_per_mac=10.0))
    fc = layer(report, "fc")
    assert fc.device == "processor" and fc.crossbars == 0
    assert fc.latency_ns == pytest.approx(640 / 1e9 * 1e9)
    assert fc.energy_uj == pytest.approx(640 * 10.0e-6)
    with pytest.raises(DSEError, match="macs_per_s"):
        cost.isaac_cost("resnet20", processor=cost.Processor(macs_per_s=0))


def test_table_6_areas_and_powers_add_up_to_a_full_isaac_chip():
    c = isaac.IsaacConfig(bits_per_cell=2, adc_bits=8)  # ISAAC's 8-bit ADC
    one = isaac.occupied(crossbars=8, imas=1, tiles=0, chips=1, config=c)  # one IMA: 8 crossbars, its digital parts
    assert one["power_w"] * 1e3 == pytest.approx(24.09, rel=1e-3)
    assert 12 * one["area_mm2"] == pytest.approx(0.157, rel=5e-3)  # Table 6 lists 12 IMAs together
    tile = isaac.occupied(crossbars=96, imas=12, tiles=1, chips=1, config=c)
    assert tile["power_w"] == pytest.approx(0.330, rel=5e-3) and tile["area_mm2"] == pytest.approx(0.372, rel=5e-3)
    chip = isaac.occupied(crossbars=168 * 96, imas=168 * 12, tiles=168, chips=1, config=c, links=True)
    assert chip["area_mm2"] == pytest.approx(85.4, rel=5e-3) and chip["power_w"] == pytest.approx(65.8, rel=5e-3)
    bare = isaac.occupied(crossbars=168 * 96, imas=168 * 12, tiles=168, chips=1, config=c)  # one chip: links unused
    assert bare["area_mm2"] == pytest.approx(62.5, rel=5e-3) and bare["power_w"] == pytest.approx(55.4, rel=5e-3)


def test_isaac_configuration_reproduces_isaacs_published_efficiency():
    """ISAAC as published (128x128, 2-bit cells, 16-bit weights and inputs, 8-bit ADC): its peak 478.95
    GOPs/s/mm^2 and power efficiency (Table 6's 65.8 W and 85.4 mm^2 imply 621.6 GOPs/W; ISAAC quotes 644.23)
    within 5%, and the ADC rule itself gives ISAAC's 8 bits."""
    c = isaac.IsaacConfig(bits_per_cell=2, weight_bits=16, input_bits=16)
    assert c.adc_bits_needed == 8
    peak = isaac.peak_efficiency(c)
    assert peak["gops_per_s_per_mm2"] == pytest.approx(478.95, rel=0.05)
    assert peak["gops_per_w"] == pytest.approx(644.23, rel=0.05)
    assert peak["gops_per_w"] == pytest.approx(478.95 * 85.4 / 65.8, rel=0.05)
    assert peak["area_mm2"] == pytest.approx(85.4, rel=5e-3) and peak["power_w"] == pytest.approx(65.8, rel=5e-3)
    # a network never beats the peak; VGG13 at ISAAC's organisation lands at ISAAC's own order
    own = cost.isaac_cost("vgg13", policy="all-on-crossbar", bits_per_cell=2, weight_bits=16, input_bits=16)
    assert 0.3 < own.totals["tops_per_w"] < peak["gops_per_w"] / 1e3


def test_isaac_area_power_and_tops_of_what_the_design_occupies():
    t = cost.isaac_cost("resnet20").totals
    hw = isaac.occupied(t["crossbars"], t["imas"], t["tiles"], t["chips"], isaac.IsaacConfig())
    assert t["area_mm2"] == pytest.approx(hw["area_mm2"]) and t["min_area_mm2"] <= t["area_mm2"]
    assert t["peak_power_w"] == pytest.approx(hw["power_w"] + 2.0)  # 1x1 shortcuts and fc on the 2 W processor
    assert t["average_power_w"] == pytest.approx(t["energy_uj"] * 1e-6 / (t["interval_ns"] * 1e-9))
    assert t["average_power_w"] < t["peak_power_w"]
    assert t["tops_per_w"] == pytest.approx(2 * t["macs"] / (t["energy_uj"] * 1e-6) / 1e12)
    assert t["tops_per_mm2"] == pytest.approx(2 * t["macs"] * t["images_per_s"] / t["area_mm2"] / 1e12)
    assert t["images_per_s"] == pytest.approx(1e9 / t["interval_ns"])


@pytest.mark.parametrize("network, policy", [("resnet20", "default"), ("mobilenetv2", "default"),
                                             ("vgg13", "all-on-crossbar")])
@pytest.mark.parametrize("cost_model", ["paper", "isaac"])
def test_each_breakdown_sums_to_its_total(network, policy, cost_model):
    t = cost.estimate(network, policy=policy, cost_model=cost_model)["totals"]
    assert set(t["energy_breakdown_uj"]) == set(isaac.BREAKDOWN) == set(t["area_breakdown_mm2"])
    assert sum(t["energy_breakdown_uj"].values()) == pytest.approx(t["energy_uj"], rel=1e-3)
    assert sum(t["area_breakdown_mm2"].values()) == pytest.approx(t["area_mm2"], rel=1e-3)


def test_crossbar_size_sets_the_cycle_through_its_adc():
    assert cost.isaac_cost("resnet20").config.cycle_ns == 100.0  # 128 columns at 1.28 GS/s: ISAAC's 100 ns
    big = cost.isaac_cost("resnet20", xbar_size=256, bits_per_cell=4)
    assert big.config.cycle_ns == 200.0 and layer(big, "conv1").cycles == 8
    assert cost.isaac_cost("resnet20", xbar_size=64).config.cycle_ns == 100.0  # still waits for the read


# ---- throughput at a budget ----


def _throughput(t):
    return t["images_per_s"]


@pytest.mark.parametrize("network", ["resnet20", "vgg13"])
def test_replication_never_exceeds_the_budget_nor_lowers_throughput(network):
    plain = cost.replicate([(x, p) for x, p in _layers(network)], isaac.IsaacConfig(chips=100_000))
    previous = 0.0
    for budget in (1.0, 20.0, 85.4, 400.0, 2000.0):
        t = cost.isaac_cost(network, policy="all-on-crossbar", budget_mm2=budget).totals
        if not t["fits"]:
            continue
        assert t["imas"] <= t["budget_imas"] and t["area_mm2"] <= budget * (1 + 1e-9)
        one = max(r.positions for r in cost.count_layers(network, policy="all-on-crossbar")) * 800.0
        assert t["interval_ns"] <= one  # never slower than one plain copy
        assert _throughput(t) >= previous  # more budget never lowers throughput
        previous = _throughput(t)
    assert previous > 0 and plain["fits"]


def _layers(network):
    config = isaac.IsaacConfig()
    return [(cost.crossbars_for(r, config), r.positions)
            for r in cost.count_layers(network, policy="all-on-crossbar") if r.on_crossbar]


def test_replication_balances_the_pipeline_and_stops_at_the_processor():
    t = cost.isaac_cost("resnet20", chips=1).totals  # the 1x1 shortcuts and fc on the processor
    assert t["interval_ns"] == pytest.approx(t["latency_processor_ns"]) and t["bottleneck"] == "processor"
    alone = cost.isaac_cost("resnet20", policy="all-on-crossbar", chips=1).totals
    assert alone["pipeline_copies"] >= 1 and alone["interval_ns"] < 1024 * 800.0 / 10


def test_widening_resnet20_costs_at_a_fixed_budget():
    """The issue's bar: 1.0x -> 1.6x at the default budget costs >= 1.5x in interval and energy."""
    a, b = cost.isaac_cost("resnet20").totals, cost.isaac_cost("resnet20", 1.6).totals
    assert b["interval_ns"] / a["interval_ns"] >= 1.5 and b["energy_uj"] / a["energy_uj"] >= 1.5
    assert a["chips_available"] == b["chips_available"] == 64


def test_a_design_that_does_not_fit_the_budget_is_flagged():
    tiny = cost.isaac_cost("vgg13", 1.6, xbar_size=16)
    assert tiny.totals["chips"] > 1 and tiny.totals["fits"]  # 64 chips by default
    squeezed = cost.isaac_cost("vgg13", 1.6, xbar_size=16, chips=1)
    assert not squeezed.totals["fits"] and squeezed.totals["chips_available"] == 1
    assert squeezed.totals["pipeline_copies"] == 1  # priced as one copy, flagged


@pytest.mark.parametrize("knob, value, allowed", [
    ("xbar_size", 4, "from 8 to 1024"), ("xbar_size", 2048, "from 8 to 1024"), ("bits_per_cell", 0, "from 1 to 8"),
    ("bits_per_cell", 9, "from 1 to 8"), ("adc_bits", -1, "from 0 to 16"), ("adc_bits", 17, "from 0 to 16"),
    ("chips", 0, "from 1 to"), ("chips", 1.5, "an integer"), ("adc_bits", True, "an integer"),
    ("dac_bits", 0, "from 1 to 8"), ("budget_mm2", -1.0, "from 0 to"), ("budget_mm2", float("inf"), "from 0 to"),
])
def test_knobs_are_validated_with_one_line(knob, value, allowed):
    for call in (lambda: isaac.check_knobs(**{knob: value}),
                 lambda: cost.estimate("resnet20", cost_model="isaac", **{knob: value})):
        with pytest.raises(DSEError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and knob in message and allowed in message and repr(value) in message, message


def test_check_knobs_keeps_only_what_differs_from_isaac():
    assert isaac.check_knobs(xbar_size=128, bits_per_cell=8, adc_bits=0, chips=64) == {}
    assert isaac.check_knobs(xbar_size=256, chips=64) == {"xbar_size": 256}
    with pytest.raises(DSEError, match="xbar"):
        isaac.check_knobs(xbar=64)


def test_estimates_carry_the_cost_model_version():
    for model in cost.COST_MODELS:
        assert cost.estimate("resnet20", cost_model=model)["version"] == isaac.COST_VERSION


def test_table_6_powers_add_up_to_isaacs_totals():
    p = cost.ISAAC_POWER_MW
    ima = sum(p[k] for k in ("adc", "dac", "sample_hold", "crossbar", "ima_shift_add", "input_register",
                             "output_register"))
    tile = 12 * ima + sum(p[k] for k in ("edram", "bus", "router", "tile_digital"))
    assert ima == pytest.approx(24.09, rel=1e-3)
    assert tile == pytest.approx(330.0, rel=5e-3)
    assert (168 * tile + p["links"]) / 1e3 == pytest.approx(65.8, rel=5e-3)


def test_totals_are_consistent_with_the_layers():
    report = cost.isaac_cost("mobilenetv2")
    t, rows = report.totals, report.layers
    assert t["latency_ns"] == pytest.approx(sum(r.latency_ns for r in rows))
    cpu = sum(r.latency_ns for r in rows if r.device == "processor")
    stages = [r.latency_ns for r in rows if r.device == "crossbar"]
    assert t["interval_ns"] == pytest.approx(max(stages + [cpu]))
    assert t["energy_uj"] == pytest.approx(sum(r.energy_uj for r in rows))
    assert t["energy_uj"] == pytest.approx(sum(report.energy_by_component_uj.values()))
    assert t["macs"] == sum(r.macs for r in cost.count_layers("mobilenetv2"))
    assert 0 < t["processor_energy_share"] < 1


# ---- the entry point, errors and the CLI ----


@pytest.mark.parametrize("cost_model", ["paper", "isaac"])
def test_estimate_is_json_serialisable(cost_model):
    result = cost.estimate("resnet20", 1.2, 3, "default", cost_model)
    again = json.loads(json.dumps(result))
    assert again["cost_model"] == cost_model and again["width"] == 1.2 and again["shortcut_kernel"] == 3
    assert again["totals"]["latency_ns"] > 0 and again["totals"]["energy_uj"] > 0
    assert [r["name"] for r in again["layers"]] == [r.name for r in cost.count_layers("resnet20", 1.2, 3)]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"network": "resnet18"}, ["'resnet18'", "resnet20"]),
        ({"network": "vgg13", "width": "wide"}, ["'wide'"]),
        ({"network": "vgg13", "width": 0}, ["0"]),
        ({"network": "vgg13", "width": -1.2}, ["-1.2"]),
        ({"network": "vgg13", "shortcut_kernel": 3}, ["3", "vgg13"]),
        ({"network": "vgg13", "cost_model": "gpu"}, ["'gpu'", "paper", "isaac"]),
        ({"network": "vgg13", "policy": "none"}, ["'none'", "default"]),
        ({"network": "vgg13", "cost_model": "isaac", "xbar_size": 0}, ["xbar_size", "0"]),
        ({"network": "vgg13", "cost_model": "isaac", "bits_per_cell": 2.5}, ["bits_per_cell", "2.5"]),
        ({"network": "vgg13", "cost_model": "paper", "xbar_size": 64}, ["xbar_size", "isaac"]),
        ({"network": "vgg13", "cost_model": "isaac", "xbar": 64}, ["xbar", "xbar_size"]),
    ],
)
def test_bad_input_gives_a_clear_error(kwargs, words):
    with pytest.raises(DSEError) as err:
        cost.estimate(**kwargs)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_cli_prints_json_for_both_models(capsys):
    assert main(["cost", "--network", "resnet20", "--width", "1.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["paper"]["totals"]["table_ii_latency_ns"] == pytest.approx(22.13, rel=1e-3)
    assert out["isaac"]["totals"]["crossbars"] > 0


def test_cli_shows_area_power_and_tops_per_w_in_text_and_json(capsys):
    assert main(["cost", "--network", "resnet20", "--json", "--xbar-size", "256", "--adc-bits", "9"]) == 0
    out = json.loads(capsys.readouterr().out)
    for model in ("paper", "isaac"):
        assert set(DONE_WHEN) <= set(out[model]["totals"])
    assert out["isaac"]["config"]["xbar_size"] == 256 and out["isaac"]["config"]["adc_bits"] == 9
    assert main(["cost", "--network", "resnet20"]) == 0
    text = capsys.readouterr().out
    assert "mm^2" in text and "TOPS/W" in text and "TOPS/mm^2" in text and "Table II (mapping-blind" in text
    assert "latency" in text and "interval" in text and "images/s" in text and "peak" in text and "average" in text
    assert "ADC" in text and "eDRAM and registers" in text and "off-crossbar processor" in text
    with pytest.raises(SystemExit) as exit_:
        main(["cost", "--network", "resnet20", "--chips", "0"])
    assert exit_.value.code == 2 and "--chips" in capsys.readouterr().err
    assert main(["cost", "--network", "resnet20", "--xbar-size", "4"]) == 2
    assert "xbar_size (crossbar rows = columns) must be an integer from 8 to 1024, got 4" in capsys.readouterr().err


def test_cli_prints_layers_and_totals(capsys):
    argv = ["cost", "--network", "resnet20", "--cost-model", "isaac", "--mapping", "1x1-on-crossbar"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "layer2.0.shortcut.0" in out and "isaac:" in out and "paper:" not in out


DONE_WHEN = ("latency_ns", "interval_ns", "images_per_s", "peak_power_w", "average_power_w", "tops_per_w",
             "tops_per_mm2", "energy_breakdown_uj", "area_breakdown_mm2", "area_mm2", "min_area_mm2")


def test_cli_json_shows_what_the_issue_asks_for(capsys):
    assert main(["cost", "--network", "resnet20", "--json", "--cost-model", "isaac"]) == 0
    t = json.loads(capsys.readouterr().out)["isaac"]["totals"]
    assert set(DONE_WHEN) <= set(t) and t["adc_bits"] >= 14 and t["fits"]


def test_cli_budget_and_processor_knobs_and_a_design_that_does_not_fit(capsys):
    argv = ["cost", "--network", "resnet20", "--json", "--cpu-gmacs", "1000", "--cpu-pj-per-mac", "5"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["isaac"]["processor"]["watts"] == pytest.approx(5.0)
    assert out["paper"]["totals"]["latency_processor_ns"] == pytest.approx(262_784 / 1e12 * 1e9)
    assert main(["cost", "--network", "vgg13", "--width", "1.6", "--xbar-size", "16", "--chips", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "chips 1 holds 2016 IMAs" in err and "allowed: chips >= 6" in err, err
    assert main(["cost", "--network", "resnet20", "--budget-mm2", "1"]) == 2
    assert "allowed: budget_mm2 >= " in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["cost", "--network", "resnet20", "--cpu-gmacs", "0"])
    assert exit_.value.code == 2 and "--cpu-gmacs" in capsys.readouterr().err


def test_cli_rejects_bad_values(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["cost", "--network", "alexnet"])
    assert exit_.value.code == 2 and "alexnet" in capsys.readouterr().err
    assert main(["cost", "--network", "vgg13", "--shortcut-kernel", "3"]) == 2
    assert "shortcut kernel 3" in capsys.readouterr().err


def test_comparison_table_rows(capsys):
    from dse.commands.cost import print_table

    rows = cost.compare(networks=("resnet20",), widths=(1.0, 1.6))
    assert [(r["network"], r["width"]) for r in rows] == [("resnet20", 1.0), ("resnet20", 1.6)]
    assert rows[0]["table_ii_latency_ns"] == pytest.approx(15.74, rel=1e-3)
    assert rows[1]["isaac_energy_uj"] > rows[0]["isaac_energy_uj"]
    print_table(rows)
    assert "15.74" in capsys.readouterr().out


def test_the_docs_worked_example_matches_the_code():
    import pathlib
    import re

    text = (pathlib.Path(__file__).parents[1] / "docs" / "cost-model.md").read_text()
    block = re.search(r"```worked-example\n(.*?)```", text, re.S).group(1)
    doc = dict(line.split(" = ") for line in block.strip().splitlines())
    report = cost.isaac_cost(doc["network"])
    row = layer(report, doc["layer"])
    assert (row.crossbars, row.cycles, row.conversions) == (int(doc["crossbars"]), int(doc["cycles"]),
                                                            int(doc["conversions"]))
    assert report.config.adc_resolution == int(doc["adc_bits"])
    adc_uj = row.conversions * isaac.event_energy_pj(report.config)["adc"] * 1e-6
    assert adc_uj == pytest.approx(float(doc["adc_energy_uj"]), abs=1e-4)
    assert row.energy_uj == pytest.approx(float(doc["energy_uj"]), abs=1e-4)
