"""Attention-based Dropout Layer (ADL; Choe & Shim, CVPR 2019).

Inserted after a conv block, ADL looks at the channel-mean attention A = mean_c F_c (N, 1, h, w)
and, at train time only, multiplies the features by one of two maps:

* with probability ``drop_rate`` the *drop mask* 1[A < γ·max A] (per sample), which hides the
  most discriminative region so the network must use the rest of the object;
* otherwise the *importance map* sigmoid(A), which stresses the informative region.

One draw per forward call (as in the authors' code). At eval time ADL is the identity, so it adds
no parameters and no test-time cost. infoCAM on an ADL-trained network is the paper's infoCAM+.

Used in chapter 4.
"""

from __future__ import annotations

import torch
from torch import nn


class ADL(nn.Module):
    """ADL with drop probability ``drop_rate`` (0.75) and drop threshold ``gamma`` (0.9)."""

    def __init__(self, drop_rate: float = 0.75, gamma: float = 0.9):
        super().__init__()
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"ADL drop_rate must lie in [0, 1], got {drop_rate}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"ADL gamma (drop threshold) must lie in [0, 1], got {gamma}")
        self.drop_rate, self.gamma = float(drop_rate), float(gamma)

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, gamma={self.gamma}"

    @staticmethod
    def attention(x: torch.Tensor) -> torch.Tensor:
        """Channel-mean self-attention map A (N, 1, h, w)."""
        return x.mean(dim=1, keepdim=True)

    def drop_mask(self, attention: torch.Tensor) -> torch.Tensor:
        """1 where A < γ·max A (per sample), 0 on the most-activated region."""
        peak = attention.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
        return (attention < self.gamma * peak).to(attention.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if x.dim() != 4:
            raise ValueError(f"ADL expects conv features (N, C, h, w), got shape {tuple(x.shape)}")
        attention = self.attention(x)
        if float(torch.rand(())) < self.drop_rate:
            return x * self.drop_mask(attention)
        return x * torch.sigmoid(attention)


# Where the paper (after Choe & Shim) puts ADL, and its drop threshold γ, per backbone (drop rate 0.75).
ADL_POSITIONS = {
    "vgg16_gap": ("pool3", "pool4", "conv5_3"),
    "resnet50": ("layer3.0", "layer4.0", "layer4.2"),
}
ADL_GAMMA = {"vgg16_gap": 0.8, "resnet50": 0.9}
ADL_DROP_RATE = 0.75
