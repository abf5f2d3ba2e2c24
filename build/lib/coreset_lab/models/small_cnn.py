"""A small CPU-friendly conv net for tiny images (8 px digits, 28 px Fashion-MNIST, 32 px)."""

from __future__ import annotations

import torch
from torch import nn

from coreset_lab.models.init import init_conv_bn


class SmallCNN(nn.Module):
    """``depth`` blocks of conv3x3-BN-ReLU (``width * 2**i`` channels), then GAP and a linear head.

    A 2x2 max-pool follows a block only while the feature map (computed from ``image_size``) is at
    least 2 px, so 8x8 inputs with depth 3 go 8 -> 4 -> 2 -> 1 and never pool below 1 px. Inputs of
    another size still work (the head sits behind a global average pool).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        image_size: int = 32,
        width: int = 32,
        depth: int = 3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels_in = in_channels
        size = image_size
        for i in range(depth):
            channels_out = width * 2**i
            layers += [
                nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(channels_out),
                nn.ReLU(inplace=True),
            ]
            if size >= 2:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                size //= 2
            channels_in = channels_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels_in, num_classes)
        self.num_features = channels_in

        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features, [B, num_features]."""
        return torch.flatten(self.pool(self.features(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))
