import pytest
import torch

from dse.core.crossbar.mapping import MappingPolicy, POLICIES, crossbar_layers
from dse.core.errors import DSEError
from dse.core.models import build_model


def test_resnet20_default_has_19_crossbar_convs_and_nothing_else():
    m = build_model("resnet20")
    layers = crossbar_layers(m)
    assert len(layers) == 19
    assert all(isinstance(x, torch.nn.Conv2d) and x.kernel_size == (3, 3) for x in layers.values())
    assert "fc" not in layers and "layer2.0.shortcut.0" not in layers


def test_resnet20_1x1_on_crossbar_adds_the_two_shortcuts():
    layers = crossbar_layers(build_model("resnet20"), "1x1-on-crossbar")
    assert len(layers) == 21
    assert {"layer2.0.shortcut.0", "layer3.0.shortcut.0"} <= set(layers)


def test_3x3_shortcuts_live_on_the_crossbar_by_default():
    layers = crossbar_layers(build_model("resnet20", shortcut_kernel=3))
    assert len(layers) == 21 and "layer3.0.shortcut.0" in layers


def test_linear_policy():
    layers = crossbar_layers(build_model("vgg13"), "linear-on-crossbar")
    assert sum(isinstance(x, torch.nn.Linear) for x in layers.values()) == 3
    assert len(crossbar_layers(build_model("vgg13"))) == 10


def test_mobilenetv2_pointwise_off_depthwise_on():
    m = build_model("mobilenetv2")
    layers = crossbar_layers(m)
    assert len(layers) == 18  # stem + 17 depth-wise convs
    assert all(x.kernel_size == (3, 3) for x in layers.values())
    all_1x1 = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d) and x.kernel_size == (1, 1)]
    assert len(crossbar_layers(m, "1x1-on-crossbar")) == 18 + len(all_1x1)


def test_policy_names_round_trip_and_bad_name():
    for name, policy in POLICIES.items():
        assert MappingPolicy.parse(name).name == name == policy.name
    with pytest.raises(DSEError, match="unknown mapping policy 'everything'"):
        MappingPolicy.parse("everything")
