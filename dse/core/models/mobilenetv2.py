"""MobileNetV2 (Sandler et al. 2018), CIFAR variant: stride 1 in the stem and in the 24-channel stage,
so 32x32 inputs end at 4x4 rather than 1x1."""
from __future__ import annotations

from torch import Tensor, nn

from dse.core.models._registry import register_model, scaled


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu(cin, hidden, 1))  # point-wise expansion
        layers += [
            conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),  # depth-wise
            nn.Conv2d(hidden, cout, 1, bias=False),  # point-wise linear projection
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    # t (expansion), c (output channels), n (repeats), s (first stride); CIFAR: s=1 for c=24
    SETTINGS = [
        [1, 16, 1, 1],
        [6, 24, 2, 1],
        [6, 32, 3, 2],
        [6, 64, 4, 2],
        [6, 96, 3, 1],
        [6, 160, 3, 2],
        [6, 320, 1, 1],
    ]

    def __init__(self, width: float = 1.0, num_classes: int = 10):
        super().__init__()
        cin = scaled(32, width)
        last = scaled(1280, width)
        features: list[nn.Module] = [conv_bn_relu(3, cin, 3, stride=1)]
        for t, c, n, s in self.SETTINGS:
            cout = scaled(c, width)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(conv_bn_relu(cin, last, 1))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        return self.classifier(self.pool(x).flatten(1))


@register_model("mobilenetv2")
def mobilenetv2(*, width: float = 1.0, shortcut_kernel: int = 1) -> MobileNetV2:
    return MobileNetV2(width=width)
