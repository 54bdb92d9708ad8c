"""Cost model: Table II reproduced in paper mode, crossbar tiling and component energy in isaac mode."""
import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dse.core import cost
from dse.cli import main
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


def test_paper_mode_ignores_the_policy_but_lists_placement():
    a = cost.estimate("resnet20", policy="default")
    b = cost.estimate("resnet20", policy="all-on-crossbar")
    assert a["totals"] == b["totals"]
    assert sum(not r["on_crossbar"] for r in a["layers"]) == 3  # two 1x1 shortcuts and fc
    assert all(r["on_crossbar"] for r in b["layers"])


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
    assert isaac_three.totals["crossbars"] - isaac_one.totals["crossbars"] == 5
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
    assert moved.totals["crossbars"] - base.totals["crossbars"] == 2  # 16x32 and 32x64: one crossbar each
    assert moved.totals["macs_crossbar"] - base.totals["macs_crossbar"] == 2 * 131_072

    base, moved = cost.isaac_cost("mobilenetv2"), cost.isaac_cost("mobilenetv2", policy="1x1-on-crossbar")
    point_wise = [r for r in cost.count_layers("mobilenetv2") if r.kind == "conv" and r.kernel == 1]
    expected = sum(math.ceil(r.rows / 128) * math.ceil(r.cols / 128) for r in point_wise)
    assert expected > 0 and moved.totals["crossbars"] - base.totals["crossbars"] == expected
    assert moved.totals["macs_processor"] == 1280 * 10  # only the classifier remains
    assert moved.totals["energy_processor_uj"] < base.totals["energy_processor_uj"]

    # VGG13's classifier: 512x512 -> 16, 512x512 -> 16, 512x10 -> 4 crossbars
    base, moved = cost.isaac_cost("vgg13"), cost.isaac_cost("vgg13", policy="linear-on-crossbar")
    assert moved.totals["crossbars"] - base.totals["crossbars"] == 36


def test_imas_tiles_and_chips_follow_isaacs_hierarchy():
    report = cost.isaac_cost("vgg13", 1.6)
    assert all(r.imas == math.ceil(r.crossbars / 8) for r in report.layers if r.device == "crossbar")
    assert report.totals["imas"] == sum(r.imas for r in report.layers)
    assert report.totals["tiles"] == math.ceil(report.totals["imas"] / 12)
    assert report.totals["chips"] == 1
    tiny = cost.isaac_cost("vgg13", 1.6, xbar_size=16)  # many more crossbars: needs several chips
    assert tiny.totals["chips"] == math.ceil(tiny.totals["tiles"] / 168) > 1
    assert tiny.energy_by_component_uj["links"] > 0
    assert report.energy_by_component_uj["links"] == 0  # one chip: no chip-to-chip links


def test_isaac_crossbars_and_energy_grow_with_width():
    reports = [cost.isaac_cost("vgg13", w) for w in cost.TABLE_WIDTHS]
    xbars = [r.totals["crossbars"] for r in reports]
    energy = [r.totals["energy_uj"] for r in reports]
    assert xbars == sorted(xbars) and energy == sorted(energy) and len(set(energy)) == 4
    # crossbars grow roughly as w^2 (rounding up to whole crossbars adds a little)
    assert 1.6**2 * 0.9 < xbars[-1] / xbars[0] < 1.6**2 * 1.25


# ---- isaac mode: timing and energy ----


def test_crossbar_layer_latency_is_positions_times_input_bits_cycles():
    report = cost.isaac_cost("resnet20")
    assert layer(report, "conv1").latency_ns == 32 * 32 * 8 * 100.0
    assert layer(report, "layer3.0.conv1").latency_ns == 8 * 8 * 8 * 100.0
    assert layer(cost.isaac_cost("resnet20", input_bits=16), "conv1").latency_ns == 32 * 32 * 16 * 100.0


def test_crossbar_layer_energy_from_table_6_powers():
    # conv1 of ResNet20: 1 crossbar, 1 IMA, busy 819.2 us
    xbar_mw = (16.0 + 4.0 + 0.01 + 2.4) / 8  # ADC, DACs, sample-and-hold, array of one crossbar
    ima_mw = 0.2 + 1.24 + 0.23  # shift-and-add, input and output registers
    tile_mw = (20.7 + 7.0 + 42 / 4 + 0.52 + 0.05 + 0.4 + 1.68) / 12  # one IMA's share of the tile
    expected_uj = (xbar_mw + ima_mw + tile_mw) * 819.2e-6 * 1e3
    assert layer(cost.isaac_cost("resnet20"), "conv1").energy_uj == pytest.approx(expected_uj, rel=1e-9)


def test_processor_layers_use_the_processor_model():
    report = cost.isaac_cost("resnet20", processor=cost.Processor(macs_per_s=1e9, pj_per_mac=10.0))
    fc = layer(report, "fc")
    assert fc.device == "processor" and fc.crossbars == 0
    assert fc.latency_ns == pytest.approx(640 / 1e9 * 1e9)
    assert fc.energy_uj == pytest.approx(640 * 10.0e-6)


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
    assert out["paper"]["totals"]["latency_ns"] == pytest.approx(22.13, rel=1e-3)
    assert out["isaac"]["totals"]["crossbars"] > 0


def test_cli_prints_layers_and_totals(capsys):
    argv = ["cost", "--network", "resnet20", "--cost-model", "isaac", "--mapping", "1x1-on-crossbar"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "layer2.0.shortcut.0" in out and "isaac:" in out and "paper:" not in out


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
    assert rows[0]["paper_latency_ns"] == pytest.approx(15.74, rel=1e-3)
    assert rows[1]["isaac_energy_uj"] > rows[0]["isaac_energy_uj"]
    print_table(rows)
    assert "15.74" in capsys.readouterr().out
