"""The networks of the explorer: ResNet20, VGG13 (BN) and MobileNetV2, CIFAR-10 variants."""
from dse.core.models import mobilenetv2, resnet, vgg  # noqa: F401  (registers the builders)
from dse.core.models._registry import (
    build_model,
    check_network,
    check_width,
    list_models,
    shortcut_kernels,
)

__all__ = ["build_model", "check_network", "check_width", "list_models", "shortcut_kernels"]
