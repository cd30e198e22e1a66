"""EfficientNet-Lite0 as a trainable CAM network: frozen up to a named stage, fine-tuned above it.

Built on :func:`infocam.models.backbones.split_lite0`: the stem and the stages before
``trainable_from`` stay frozen (eval mode, no gradients, also while the network trains), the stages
from ``trainable_from`` on and the 1280-channel head conv train, and a new linear ``fc`` (1280 →
``num_classes``, ``new_layers``) replaces the ImageNet head. ``trainable_from="stage1"`` trains the whole
network end to end. Lite0's ImageNet weights ship with pip, so this works offline. CAM target
``"features"`` (7×7 maps at 224 px), head ``"fc"``. Used in chapter 5 and ``infocam train``.
"""

from __future__ import annotations

from torch import nn

from infocam.models.backbones import LITE0_STAGES, efficientnet_lite0, split_lite0


class _Features(nn.Module):
    def __init__(self, frozen: nn.Module, top: nn.Module):
        super().__init__()
        self.frozen, self.top = frozen, top

    def forward(self, x):
        return self.top.features(self.frozen(x))


class Lite0CAM(nn.Module):
    """Lite0 trunk (frozen before ``trainable_from``) → trainable stages + head conv → GAP → dropout → new fc."""

    new_layers = ("fc",)

    def __init__(self, num_classes: int = 200, *, trainable_from: str = "stage7", pretrained: bool = True,
                 image_size: int = 224, dropout: float = 0.2):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        allowed = LITE0_STAGES + ("head",)
        if trainable_from not in allowed:
            raise ValueError(f"trainable_from={trainable_from!r} is not a stage of EfficientNet-Lite0; "
                             f"choose one of {allowed}")
        base = efficientnet_lite0(pretrained, image_size)
        if trainable_from == "stage1":  # end to end: nothing frozen
            frozen, top = nn.Identity(), _EndToEnd(base)
        else:
            frozen, top = split_lite0(base, trainable_from)
        base._fc.requires_grad_(False)  # the ImageNet head is replaced by fc (unused, so DDP must not wait for it)
        self.trainable_from = trainable_from
        self.features = _Features(frozen, top)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        self.features.frozen.eval()  # frozen BatchNorm statistics stay ImageNet's
        return self

    def forward(self, x):
        return self.fc(self.dropout(self.features(x).mean(dim=(2, 3))))


class _EndToEnd(nn.Module):
    """The whole Lite0 (stem, every stage, head conv) as a trainable top."""

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(True)

    def features(self, x):
        return self.base.extract_features(x)
