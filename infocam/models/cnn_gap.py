"""A small CNN with global average pooling and a linear head: the CAM-ready classifier of chapter 4.

Layout (for a 1×S×S input): conv 3×3 stride 2 → conv 3×3 → max-pool 2 → conv 3×3 → conv 3×3,
giving ``features`` of size (widths[-1], S/4, S/4) — 14×14 on a 56-pixel canvas, the grid the paper's
VGG16-GAP has on 224-pixel CUB images — then global average pooling and ``fc`` (linear, bias).
``adl=True`` inserts an :class:`~infocam.models.adl.ADL` layer after the pooled block and after
the last conv block (Choe & Shim place ADL after the late conv blocks), active at train time only.

CAM target layer: ``"features"``; linear head: ``"fc"``. Used in chapter 4.
"""

from __future__ import annotations

from torch import nn

from infocam.models.adl import ADL


def _conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class CNNGAP(nn.Module):
    """Conv features → GAP → linear: logits f_y = mean_g M_y(g) + b_y exactly (CAM's premise)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, widths=(16, 32, 64, 64),
                 adl: bool = False, drop_rate: float = 0.75, gamma: float = 0.9):
        super().__init__()
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"widths must be four positive channel counts, got {widths}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        w1, w2, w3, w4 = widths
        layers = [*_conv(in_channels, w1, stride=2), *_conv(w1, w2), nn.MaxPool2d(2)]
        if adl:
            layers.append(ADL(drop_rate, gamma))
        layers += [*_conv(w2, w3), *_conv(w3, w4)]
        if adl:
            layers.append(ADL(drop_rate, gamma))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w4, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))
