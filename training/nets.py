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
    """len(widths) levels, each halving the size: inputs need sides divisible by 2 ** (len(widths) - 1).

    With `global_context`, the bottom level's features averaged over the whole input pass through a 1x1
    convolution and are added back at every position: its 3x3 convolutions see ~60 px of a 128 px crop, and what
    one position cannot see (the light's colour against the skin's, judged from the whole subject) then reaches
    all of them. That convolution starts at zero, so the net computes what it did without it (a net trained
    before it existed warm-starts unchanged: `fresh_prefixes`)."""

    fresh_prefixes: tuple[str, ...] = ("context.",)  # parameters an older export may lack (training/warm_start.py)

    def __init__(self, in_channels: int, out_channels: int, widths: tuple[int, ...] = (24, 48, 96, 192),
                 global_context: bool = False):
        super().__init__()
        self.down = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.down.append(_block(channels, width))
            channels = width
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        self.pool = nn.MaxPool2d(2)
        self.context = nn.Conv2d(widths[-1], widths[-1], 1) if global_context else None
        if self.context is not None:
            nn.init.zeros_(self.context.weight)
            nn.init.zeros_(self.context.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        if self.context is not None:
            x = x + self.context(x.mean(dim=(2, 3), keepdim=True))
        for block in self.up:
            skip = skips.pop()
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
