"""VGG16-GAP, the paper's CUB / Tiny-ImageNet localisation network (after Zhou et al. 2016).

VGG16's 13 conv layers without pool5 (14×14 maps at 224 px), then ``conv6`` (3×3, 512 → 1024, ReLU),
global average pooling and a linear ``fc``: the CAM premise f_y = mean_g M_y(g) + b_y holds exactly.
``adl=True`` inserts :class:`~infocam.models.adl.ADL` after pool3, pool4 and conv5_3 (drop rate 0.75,
γ 0.8; identity at eval), the paper's infoCAM+ network. ``conv6`` and ``fc`` are new layers
(``new_layers``: 10× learning rate in the paper's recipe); the conv layers take torchvision's
ImageNet weights. CAM target layer ``"features"``, head ``"fc"``. Used in chapter 5 and ``infocam train``.
"""

from __future__ import annotations

from torch import nn

from infocam.models.adl import ADL, ADL_DROP_RATE, ADL_GAMMA
from infocam.models.pretrained import imagenet_state_dict, load_into

# Indices in torchvision's vgg16().features: pool3 = 16, pool4 = 23, ReLU after conv5_3 = 29, pool5 = 30.
_ADL_AFTER = (16, 23, 29)


class VGG16GAP(nn.Module):
    """VGG16 conv layers (no pool5) → conv6 3×3 512→1024 + ReLU → GAP → linear (``num_classes``)."""

    new_layers = ("conv6", "fc")

    def __init__(self, num_classes: int = 200, *, adl: bool = False, drop_rate: float = ADL_DROP_RATE,
                 gamma: float = ADL_GAMMA["vgg16_gap"], pretrained: bool = False, weights_path=None,
                 data_root=None, download: bool = False):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        base = nn.Module()  # torchvision's vgg16 without its 120M-parameter classifier, which CAM drops
        base.features = make_layers(cfgs["D"])
        if pretrained:
            state = imagenet_state_dict("vgg16", weights_path, data_root, download)
            features = {k: v for k, v in state.items() if k.startswith("features.")}  # classifier unused
            load_into(base, features or state, "vgg16", f"weights {weights_path or 'vgg16 ImageNet'}")
        layers = []
        for i, layer in enumerate(list(base.features)[:30]):  # drop pool5
            layers.append(layer)
            if adl and i in _ADL_AFTER:
                layers.append(ADL(drop_rate, gamma))
        self.body = nn.Sequential(*layers)
        self.conv6 = nn.Conv2d(512, 1024, kernel_size=3, padding=1)
        self.relu6 = nn.ReLU(inplace=True)
        self.features = nn.Sequential(self.body, self.conv6, self.relu6)
        self.fc = nn.Linear(1024, num_classes)
        nn.init.kaiming_normal_(self.conv6.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.conv6.bias)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))
