"""The networks of the explorer: ResNet20, VGG13 (BN) and MobileNetV2, CIFAR-10 variants, one builder per
network declared in dse/domain/networks.py (a missing one fails here, at import)."""
from dse.core.models import mobilenetv2, resnet, vgg  # noqa: F401  (registers the builders)
from dse.core.models._registry import build_model, check_complete, list_models

check_complete()

__all__ = ["build_model", "list_models"]
