"""ResNet-50 for CAM: layer4 with stride 1 (14×14 maps at 224 px), global average pooling, linear head.

As in the paper's (and wsolevaluation's) ResNet-50, the first block of layer4 keeps stride 1, so the
final maps are twice as fine as torchvision's 7×7. ``adl=True`` inserts
:class:`~infocam.models.adl.ADL` after layer3 block 0 and layer4 blocks 0 and 2 (drop rate 0.75,
γ 0.9). ``fc`` is the new layer (10× learning rate in the paper's recipe); the rest takes
torchvision's ImageNet weights. CAM target ``"features"``, head ``"fc"``. Used in chapter 5 and
``infocam train``.
"""

from __future__ import annotations

from torch import nn

from infocam.models.adl import ADL, ADL_DROP_RATE, ADL_GAMMA
from infocam.models.pretrained import imagenet_state_dict, load_into

_ADL_AFTER = {"layer3": (0,), "layer4": (0, 2)}


class ResNet50CAM(nn.Module):
    """torchvision ResNet-50 (layer4 stride 1, optional ADL) → GAP → linear (``num_classes``)."""

    new_layers = ("fc",)

    def __init__(self, num_classes: int = 200, *, adl: bool = False, drop_rate: float = ADL_DROP_RATE,
                 gamma: float = ADL_GAMMA["resnet50"], pretrained: bool = False, weights_path=None,
                 data_root=None, download: bool = False):
        super().__init__()
        from torchvision.models import resnet50

        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        base = resnet50(weights=None)
        if pretrained:
            load_into(base, imagenet_state_dict("resnet50", weights_path, data_root, download), "resnet50",
                      f"weights {weights_path or 'resnet50 ImageNet'}")
        block = base.layer4[0]
        block.conv2.stride = (1, 1)
        block.downsample[0].stride = (1, 1)
        stages = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            blocks = []
            for i, b in enumerate(getattr(base, name)):
                blocks.append(b)
                if adl and i in _ADL_AFTER.get(name, ()):
                    blocks.append(ADL(drop_rate, gamma))
            stages.append(nn.Sequential(*blocks))
        stem = nn.Sequential(base.conv1, base.bn1, base.relu, base.maxpool)
        self.features = nn.Sequential(stem, *stages)
        self.fc = nn.Linear(2048, num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))
