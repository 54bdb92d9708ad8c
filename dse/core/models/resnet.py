"""ResNet20 for CIFAR-10 (He et al. 2016, option B shortcuts), with a widening factor and a choice of
shortcut kernel (1x1 as usual, or 3x3 so the shortcut can live on the crossbar, as in the paper)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dse.core.models._registry import register_model, scaled


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding."""
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, shortcut_kernel: int):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            # projection shortcut; padding keeps the 3x3 variant aligned with the 1x1 one
            k = shortcut_kernel
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
                nn.BatchNorm2d(cout),
            )

    def forward(self, x: Tensor) -> Tensor:
        # functional relu, as the paper's ResNet20 (this decides its ptflops count, see dse/cost.py)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


class ResNet20(nn.Module):
    def __init__(self, width: float = 1.0, shortcut_kernel: int = 1, num_classes: int = 10):
        super().__init__()
        c1, c2, c3 = (scaled(c, width) for c in (16, 32, 64))
        self.conv1 = conv3x3(3, c1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.layer1 = self._stage(c1, c1, 1, shortcut_kernel)
        self.layer2 = self._stage(c1, c2, 2, shortcut_kernel)
        self.layer3 = self._stage(c2, c3, 2, shortcut_kernel)
        self.fc = nn.Linear(c3, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(cin: int, cout: int, stride: int, shortcut_kernel: int) -> nn.Sequential:
        blocks = [BasicBlock(cin, cout, stride, shortcut_kernel)]
        blocks += [BasicBlock(cout, cout, 1, shortcut_kernel) for _ in range(2)]
        return nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


@register_model("resnet20")
def resnet20(*, width: float = 1.0, shortcut_kernel: int = 1) -> ResNet20:
    return ResNet20(width=width, shortcut_kernel=shortcut_kernel)
