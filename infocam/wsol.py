"""Weakly-supervised localisation: from a class map to a box, and the metrics that score the box.

Two named protocols (``PROTOCOLS``); the chapters report ``"reference"``.

``"reference"`` — the rules of the field's evaluator, ``evaluation.py`` of wsolevaluation
(Choe et al., CVPR 2020), exactly:

1. **Normalise** each map min–max to [0, 1] (:func:`normalize`); a *constant* map (all zeros
   included) becomes all zeros, so it yields no region and the box (0, 0, 0, 0).
2. **Score image** ``uint8(map · 255)`` (the product in float64, as the reference's ``t2n`` casts
   maps to float64; truncated) (:func:`to_uint8`).
3. **Threshold** τ keeps the pixels *strictly above* ``int(τ · max)`` of that uint8 image
   (``cv2.threshold``, ``THRESH_BINARY``).
4. **Regions** are OpenCV contours (``cv2.findContours``, ``RETR_TREE``,
   ``CHAIN_APPROX_SIMPLE``): one outer contour per 8-connected region and one per hole, so with
   ``components="all"`` hole contours count too. ``components="largest"`` keeps the contour of
   largest ``cv2.contourArea`` (polygon area; ties: the first in OpenCV's order).
5. **Box** from ``cv2.boundingRect`` as (x0, y0, x0 + w, y0 + h), x1 and y1 clipped to W − 1
   and H − 1; no region → (0, 0, 0, 0).
6. **IoU** with the ``+1`` pixel convention (a box (x0, y0, x1, y1) covers the pixels x0..x1,
   y0..y1 inclusive; (0, 0, 0, 0) is the top-left pixel); best over ground-truth boxes and, with
   all contours, over predicted boxes (:func:`iou`).
7. **Thresholds** ``np.arange(0, 1, step)`` (:func:`default_thresholds`); MaxBoxAcc(δ) = max over
   τ of the fraction of images with IoU ≥ δ; MaxBoxAccV2 = mean of MaxBoxAcc over
   δ ∈ {0.3, 0.5, 0.7} with all contours.

The chapter protocol on top: τ is chosen on a validation split (largest contour, δ = 0.5); the
test split reports GT-known Loc and Top-1 Loc at that τ, and MaxBoxAcc / MaxBoxAccV2.

``"original"`` — the paper's code (Qin, Kim & Gedeon): the same map → box rules at one fixed
τ = 0.2 of the map's maximum (``ORIGINAL_TAU``), GT-known and Top-1 Loc with the ``+1`` IoU, no
validation split; ``running_average=<batch size>`` reports the accuracy as a running average over
batches (each batch's mean weighted equally, :func:`batch_running_average`).

Speed, with identical numbers: :func:`iou_curves` finds the contours of the plain loop
(:func:`reference_box_table`) but skips work that cannot change them — both modes share one
contour pass per (map, τ); a τ whose uint8 cut-off keeps exactly the pixels of the previous one
reuses its contours; a map's distinct masks are stacked, a row of zeros below each, into one
``findContours`` call, the stack one broadcast comparison of the map with its cut-offs; a mask
that provably has exactly one contour skips ``findContours``, its box the mask's extent (OpenCV
finds one contour per 8-connected region and per hole: Euler number 1, from histograms of the
pixels, pairs and 2 × 2 blocks above every cut-off at once, with at most one region, bounded by
the regional maxima whose straight line to the map's top pixel dips to the cut-off, leaves one);
``boundingRect`` and ``contourArea`` become exact integer sums over the points of all contours at
once; a map that occurs more than once in a call (the centre prior, the same for every image) is
contoured once; IoUs are computed in one vectorised step per chunk of maps. Tests check equality
with the plain loop (random maps of 64, 112 and 224 pixels, holes, ties, plateaus, border-touching
regions, constant, non-square and repeated maps, several true boxes), that every skipped mask has
one contour, and equality with wsolevaluation's own loop (transcribed in
benchmarks/bench_wsol.py). Measured (benchmarks/bench_wsol.py, one thread, a shared machine at
load ~1–3): ``evaluate`` on 7 × 7 CAM-like maps takes ~0.8 ms per map at 112 × 112 and ~0.4 ms at
64 × 64 (step 0.01; ~1.25 and ~0.63 without the one-contour path, which skips ``findContours`` for
73 % of their distinct masks); on noise maps (many contours, 7–8 % skipped) ~2.0 and ~1.25, ~5 %
slower than without it; on 224 × 224 maps the evaluator is ~2.0× faster than wsolevaluation's two
passes at step 0.01 and ~8× at step 0.001 (its ``--bounds`` mode times ``findContours`` alone and
a component tree, scikit-image's ``max_tree``, the one-pass alternative).

Input checks (one ValueError before any work): thresholds outside [0, 1), δ outside (0, 1],
ground-truth boxes with x1 < x0, y1 < y0 or negative coordinates, NaN or ±inf in a map (named
as such).

Used in chapters 4 and 5.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import cv2
import numpy as np
import torch
import torch.nn.functional as F

IOU_THRESHOLDS_V2 = (0.3, 0.5, 0.7)
COMPONENTS = ("largest", "all")
PROTOCOLS = ("reference", "original")
ORIGINAL_TAU = 0.2
_PIXELS_PER_CALL = 400_000
_PIXELS_PER_STACK = 4_000_000


# -- input checks ---------------------------------------------------------------------------------
def default_thresholds(step: float = 0.01) -> np.ndarray:
    """τ grid ``np.arange(0, 1, step)`` as in wsolevaluation (100 thresholds for step 0.01)."""
    if not 0 < step < 1:
        raise ValueError(f"threshold step must lie in (0, 1), got {step}")
    return np.arange(0, 1, step)


def _check_thresholds(thresholds) -> np.ndarray:
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.ndim != 1 or len(t) == 0 or np.isnan(t).any():
        raise ValueError("thresholds must be a non-empty 1-D sequence of numbers in [0, 1)")
    if t.min() < 0 or t.max() >= 1:
        raise ValueError(f"thresholds must lie in [0, 1) (fractions of the map's maximum), got values from "
                         f"{t.min():g} to {t.max():g}; for percentages divide by 100")
    return t


def _check_delta(delta) -> float:
    d = float(delta)
    if not 0 < d <= 1:
        raise ValueError(f"IoU threshold δ must lie in (0, 1], got {delta!r}; for percentages divide by 100")
    return d


def _as_maps(maps) -> np.ndarray:
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps, dtype=np.float32)
    if maps.size == 0:
        raise ValueError(f"no maps to score: an empty array of shape {maps.shape}; check the selection of images")
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (N, H, W) or (H, W), got {maps.shape}")
    if np.isfinite(maps.min()) and np.isfinite(maps.max()):  # NaN propagates through min and max
        return maps
    for bad, what in ((np.isnan(maps), "NaN"), (np.isinf(maps), "inf")):
        if bad.any():
            idx = np.flatnonzero(bad.any(axis=(1, 2)))
            raise ValueError(f"{len(idx)} map(s) contain {what} (first: index {idx[0]}); fix the model or input first")
    return maps


def _gt_boxes(gt_boxes, n: int, shape: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Ground truth as a list of (m_i, 4) xyxy arrays; accepts (N, 4) or a list of (m_i, 4).

    With ``shape`` = (H, W) of the maps, a box reaching beyond them is refused: it is in another
    pixel grid (the image's, not scaled with :func:`resize_boxes`) and would score IoU 0 silently.
    """
    if isinstance(gt_boxes, (np.ndarray, torch.Tensor)):
        arr = np.asarray(gt_boxes, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"gt_boxes must be (N, 4) (x0, y0, x1, y1) or a list of (m, 4) arrays, got {arr.shape}")
        out = [row[None] for row in arr]
    else:
        out = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in gt_boxes]
    if len(out) != n:
        raise ValueError(f"{n} maps but {len(out)} ground-truth entries")
    every = np.concatenate(out) if out else np.zeros((0, 4))  # checked at once; the loops name the first bad entry
    if not (all(len(b) for b in out) and np.isfinite(every).all() and (every >= 0).all()
            and (every[:, 2:] >= every[:, :2]).all()):
        for i, b in enumerate(out):
            if len(b) == 0:
                raise ValueError(f"ground-truth entry {i} holds no box")
            if not np.isfinite(b).all() or (b < 0).any() or (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
                raise ValueError(f"ground-truth box {b.tolist()} (entry {i}) is not (x0, y0, x1, y1) with "
                                 "0 <= x0 <= x1 and 0 <= y0 <= y1; convert (x, y, w, h) boxes with xywh_to_xyxy")
    if shape is not None and ((every[:, 2] > shape[1]).any() or (every[:, 3] > shape[0]).any()):
        H, W = shape
        beyond = [i for i, b in enumerate(out) if (b[:, 2] > W).any() or (b[:, 3] > H).any()]
        if beyond:
            raise ValueError(f"{len(beyond)} of {n} ground-truth entries reach beyond the {H}x{W} maps (first: entry "
                             f"{beyond[0]}, box {out[beyond[0]].tolist()}); boxes in image pixels must be scaled to "
                             f"the maps with resize_boxes(boxes, image_sizes, ({H}, {W}))")
    return out


# -- maps and boxes -------------------------------------------------------------------------------
def upsample(maps, size: tuple[int, int]) -> np.ndarray:
    """Stretch maps (N, h, w) to ``size`` = (H, W) with bicubic interpolation (align_corners=False)."""
    maps = _as_maps(maps)
    t = torch.from_numpy(maps).unsqueeze(1)
    return F.interpolate(t, size=tuple(size), mode="bicubic", align_corners=False).squeeze(1).numpy()


def normalize(maps) -> np.ndarray:
    """Min–max normalise each map to [0, 1] (float32); a constant map becomes all zeros (no box)."""
    maps = _as_maps(maps)
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    out = np.zeros_like(maps)
    np.divide(maps - lo, span, out=out, where=span > 0)
    return out


def to_uint8(heatmaps) -> np.ndarray:
    """The reference's score image ``uint8(map · 255)`` of normalised maps (N, H, W)."""
    maps = _as_maps(heatmaps)
    if maps.min() < 0 or maps.max() > 1:
        raise ValueError(f"heatmaps must be normalised to [0, 1] (use normalize), got range "
                         f"[{maps.min():g}, {maps.max():g}]")
    out = np.empty(maps.shape, dtype=np.uint8)
    step = max(1, _PIXELS_PER_CALL // maps[0].size)  # in chunks: no float64 copy of all maps
    for i in range(0, len(maps), step):
        out[i : i + step] = np.multiply(maps[i : i + step], 255, dtype=np.float64)  # truncated, as astype
    return out


def xywh_to_xyxy(boxes) -> np.ndarray:
    """(x, y, w, h) → (x0, y0, x1, y1) = (x, y, x + w, y + h), as wsolevaluation's metadata."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def resize_boxes(boxes, image_sizes, size: tuple[int, int]) -> np.ndarray:
    """xyxy boxes (N, 4) of images of ``image_sizes`` (N, 2) = (width, height) scaled to ``size`` = (H, W).

    The reference's ``resize_bbox``: each coordinate times new/old size, truncated to an int.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = np.asarray(image_sizes, dtype=np.float64).reshape(-1, 2)
    if len(wh) != len(b) or (wh <= 0).any():
        raise ValueError(f"need one positive (width, height) per box: {len(b)} boxes, sizes {wh.shape}")
    H, W = size
    new = np.array([W, H, W, H], dtype=np.float64)
    old = wh[:, [0, 1, 0, 1]]
    return np.trunc(b * new / old)  # (x · new) / old, the reference's order of operations


def iou(a, b) -> np.ndarray:
    """IoU of xyxy boxes ``a`` (..., 4) and ``b`` (..., 4), broadcast, with the reference's +1 convention.

    A box covers pixels x0..x1, y0..y1 inclusive: area (x1 − x0 + 1)(y1 − y0 + 1). A non-positive
    union (only for inverted boxes) gives 0, as in wsolevaluation.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros(np.shape(inter)), where=union > 0)


def _cutoffs(u8: np.ndarray, t: np.ndarray) -> np.ndarray:
    """int(τ · max) per map and threshold (N, T): the reference's uint8 cut-offs."""
    mx = u8.reshape(len(u8), -1).max(axis=1).astype(np.float64)
    return (t[None, :] * mx[:, None]).astype(np.int64)


def _opencv_boxes(mask: np.ndarray, offset=(0, 0), shape=None) -> tuple[list, int]:
    """All contour boxes (a list of [x0, y0, x1, y1]) and the index of the largest contour of a uint8 mask.

    The reference's rules: ``RETR_TREE`` / ``CHAIN_APPROX_SIMPLE`` contours, the largest by
    ``cv2.contourArea`` (the first maximum, as Python's ``max``), boxes from ``cv2.boundingRect``
    clipped to W − 1, H − 1; no contour → [[0, 0, 0, 0]].
    """
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE, offset=offset)[0]
    if len(contours) == 0:
        return [[0, 0, 0, 0]], 0
    H, W = mask.shape if shape is None else shape
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, W - 1), min(y + h, H - 1)])
    k = max(range(len(contours)), key=lambda c: cv2.contourArea(contours[c])) if len(contours) > 1 else 0
    return boxes, k


def reference_box_table(heatmap, thresholds) -> list[tuple[np.ndarray, np.ndarray]]:
    """The plain reference loop for one normalised map (H, W): per τ, (all contour boxes, largest box).

    One ``cv2.threshold`` + ``cv2.findContours`` per threshold on the full image. Used by the tests
    and the benchmark as the definition :func:`iou_curves` must equal.
    """
    u8 = to_uint8(heatmap)
    if len(u8) != 1:
        raise ValueError("reference_box_table takes one map (H, W)")
    t = _check_thresholds(thresholds)
    img = u8[0]
    out = []
    for c in _cutoffs(u8, t)[0]:
        _, mask = cv2.threshold(img, int(c), 255, cv2.THRESH_BINARY)
        boxes, k = _opencv_boxes(mask)
        out.append((np.array(boxes, dtype=np.float64), np.array(boxes[k], dtype=np.float64)))
    return out


def boxes_from_map(heatmap, thresholds, components: str = "largest") -> list[np.ndarray]:
    """Boxes of one normalised map (H, W) at each τ: a list of (m_τ, 4) xyxy arrays (reference rules).

    ``components="largest"`` gives one box per τ, ``"all"`` one per contour; no region gives the
    box (0, 0, 0, 0). Use :func:`normalize` (and :func:`upsample`) first.
    """
    if components not in COMPONENTS:
        raise ValueError(f"components must be one of {COMPONENTS}, got {components!r}")
    table = reference_box_table(heatmap, thresholds)
    return [all_boxes if components == "all" else largest[None] for all_boxes, largest in table]


# -- all thresholds of many maps -----------------------------------------------------------------
def _histogram(x: np.ndarray) -> np.ndarray:
    """Counts of the 256 values of a uint8 array: ``cv2.calcHist`` (~3× faster than ``np.bincount``), whose
    float32 counts are exact below 2^24 elements; larger arrays use ``np.bincount``."""
    if x.size >= 1 << 24:
        return np.bincount(x.ravel(), minlength=256)
    return cv2.calcHist([x.reshape(1, -1)], [0], None, [256], [0, 256])[:, 0].astype(np.int64)


def _one_contour(u8: np.ndarray, padded: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """For uint8 maps (n, H, W) and each cut-off c (n, 256): whether ``u8 > c`` provably has exactly one contour.

    OpenCV finds C + H contours (C 8-connected regions, H holes: 4-connected background
    components off the border). The Euler number E = C − H of every cut-off at once comes from
    cumulative histograms (Gray 1971): pixels, 4-adjacent pairs and 2 × 2 blocks above c (the
    4-connected number) less the 2 × 2 blocks whose two pixels above c lie on a diagonal. C is
    bounded by regional maxima: each region holds one (a plateau with only lower neighbours, a
    whole 8-connected piece of the pixels ≥ their 8 neighbours), so a region without the map's
    top pixel holds one whose straight 8-connected line to the top pixel dips to c or below;
    C ≤ 1 + the number of such maxima. Where that number is 0 and E = 1, C = 1 and H = 0.
    """
    n, H, W = u8.shape
    flat = padded.reshape(-1, W)  # the rows of zeros keep maps apart
    square = np.ones((3, 3), np.uint8)
    local = (flat == cv2.dilate(flat, square)) & (flat > 0)
    count, labels = cv2.connectedComponents(local.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    shore = local & (cv2.dilate(flat & (local.view(np.uint8) - 1), square) == flat)  # equal value off the piece
    where = np.flatnonzero(local)
    piece = labels.ravel()[where]
    rep = np.zeros(count, dtype=np.intp)
    rep[piece] = where  # a pixel of each piece
    regional = np.ones(count, dtype=bool)
    regional[piece[shore.ravel()[where]]] = False
    regional[0] = False
    m, y = np.divmod(rep[regional], (H + 1) * W)
    y, x = np.divmod(y, W)
    ty, tx = np.divmod(u8.reshape(n, -1).argmax(axis=1)[m], W)
    S = max(H, W)  # steps of at most one pixel in each direction: an 8-connected line
    s = np.arange(S + 1)
    low = u8[m[:, None], y[:, None] + ((ty - y)[:, None] * s + S // 2) // S,
             x[:, None] + ((tx - x)[:, None] * s + S // 2) // S].min(axis=1)
    offset = 256 * m
    joined = np.bincount(low + offset, minlength=256 * n) - np.bincount(u8[m, y, x] + offset, minlength=256 * n)
    apart = np.cumsum(joined.reshape(n, 256), axis=1)  # maxima above c not shown joined to the top pixel
    pairs = np.empty((n, H * (W - 1) + (H - 1) * W), dtype=np.uint8)  # 4-adjacent pairs: the minimum of each
    h = pairs[:, : H * (W - 1)].reshape(n, H, W - 1)
    np.minimum(u8[:, :, :-1], u8[:, :, 1:], out=h)
    np.minimum(u8[:, :-1], u8[:, 1:], out=pairs[:, H * (W - 1) :].reshape(n, H - 1, W))
    blocks = np.minimum(h[:, :-1], h[:, 1:])
    counts = np.array([_histogram(x) for both in zip(blocks, pairs) for x in both]).reshape(n, 2, 256)
    nw, ne, sw, se = u8[:, :-1, :-1], u8[:, :-1, 1:], u8[:, 1:, :-1], u8[:, 1:, 1:]
    lo = np.minimum(np.maximum(ne, sw), np.maximum(nw, se))  # the two above c lie on a diagonal for lo <= c < hi
    hi = np.maximum(np.minimum(nw, se), np.minimum(ne, sw))
    diagonal = np.flatnonzero(lo < hi)  # rare in smooth maps
    offset = 256 * (diagonal // max(1, (H - 1) * (W - 1)))
    lo, hi = lo.ravel()[diagonal] + offset, hi.ravel()[diagonal] + offset
    saddles = np.bincount(lo, minlength=256 * n) - np.bincount(hi, minlength=256 * n)
    euler = 1 - np.cumsum(hist.reshape(n, 256) + counts[:, 0] - counts[:, 1] + saddles.reshape(n, 256), axis=1)
    return (apart == 0) & (euler == 1)


def _contour_tables(u8: np.ndarray, t: np.ndarray) -> list[tuple]:
    """Reference boxes of uint8 maps (n, H, W) at sorted thresholds ``t``, one table per map.

    A table is (boxes (K, 4), first row of each distinct mask's boxes (S,), row of the largest
    contour at each τ (T,), mask of each τ (T,)). The contours of :func:`reference_box_table`'s
    ``threshold`` / ``findContours`` calls, found with savings that cannot change them: a cut-off
    that keeps exactly the pixels of the previous one (no value in between) reuses its contours;
    a map's distinct masks are stacked one below the other, each followed by a row of zeros, into
    one ``findContours`` call (up to ``_PIXELS_PER_STACK`` pixels; the stack is one broadcast
    comparison of the map with its cut-offs, whole masks: cropping each to its extent cost more
    to build than it saved ``findContours``): no region spans two masks and each mask's rows are
    scanned before the next one's, so each mask gets the contours, in the order, of its own call
    (tests check this); a mask that provably has one contour (:func:`_one_contour`) skips
    ``findContours``: that contour is the outer border of the whole mask, so its box is the mask's
    extent and it is the largest; ``boundingRect`` and ``contourArea`` are computed for all contours at once
    from their points (min / max of the coordinates, the shoelace sum — exact in integers, as
    ``contourArea`` is in float64 for pixel coordinates).
    """
    n, H, W = u8.shape
    cut = _cutoffs(u8, t)  # non-decreasing along τ
    hist = np.bincount((u8.reshape(n, -1) + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n)
    above = np.take_along_axis(H * W - np.cumsum(hist.reshape(n, 256), axis=1), cut, axis=1)  # pixels > cut
    new = np.ones_like(above, dtype=bool)
    new[:, 1:] = above[:, 1:] != above[:, :-1]
    seg_map, seg_t = np.nonzero(new)  # one segment per distinct mask, in (map, τ) order
    seg_cut = cut[seg_map, seg_t].astype(np.uint8)  # int(τ · max) < 255
    seg_base = np.r_[0, np.cumsum(new.sum(axis=1))]
    padded = np.zeros((n, H + 1, W), dtype=np.uint8)  # each map with a row of zeros below
    padded[:, :H] = u8
    single = _one_contour(u8, padded, hist)[seg_map, seg_cut]
    seg = np.flatnonzero(single)  # masks of one contour: its box is the mask's extent
    rows = u8.max(axis=2)[seg_map[seg]] > seg_cut[seg, None]
    cols = u8.max(axis=1)[seg_map[seg]] > seg_cut[seg, None]
    contour_boxes = np.stack([cols.argmax(axis=1), rows.argmax(axis=1),  # boundingRect, x1 and y1 clipped
                              np.minimum(W - cols[:, ::-1].argmax(axis=1), W - 1),
                              np.minimum(H - rows[:, ::-1].argmax(axis=1), H - 1)], axis=1)
    contour_area = np.zeros(len(seg), dtype=np.int64)
    per_stack = max(1, _PIXELS_PER_STACK // ((H + 1) * W))  # masks per findContours call
    contours, found, stacked = [], [], []
    for m in range(n):
        todo = np.flatnonzero(~single[seg_base[m] : seg_base[m + 1]]) + seg_base[m]
        for s0 in range(0, len(todo), per_stack):
            part = todo[s0 : s0 + per_stack]
            stack = np.greater(padded[m], seg_cut[part, None, None])
            found.append(len(cs := cv2.findContours(stack.reshape(-1, W).view(np.uint8), cv2.RETR_TREE,
                                                    cv2.CHAIN_APPROX_SIMPLE)[0]))
            contours.extend(cs)
            stacked.append(part)
    if contours:
        lengths = np.fromiter(map(len, contours), dtype=np.intp, count=len(contours))
        pts = np.frombuffer(b"".join(contours), dtype=np.int32)  # OpenCV gives C-contiguous (k, 1, 2) int32 arrays
        pts = pts.reshape(-1, 2).astype(np.int64)
        ends = np.cumsum(lengths)
        starts, last = ends - lengths, ends - 1
        x, y = pts[:, 0], pts[:, 1]
        cross = np.zeros(len(pts), dtype=np.int64)  # x[i] y[i + 1] − y[i] x[i + 1]; the sum closes each contour
        cross[:-1] = x[:-1] * y[1:] - y[:-1] * x[1:]
        twice = np.add.reduceat(cross, starts) - cross[last] + x[last] * y[starts] - y[last] * x[starts]
        k = y[starts] // (H + 1)  # the contour's mask within its stack
        sizes = np.fromiter(map(len, stacked), dtype=np.intp, count=len(stacked))
        seg = np.r_[seg, np.concatenate(stacked)[np.repeat(np.cumsum(sizes) - sizes, found) + k]]
        lo, hi = np.minimum.reduceat(pts, starts), np.maximum.reduceat(pts, starts) + 1
        lo[:, 1] -= (H + 1) * k
        hi[:, 1] -= (H + 1) * k
        contour_boxes = np.r_[contour_boxes, np.concatenate([lo, np.minimum(hi, [W - 1, H - 1])], axis=1)]
        contour_area = np.r_[contour_area, np.abs(twice)]
    order = np.argsort(seg, kind="stable")  # each mask's contours together, in their own order
    seg, contour_area, contour_boxes = seg[order], contour_area[order], contour_boxes[order]
    count = np.bincount(seg, minlength=len(seg_map))
    is_contour = np.repeat(count > 0, np.maximum(count, 1))  # a mask without contours: one (0, 0, 0, 0) row
    boxes = np.zeros((len(is_contour), 4))
    boxes[is_contour] = contour_boxes
    area = np.zeros(len(is_contour), dtype=np.int64)
    area[is_contour] = contour_area
    nrows = np.maximum(count, 1)
    seg_row = np.cumsum(nrows) - nrows
    seg_of_row = np.repeat(np.arange(len(nrows)), nrows)
    top = np.flatnonzero(area == np.maximum.reduceat(area, seg_row)[seg_of_row])
    largest = top[np.r_[True, seg_of_row[top][1:] != seg_of_row[top][:-1]]]  # first maximum per segment
    row_base = np.r_[seg_row, len(is_contour)][seg_base]
    seg_of_t = np.cumsum(new, axis=1) - 1
    big_of_t = largest[seg_of_t + seg_base[:-1, None]] - row_base[:-1, None]
    return [(boxes[row_base[i]:row_base[i + 1]], seg_row[seg_base[i]:seg_base[i + 1]] - row_base[i], big_of_t[i],
             seg_of_t[i]) for i in range(n)]


def _table_curves(tables: list[tuple], gt_pad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU curves (largest, all) of images with contour tables (:func:`_contour_tables`), all in one step."""
    nrows = np.array([len(tb[0]) for tb in tables])
    nsegs = np.array([len(tb[1]) for tb in tables])
    row_base, seg_base = np.cumsum(nrows) - nrows, np.cumsum(nsegs) - nsegs
    boxes = np.concatenate([tb[0] for tb in tables])
    ious = iou(boxes[:, None], gt_pad[np.repeat(np.arange(len(tables)), nrows)]).max(axis=1)
    seg_best = np.maximum.reduceat(ious, np.concatenate([tb[1] for tb in tables]) + np.repeat(row_base, nsegs))
    largest = ious[np.stack([tb[2] for tb in tables]) + row_base[:, None]]
    best = seg_best[np.stack([tb[3] for tb in tables]) + seg_base[:, None]]
    return largest, best


def _first_copies(u8: np.ndarray) -> list[int]:
    """For each map the index of the first map equal to it, by byte digest.

    Only maps that agree on a sample of pixels can be equal, so only those are digested (their key
    is the sample followed by the digest, longer than a sample alone).
    """
    flat = u8.reshape(len(u8), -1)
    probes = [p.tobytes() for p in flat[:, :: max(1, flat.shape[1] // 64)]]
    alike = Counter(probes)
    first = {}
    return [first.setdefault(p + hashlib.blake2b(m.tobytes(), digest_size=16).digest() if alike[p] > 1 else p, i)
            for i, (p, m) in enumerate(zip(probes, flat))]


def _curves(heatmaps, gt_boxes, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """IoU curves (largest, all) (N, T) of normalised maps, in chunks of about ``_PIXELS_PER_CALL`` pixels.

    A map that occurs more than once in the call (the centre prior is the same map for every
    image) is contoured once, found by its byte digest; the IoUs are per image.
    """
    u8 = to_uint8(heatmaps)
    t = _check_thresholds(thresholds)
    gts = _gt_boxes(gt_boxes, len(u8), u8.shape[1:])
    N, H, W = u8.shape
    order = np.argsort(t, kind="stable")
    sizes = np.array([len(g) for g in gts])
    pad = np.minimum(np.arange(sizes.max()), sizes[:, None] - 1)  # pad with copies of the last box
    gt_pad = np.concatenate(gts)[(np.cumsum(sizes) - sizes)[:, None] + pad]
    same = _first_copies(u8)
    repeated = {i for i, count in Counter(same).items() if count > 1}
    largest, best = np.zeros((N, len(t))), np.zeros((N, len(t)))
    per_call = max(1, _PIXELS_PER_CALL // (H * W))
    kept = {}
    for start in range(0, N, per_call):
        stop = min(N, start + per_call)
        todo = list(dict.fromkeys(j for j in same[start:stop] if j not in kept))
        tables = dict(zip(todo, _contour_tables(u8[todo], t[order]))) if todo else {}
        kept.update((j, tb) for j, tb in tables.items() if j in repeated)
        lg, bs = _table_curves([tables[j] if j in tables else kept[j] for j in same[start:stop]], gt_pad[start:stop])
        largest[start:stop, order], best[start:stop, order] = lg, bs
    return largest, best


def iou_curves(heatmaps, gt_boxes, thresholds, components: str = "largest") -> np.ndarray:
    """IoU (N, T) of each normalised map's box(es) at each τ with its ground truth (reference rules).

    ``heatmaps`` (N, H, W) are normalised maps at image size; ``gt_boxes`` xyxy, (N, 4) or a list
    of (m_i, 4). With several predicted (``components="all"``) or true boxes the best pair counts.
    Equals :func:`reference_box_table` followed by :func:`iou` (tests check this).
    """
    if components not in COMPONENTS:
        raise ValueError(f"components must be one of {COMPONENTS}, got {components!r}")
    largest, best = _curves(heatmaps, gt_boxes, thresholds)
    return largest if components == "largest" else best


# -- metrics --------------------------------------------------------------------------------------
def box_accuracy(ious: np.ndarray, delta: float = 0.5) -> np.ndarray:
    """Fraction of images with IoU ≥ δ at each threshold: (N, T) → (T,)."""
    return (np.asarray(ious) >= _check_delta(delta)).mean(axis=0)


def max_box_acc(ious: np.ndarray, delta: float = 0.5) -> float:
    """MaxBoxAcc(δ) = max over τ of the fraction of images with IoU ≥ δ."""
    return float(box_accuracy(ious, delta).max())


def max_box_acc_v2(ious_all: np.ndarray, deltas=IOU_THRESHOLDS_V2) -> float:
    """MaxBoxAccV2: mean over δ ∈ {0.3, 0.5, 0.7} of MaxBoxAcc(δ); pass IoUs from ``components="all"``."""
    return float(np.mean([max_box_acc(ious_all, d) for d in deltas]))


def choose_threshold(ious_val: np.ndarray, thresholds, delta: float = 0.5) -> float:
    """τ maximising the fraction with IoU ≥ δ on a validation split (ties: the smallest τ)."""
    t = _check_thresholds(thresholds)
    acc = box_accuracy(ious_val, delta)
    if len(acc) != len(t):
        raise ValueError(f"IoU curves have {len(acc)} thresholds but {len(t)} were given")
    return float(t[int(np.argmax(acc))])


def gt_known_loc(ious_at_tau: np.ndarray, delta: float = 0.5) -> float:
    """GT-known Loc: fraction of images whose box (at the chosen τ) has IoU ≥ δ with the truth."""
    return float((np.asarray(ious_at_tau) >= _check_delta(delta)).mean())


def top1_loc(ious_at_tau: np.ndarray, correct: np.ndarray, delta: float = 0.5) -> float:
    """Top-1 Loc: IoU ≥ δ *and* the top-1 predicted class is the true class."""
    correct = np.asarray(correct, dtype=bool)
    ious_at_tau = np.asarray(ious_at_tau)
    if correct.shape != ious_at_tau.shape:
        raise ValueError(f"correct {correct.shape} and IoUs {ious_at_tau.shape} must have the same shape")
    return float(((ious_at_tau >= _check_delta(delta)) & correct).mean())


def batch_running_average(hits: np.ndarray, batch_size: int) -> float:
    """Running average of per-batch accuracies (each batch weighs the same, the last one too)."""
    hits = np.asarray(hits, dtype=np.float64)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(hits) == 0:
        raise ValueError("no images to average")
    return float(np.mean([hits[i : i + batch_size].mean() for i in range(0, len(hits), batch_size)]))


def prepare(maps, image_size) -> np.ndarray:
    """Raw class maps (N, h, w) → normalised heatmaps at ``image_size`` (bicubic, then min–max)."""
    return normalize(upsample(maps, image_size))


def centre_prior(n: int, h: int, w: int, sigma: float = 0.25) -> np.ndarray:
    """A network-free baseline: the same centred Gaussian (sd ``sigma`` · h) as the map of every image.

    Localisation datasets put objects near the image centre; a method should beat this. Used in
    chapter 4.
    """
    gy, gx = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    blob = np.exp(-(gy**2 + gx**2) / (2 * (sigma * h) ** 2)).astype(np.float32)
    return np.repeat(blob[None], n, axis=0)


def evaluate(maps_val, boxes_val, maps_test, boxes_test, correct_test, image_size, thresholds=None,
             protocol: str = "reference", running_average: int | None = None, original: bool = False) -> dict:
    """Score raw class maps (N, h, w) under a named protocol (see the module docstring).

    ``"reference"``: τ chosen on val (largest contour, δ = 0.5), GT-known / Top-1 Loc at τ on test,
    MaxBoxAcc (largest, δ = 0.5) and MaxBoxAccV2 (all contours) on test, and the test curve. With
    ``original=True`` the same call adds the original code's numbers on the test maps
    (``original_gt_known_loc``, ``original_top1_loc`` at τ = 0.2, and with ``running_average`` the
    running-average Top-1 Loc ``original_top1_loc_running``), read from the test curve when τ = 0.2
    is on the grid (one contour pass for both protocols), else from one more pass at τ = 0.2.
    ``"original"``: τ = 0.2 fixed, GT-known / Top-1 Loc on test (val unused, may be None);
    ``running_average`` (a batch size) averages per-batch accuracies as the paper's code did.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    test = prepare(maps_test, image_size)
    correct_test = np.asarray(correct_test, dtype=bool)
    if protocol == "original":
        ious = iou_curves(test, boxes_test, [ORIGINAL_TAU])[:, 0]
        return {"tau": ORIGINAL_TAU, **_original_scores(ious, correct_test, running_average, keys="plain")}
    t = default_thresholds() if thresholds is None else _check_thresholds(thresholds)
    val = prepare(maps_val, image_size)
    tau = choose_threshold(iou_curves(val, boxes_val, t), t)
    largest, best = _curves(test, boxes_test, t)
    at_tau = largest[:, int(np.flatnonzero(t == tau)[0])]
    out = {
        "tau": tau,
        "gt_known_loc": gt_known_loc(at_tau),
        "top1_loc": top1_loc(at_tau, correct_test),
        "maxboxacc": max_box_acc(largest),
        "maxboxacc_v2": max_box_acc_v2(best),
        "curve": box_accuracy(largest, 0.5),
    }
    if original:
        on_grid = np.flatnonzero(t == ORIGINAL_TAU)
        ious = largest[:, on_grid[0]] if len(on_grid) else iou_curves(test, boxes_test, [ORIGINAL_TAU])[:, 0]
        out.update(_original_scores(ious, correct_test, running_average, keys="prefixed"))
    return out


def _original_scores(ious: np.ndarray, correct: np.ndarray, running_average: int | None, keys: str) -> dict:
    """The original code's GT-known / Top-1 Loc from IoUs at τ = 0.2 (optionally as running averages)."""
    hit = ious >= 0.5
    if keys == "plain":
        if running_average is None:
            return {"gt_known_loc": gt_known_loc(ious), "top1_loc": top1_loc(ious, correct)}
        return {"gt_known_loc": batch_running_average(hit, running_average),
                "top1_loc": batch_running_average(hit & correct, running_average)}
    out = {"original_gt_known_loc": gt_known_loc(ious), "original_top1_loc": top1_loc(ious, correct)}
    if running_average is not None:
        out["original_top1_loc_running"] = batch_running_average(hit & correct, running_average)
    return out


__all__ = [
    "COMPONENTS", "IOU_THRESHOLDS_V2", "ORIGINAL_TAU", "PROTOCOLS", "batch_running_average", "box_accuracy",
    "centre_prior",
    "boxes_from_map", "choose_threshold", "default_thresholds", "evaluate", "gt_known_loc", "iou", "iou_curves",
    "max_box_acc", "max_box_acc_v2", "normalize", "prepare", "reference_box_table", "resize_boxes", "to_uint8",
    "top1_loc", "upsample", "xywh_to_xyxy",
]
