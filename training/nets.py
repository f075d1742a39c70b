"""Small nets that train on this CPU: a U-Net of plain 3x3 convolutions (fast on CPU, exports to any ONNX
runtime), GroupNorm rather than BatchNorm (batches of a few crops; no train/eval statistics to drift)."""

from __future__ import annotations

import torch
from torch import nn


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1), nn.GroupNorm(min(8, outputs // 4), outputs), nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 3, padding=1), nn.GroupNorm(min(8, outputs // 4), outputs), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """len(widths) levels, each halving the size: inputs need sides divisible by 2 ** (len(widths) - 1)."""

    def __init__(self, in_channels: int, out_channels: int, widths: tuple[int, ...] = (24, 48, 96, 192)):
        super().__init__()
        self.down = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.down.append(_block(channels, width))
            channels = width
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
