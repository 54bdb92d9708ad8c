"""VGG13 with BatchNorm for CIFAR-10, as the paper used it: convs with bias, a 3-layer classifier."""
from __future__ import annotations

from torch import Tensor, nn

from dse.core.models._registry import register_model, scaled

# conv output channels, "M" = 2x2 max-pool (torchvision's configuration "B")
VGG13_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, cfg: list[int | str], width: float = 1.0, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                cout = scaled(int(v), width)
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
        self.features = nn.Sequential(*layers)
        # hidden width 512 is not widened: the paper's Table II counts match Linear(512w, 512)
        self.classifier = nn.Sequential(
            nn.Linear(cin, 512), nn.ReLU(inplace=True),
            nn.Linear(512, 512), nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # 32x32 -> 1x1 after five pools
        return self.classifier(x.flatten(1))


@register_model("vgg13")
def vgg13(*, width: float = 1.0, shortcut_kernel: int = 1) -> VGG:
    return VGG(VGG13_CFG, width=width)
