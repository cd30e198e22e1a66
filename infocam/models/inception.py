"""Inception-V3 with a new linear head: the paper's CUB classifier (chapter 3's ``paper`` profile).

torchvision's Inception-V3 up to ``Mixed_7c`` (2048 × 8 × 8 maps at 299 px; ImageNet weights from
:mod:`infocam.models.pretrained`), global average pooling, dropout and a new linear ``fc``
(``new_layers``). No auxiliary classifier. CAM target ``"features"``, head ``"fc"``.
"""

from __future__ import annotations

import torch
from torch import nn

from infocam.models.pretrained import imagenet_state_dict, load_into

_TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
          "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
          "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")


class _TransformInput(nn.Module):
    """torchvision's input re-normalisation that its ImageNet Inception weights expect."""

    def forward(self, x):
        mean_std = zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        return torch.cat([x[:, i : i + 1] * (s / 0.5) + (m - 0.5) / 0.5 for i, (m, s) in enumerate(mean_std)], 1)


class InceptionV3(nn.Module):
    """Inception-V3 trunk → GAP → dropout → linear (``num_classes``)."""

    new_layers = ("fc",)

    def __init__(self, num_classes: int = 200, *, pretrained: bool = False, weights_path=None, data_root=None,
                 download: bool = False, dropout: float = 0.5):
        super().__init__()
        from torchvision.models import inception_v3

        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        base = inception_v3(weights=None, aux_logits=True, init_weights=False)
        if pretrained:
            load_into(base, imagenet_state_dict("inception_v3", weights_path, data_root, download), "inception_v3",
                      f"weights {weights_path or 'inception_v3 ImageNet'}")
        prefix = [_TransformInput()] if pretrained else []
        self.features = nn.Sequential(*prefix, *(getattr(base, name) for name in _TRUNK))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(self.features(x).mean(dim=(2, 3))))
