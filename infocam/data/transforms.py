"""Image transforms that carry the boxes with the image.

Every transform is a callable ``(image, boxes) -> (image, boxes)`` on an image tensor (C, H, W)
(uint8 or float, any channel count) and boxes (k, 4) as ``x0, y0, x1, y1`` in continuous pixel
coordinates (pixel column i covers [i, i + 1)), so a box keeps covering the same pixels after the
image is resized, cropped or flipped. Random transforms draw from torch's global RNG (in a
``DataLoader`` worker that RNG is seeded per worker), so a seeded run repeats.

:func:`train_transform` and :func:`eval_transform` are the paper's pipelines (resize to 256, random
crop 224 and horizontal flip for training; resize to 224×224 for evaluation). Used in chapter 5 and
by ``infocam train``.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import functional as TF


def xywh_to_xyxy(boxes) -> torch.Tensor:
    """Boxes ``x, y, w, h`` (CUB's ``bounding_boxes.txt``) → ``x0, y0, x1, y1``."""
    b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)


def _size(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _crop_boxes(boxes: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    shifted = boxes - torch.tensor([left, top, left, top], dtype=boxes.dtype)
    return torch.stack([shifted[:, 0].clamp(0, width), shifted[:, 1].clamp(0, height),
                        shifted[:, 2].clamp(0, width), shifted[:, 3].clamp(0, height)], dim=1)


def _resize_boxes(boxes: torch.Tensor, old_hw, new_hw) -> torch.Tensor:
    sy, sx = new_hw[0] / old_hw[0], new_hw[1] / old_hw[1]
    return boxes * torch.tensor([sx, sy, sx, sy], dtype=boxes.dtype)


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, boxes):
        for t in self.transforms:
            image, boxes = t(image, boxes)
        return image, boxes

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


class Resize:
    """Resize to ``size`` = (h, w), or an int: the shorter side to ``size`` (aspect kept)."""

    def __init__(self, size, keep_aspect: bool | None = None):
        self.size = size
        self.keep_aspect = isinstance(size, int) if keep_aspect is None else keep_aspect

    def target(self, h: int, w: int) -> tuple[int, int]:
        if not self.keep_aspect:
            return _size(self.size)
        s = self.size
        return (s, max(1, round(w * s / h))) if h <= w else (max(1, round(h * s / w)), s)

    def __call__(self, image, boxes):
        old = image.shape[-2:]
        new = self.target(*old)
        return TF.resize(image, list(new), antialias=True), _resize_boxes(boxes, old, new)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class CenterCrop:
    """Crop the central ``size`` (int or (h, w)); boxes are clipped to the crop."""

    def __init__(self, size):
        self.size = _size(size)

    def __call__(self, image, boxes):
        H, W = image.shape[-2:]
        h, w = self.size
        if h > H or w > W:
            raise ValueError(f"CenterCrop {self.size} is larger than the image ({H}×{W}); resize first")
        top, left = (H - h) // 2, (W - w) // 2
        return image[..., top : top + h, left : left + w], _crop_boxes(boxes, top, left, h, w)


class RandomCrop:
    """Crop a random ``size`` window (uniform position); boxes are shifted and clipped."""

    def __init__(self, size):
        self.size = _size(size)

    def __call__(self, image, boxes):
        H, W = image.shape[-2:]
        h, w = self.size
        if h > H or w > W:
            raise ValueError(f"RandomCrop {self.size} is larger than the image ({H}×{W}); resize first")
        top = int(torch.randint(0, H - h + 1, ()))
        left = int(torch.randint(0, W - w + 1, ()))
        return image[..., top : top + h, left : left + w], _crop_boxes(boxes, top, left, h, w)


class RandomResizedCrop:
    """Inception-style crop: random area fraction ``scale`` and aspect ``ratio``, resized to ``size``."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size, self.scale, self.ratio = _size(size), scale, ratio

    def params(self, H: int, W: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) of the crop, as torchvision's RandomResizedCrop draws it."""
        area = H * W
        log_ratio = torch.log(torch.tensor(self.ratio))
        for _ in range(10):
            target = area * torch.empty(1).uniform_(*self.scale).item()
            aspect = math.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1]).item())
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= W and 0 < h <= H:
                top = int(torch.randint(0, H - h + 1, ()))
                left = int(torch.randint(0, W - w + 1, ()))
                return top, left, h, w
        in_ratio = W / H  # fallback: the central crop of the extreme allowed aspect
        if in_ratio < min(self.ratio):
            w, h = W, round(W / min(self.ratio))
        elif in_ratio > max(self.ratio):
            h, w = H, round(H * max(self.ratio))
        else:
            w, h = W, H
        return (H - h) // 2, (W - w) // 2, h, w

    def __call__(self, image, boxes):
        top, left, h, w = self.params(*image.shape[-2:])
        image = TF.resize(image[..., top : top + h, left : left + w], list(self.size), antialias=True)
        return image, _resize_boxes(_crop_boxes(boxes, top, left, h, w), (h, w), self.size)


class RandomHorizontalFlip:
    """Mirror left–right with probability ``p``: x0, x1 → W − x1, W − x0."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, boxes):
        if float(torch.rand(())) >= self.p:
            return image, boxes
        W = image.shape[-1]
        return image.flip(-1), torch.stack([W - boxes[:, 2], boxes[:, 1], W - boxes[:, 0], boxes[:, 3]], dim=1)


class Normalize:
    """uint8 (0..255) or float (0..1) image → float32 ``(x - mean) / std`` per channel; boxes unchanged."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image, boxes):
        x = image.float() / 255 if image.dtype == torch.uint8 else image.float()
        return (x - self.mean) / self.std, boxes


IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def train_transform(size: int = 224, resize: int = 256, mean_std=IMAGENET_MEAN_STD, kind: str = "crop") -> Compose:
    """Training pipeline: resize to ``resize``×``resize``, random ``size`` crop (``kind="crop"``, the
    paper's) or random-resized crop (``"resized_crop"``), horizontal flip, normalise."""
    if kind == "crop":
        geometry = [Resize((resize, resize)), RandomCrop(size)]
    elif kind == "resized_crop":
        geometry = [RandomResizedCrop(size)]
    else:
        raise ValueError(f"unknown training crop {kind!r}; choose 'crop' or 'resized_crop'")
    return Compose([*geometry, RandomHorizontalFlip(), Normalize(*mean_std)])


def eval_transform(size: int = 224, mean_std=IMAGENET_MEAN_STD) -> Compose:
    """Evaluation pipeline: resize the whole image to ``size``×``size`` (boxes scale with it), normalise."""
    return Compose([Resize((size, size)), Normalize(*mean_std)])
