"""Image folders that do not fit in memory: a ``Dataset`` over (path, label, box) lists.

The CUB-200-2011 and Tiny-ImageNet loaders give lists of image paths, 0-based labels and boxes;
:class:`ImageDataset` reads one image per item, decodes it with ``torchvision.io`` (libjpeg-turbo
for JPEG; greyscale and CMYK photos become RGB) and applies a box-carrying transform
(:mod:`infocam.data.transforms`). Items are ``(image, label, box)`` with the box as
``x0, y0, x1, y1`` in the transformed image's pixels. The engine (:func:`infocam.train.fit`)
reads it with worker processes and pinned memory on CUDA. Used in chapter 5 and by ``infocam train``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from infocam.data.transforms import xywh_to_xyxy
from infocam.paths import DataError

# torchvision 0.29 marks its decoders deprecated in favour of torchcodec (not installed); they are
# libjpeg-turbo and fine here, so that warning (one per image) is silenced around them alone.
_DEPRECATED = "The image decoding and encoding capabilities of TorchVision"


def read_image(path: str | Path) -> torch.Tensor:
    """Decode an image file to a uint8 RGB tensor (3, H, W); one clear DataError if it cannot be read."""
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

    path = Path(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATED, category=DeprecationWarning)
        try:
            data = read_file(str(path))
        except (RuntimeError, OSError):
            raise DataError(f"image file {path} is missing or unreadable") from None
        try:
            if bytes(data[:2].tolist()) == b"\xff\xd8":
                return decode_jpeg(data, mode=ImageReadMode.RGB)
            return decode_image(data, mode=ImageReadMode.RGB)
        except RuntimeError as exc:
            raise DataError(f"{path} is not a readable image ({exc})") from None


class ImageDataset(Dataset):
    """Images ``paths`` with ``labels`` and optional ``boxes`` in pixels of the stored image.

    ``box_format`` is ``"xywh"`` (CUB's ``bounding_boxes.txt``) or ``"xyxy"`` (x0, y0, x1, y1 half-open:
    Tiny-ImageNet's loader). ``transform(image, boxes) -> (tensor, boxes)`` runs per item (default:
    uint8 → float in 0..1). Items are ``(image, label)`` without boxes and ``(image, label, box)``
    with them, the box as x0, y0, x1, y1.
    """

    def __init__(self, paths, labels, boxes=None, transform=None, *, box_format: str = "xywh",
                 check_files: bool = True):
        self.paths = [Path(p) for p in paths]
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        if box_format not in ("xywh", "xyxy"):
            raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}")
        if boxes is not None:
            boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
            boxes = xywh_to_xyxy(boxes) if box_format == "xywh" else boxes
        self.boxes = boxes
        if self.boxes is not None and len(self.boxes) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.boxes)} boxes")
        if check_files:
            missing = [p for p in self.paths if not p.is_file()]
            if missing:
                raise DataError(f"{len(missing)} image file(s) missing, first {missing[0]}; check the dataset folder "
                                "(or the data root) against its index files")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        image = read_image(self.paths[i])
        boxes = self.boxes[i : i + 1] if self.boxes is not None else torch.zeros(0, 4)
        if self.transform is not None:
            image, boxes = self.transform(image, boxes)
        else:
            image = image.float() / 255
        if self.boxes is None:
            return image, self.labels[i]
        return image, self.labels[i], boxes[0]

    def __repr__(self) -> str:
        return f"ImageDataset({len(self)} images, boxes={'yes' if self.boxes is not None else 'no'})"


def cub_dataset(cub, positions, transform=None) -> ImageDataset:
    """The images of a :class:`~infocam.data.cub.CUB` at ``positions`` (e.g. one half of :func:`cub_split`)."""
    positions = np.asarray(positions)
    return ImageDataset([cub.paths[i] for i in positions], cub.labels[positions], cub.boxes[positions], transform)


def tiny_imagenet_dataset(tin, transform=None) -> ImageDataset:
    """All images of one split of a :class:`~infocam.data.tiny_imagenet.TinyImageNet` (boxes x0 y0 x1 y1)."""
    return ImageDataset(tin.paths, tin.labels, tin.boxes, transform, box_format="xyxy")
