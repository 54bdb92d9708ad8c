import pytest
import torch

from dse.domain.errors import DSEError
from dse.core.models import build_model, list_models
from dse.domain.networks import NETWORKS, SHORTCUT_KERNELS

WIDTHS = [1.0, 1.2, 1.4, 1.6]


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_registry_lists_the_three_networks():
    assert list_models() == ["mobilenetv2", "resnet20", "vgg13"]


def test_every_declared_network_builds_with_each_of_its_shortcut_kernels():
    """dse/domain/networks.py declares the names and kernels once; the registry builds exactly those."""
    assert sorted(NETWORKS) == list_models()
    for name, kernels in SHORTCUT_KERNELS.items():
        for k in kernels:
            assert isinstance(build_model(name, 1.0, k), torch.nn.Module)
        with pytest.raises(DSEError, match="shortcut kernel 5 is not available"):
            build_model(name, 1.0, 5)


def test_a_builder_for_an_undeclared_network_fails_at_registration():
    from dse.core.models._registry import check_complete, register_model

    with pytest.raises(RuntimeError, match="not declared in dse/domain/networks.py"):
        register_model("lenet")(lambda **kw: None)
    with pytest.raises(RuntimeError, match="registered twice"):
        register_model("vgg13")(lambda **kw: None)
    check_complete()  # the declared networks all have builders


def test_a_declared_network_without_a_builder_fails(monkeypatch):
    from dse.core.models import _registry

    monkeypatch.setitem(SHORTCUT_KERNELS, "lenet", (1,))
    with pytest.raises(RuntimeError, match="declared without a builder: lenet"):
        _registry.check_complete()


@pytest.mark.parametrize("name", ["resnet20", "vgg13", "mobilenetv2"])
@pytest.mark.parametrize("width", WIDTHS)
def test_forward_shape_and_finite(name, width):
    torch.manual_seed(0)
    m = build_model(name, width).eval()
    out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_resnet20_parameter_count_is_the_classic_0_27m():
    # He et al. report 0.27M parameters for ResNet20 (with 1x1 projection shortcuts here)
    assert n_params(build_model("resnet20")) == 272_474


def test_widths_use_int_c_times_w():
    m = build_model("resnet20", 1.4)
    assert m.conv1.out_channels == int(16 * 1.4) == 22
    assert m.layer2[0].conv1.out_channels == int(32 * 1.4)
    assert m.fc.in_features == int(64 * 1.4) == 89
    v = build_model("vgg13", 1.2)
    convs = [c for c in v.modules() if isinstance(c, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [int(c * 1.2) for c in (64, 64, 128, 128, 256, 256, 512, 512, 512, 512)]
    assert v.classifier[0].in_features == int(512 * 1.2) and v.classifier[0].out_features == 512


@pytest.mark.parametrize("name", ["resnet20", "vgg13", "mobilenetv2"])
def test_parameters_grow_with_width(name):
    counts = [n_params(build_model(name, w)) for w in WIDTHS]
    assert counts == sorted(counts) and len(set(counts)) == 4


def test_vgg13_has_biased_convs_and_three_linears():
    v = build_model("vgg13")
    convs = [c for c in v.modules() if isinstance(c, torch.nn.Conv2d)]
    assert len(convs) == 10 and all(c.bias is not None for c in convs)
    assert sum(isinstance(x, torch.nn.Linear) for x in v.modules()) == 3


def test_mobilenetv2_cifar_strides():
    m = build_model("mobilenetv2")
    assert m.features[0][0].stride == (1, 1)
    # stage of 24 channels (blocks 2 and 3) keeps the resolution on CIFAR
    assert m.features[2].conv[1][0].stride == (1, 1)
    x = m.features(torch.randn(1, 3, 32, 32))
    assert x.shape[-2:] == (4, 4)


def test_shortcut_kernel_three():
    m = build_model("resnet20", shortcut_kernel=3)
    sc = m.layer2[0].shortcut[0]
    assert sc.kernel_size == (3, 3) and sc.padding == (1, 1) and sc.stride == (2, 2)
    assert n_params(m) - n_params(build_model("resnet20")) == (16 * 32 + 32 * 64) * 8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="resnet50"), "unknown network 'resnet50'"),
        (dict(name="resnet20", width=0), "width must be a positive finite number, got 0"),
        (dict(name="resnet20", width=-1.2), "positive finite"),
        (dict(name="resnet20", width=float("nan")), "positive finite"),
        (dict(name="resnet20", width="abc"), "got 'abc'"),
        (dict(name="resnet20", width=0.01), "leaves a layer"),
        (dict(name="resnet20", shortcut_kernel=5), "shortcut kernel 5"),
        (dict(name="vgg13", shortcut_kernel=3), "not available for vgg13"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(DSEError, match=match):
        build_model(**kwargs)
