"""CIFAR-style ResNets (He et al. 2016): 3x3 stride-1 stem, no max-pool, four stages.

This is the ResNet-18/34 used as proxy and target model by ELFS, CCS and TDDS on CIFAR-10/100 and
STL-10. With the default ``width=64`` the stages have 64-128-256-512 channels; a smaller ``width``
scales every stage proportionally for CPU-sized recipes.
"""

from __future__ import annotations

import torch
from torch import nn

from coreset_lab.models.init import init_conv_bn


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; identity shortcut, or 1x1 conv + BN when the shape changes."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet with BasicBlocks for small images; spatial size is divided by 8 over the stages."""

    def __init__(
        self,
        num_blocks: tuple[int, int, int, int],
        num_classes: int,
        in_channels: int = 3,
        width: int = 64,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        in_planes = width
        stages = []
        for i, n in enumerate(num_blocks):
            planes = width * 2**i
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        self.num_features = in_planes

        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features, [B, num_features]."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def cifar_resnet18(num_classes: int, in_channels: int = 3, width: int = 64) -> CifarResNet:
    return CifarResNet((2, 2, 2, 2), num_classes, in_channels, width)


def cifar_resnet34(num_classes: int, in_channels: int = 3, width: int = 64) -> CifarResNet:
    return CifarResNet((3, 4, 6, 3), num_classes, in_channels, width)
