"""Cluttered translated MNIST with exact boxes: a localisation task built from real digits.

Following Mnih et al. (2014) and Jaderberg et al. (2015): one real MNIST digit (28×28) is pasted
at a uniformly random position on a larger black canvas (default 56×56), after ``n_clutter``
fragments (``fragment``×``fragment`` crops of *other* digits) were scattered over it. Pixels
combine by maximum. The image label is the digit's class; the ground-truth box is the pasted
digit's tight box (its non-zero pixels), ``(x, y, w, h)`` in pixels with the half-open
convention of :mod:`infocam.wsol` (x0 = x, x1 = x + w).

The real digits (``load_mnist``; 10,000 embedded by default) are shuffled with ``seed`` and cut
into disjoint pools — 70 % for train, 10 % val, 20 % test — and each split takes its target
digits *and* its clutter from its own pool, so no stroke seen in training appears at test time.
The val split's boxes are for choosing thresholds only (the protocol of Choe et al. 2020); the
test split reports. Everything is deterministic given ``seed``.

Used in chapter 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infocam.data.mnist import Digits, load_mnist

SPLITS = ("train", "val", "test")
_POOL_FRACTIONS = {"train": (0.0, 0.7), "val": (0.7, 0.8), "test": (0.8, 1.0)}


@dataclass(frozen=True)
class LocalisationSet:
    """Canvases (N, S, S) uint8, labels (N,) int64, boxes (N, 4) ``(x, y, w, h)`` and provenance."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    split: str
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        s = self.images.shape[-1]
        return f"LocalisationSet({self.split}: {len(self)} canvases {s}×{s}, source={self.source!r})"


def tight_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the non-zero pixels of a 2-D image; (0, 0, 0, 0) for an empty image."""
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    if len(rows) == 0:
        return 0, 0, 0, 0
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def make_cluttered(digits: np.ndarray, labels: np.ndarray, n: int, canvas: int = 56, n_clutter: int = 4,
                   fragment: int = 8, seed: int = 0, split: str = "train", source: str = "") -> LocalisationSet:
    """``n`` canvases whose targets and clutter come from ``digits`` (M, 28, 28) uint8."""
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.shape[1:] != (28, 28) or digits.dtype != np.uint8:
        raise ValueError(f"digits must be uint8 (M, 28, 28), got {digits.dtype} {digits.shape}")
    if len(digits) < 2:
        raise ValueError("need at least two digits (one target, one for clutter)")
    if canvas < 28:
        raise ValueError(f"canvas must be >= 28 pixels to hold a digit, got {canvas}")
    if not 1 <= fragment <= 28:
        raise ValueError(f"fragment must lie in [1, 28], got {fragment}")
    if n < 1 or n_clutter < 0:
        raise ValueError(f"need n >= 1 and n_clutter >= 0, got n={n}, n_clutter={n_clutter}")
    rng = np.random.default_rng(seed)
    M = len(digits)
    # targets cycle through a shuffled pool so every digit is used before any repeats
    target = np.concatenate([rng.permutation(M) for _ in range(-(-n // M))])[:n]
    images = np.zeros((n, canvas, canvas), dtype=np.uint8)
    boxes = np.zeros((n, 4), dtype=np.int64)
    pos = rng.integers(0, canvas - 28 + 1, size=(n, 2))
    src = rng.integers(0, M - 1, size=(n, max(n_clutter, 1)))
    src += src >= target[:, None]  # clutter from any digit but the target
    margin = min(4, (28 - fragment) // 2)  # crop away from the empty border, where strokes are
    crop = rng.integers(margin, 28 - fragment - margin + 1, size=(n, max(n_clutter, 1), 2))
    place = rng.integers(0, canvas - fragment + 1, size=(n, max(n_clutter, 1), 2))
    for i in range(n):
        img = images[i]
        for j in range(n_clutter):
            (cy, cx), (py, px) = crop[i, j], place[i, j]
            piece = digits[src[i, j], cy : cy + fragment, cx : cx + fragment]
            region = img[py : py + fragment, px : px + fragment]
            np.maximum(region, piece, out=region)
        y, x = pos[i]
        region = img[y : y + 28, x : x + 28]
        np.maximum(region, digits[target[i]], out=region)
        bx, by, bw, bh = tight_box(digits[target[i]])
        boxes[i] = (x + bx, y + by, bw, bh)
    return LocalisationSet(images, np.asarray(labels)[target].astype(np.int64), boxes, split, source)


def load_cluttered_mnist(n_train: int = 4000, n_val: int = 500, n_test: int = 1000, canvas: int = 56,
                         n_clutter: int = 4, fragment: int = 8, seed: int = 0, source: str = "embedded",
                         digits: Digits | None = None) -> dict[str, LocalisationSet]:
    """Train / val / test cluttered-MNIST splits built from disjoint pools of real digits.

    ``digits`` (a :class:`~infocam.data.mnist.Digits`) skips loading; otherwise
    ``load_mnist(source)`` supplies them.
    """
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    digits = digits if digits is not None else load_mnist(source)
    order = np.random.default_rng(seed).permutation(len(digits))
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    out = {}
    for k, split in enumerate(SPLITS):
        lo, hi = _POOL_FRACTIONS[split]
        pool = order[int(lo * len(order)) : int(hi * len(order))]
        desc = f"cluttered MNIST {canvas}×{canvas} ({n_clutter} fragments of {fragment} px) from {digits.source}"
        out[split] = make_cluttered(digits.images[pool], digits.labels[pool], sizes[split], canvas=canvas,
                                    n_clutter=n_clutter, fragment=fragment, seed=seed * 1000 + k + 1,
                                    split=split, source=desc)
    return out
