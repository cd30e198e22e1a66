"""Weakly-supervised localisation: from a class map to a box, and the metrics that score the box.

Map → box (the protocol of Zhou et al. 2016 and Choe et al. 2020): upsample the map to the image
size (bicubic), min–max normalise it to [0, 1], keep the pixels *strictly above* τ (the map's
maximum is 1, so this is τ·max), split them into 8-connected components and take the bounding box
of the largest component (``components="largest"``) or one box per component
(``components="all"``, the MaxBoxAccV2 rule: an image counts as localised at τ if *any*
component's box matches).

Conventions, stated once:

* **Boxes** are ``(x0, y0, x1, y1)`` in pixel-edge coordinates, half-open: pixel (row r, column
  c) covers [c, c+1) × [r, r+1), so a component spanning columns 3..7 has x0 = 3, x1 = 8. A
  dataset box ``(x, y, w, h)`` (CUB, cluttered MNIST) is ``(x, y, x + w, y + h)``.
  Area = (x1 − x0)·(y1 − y0); there is no "+1" (the original code's +1 convention moves IoU of
  small boxes by a few per cent).
* **Constant map** (min = max, e.g. all zeros): normalised to all ones, so every pixel is above
  every τ < 1 and the box is the whole image. **Empty mask** (nothing above τ): the empty box
  (0, 0, 0, 0), IoU 0. **NaN** anywhere in a map: ValueError.
* Connected components come from SciPy: ``scipy.ndimage.label`` (8-connected) for the boxes
  of one map (:func:`boxes_from_map`) and ``scipy.sparse.csgraph`` for the curves. SciPy is
  already a dependency of scikit-image and scikit-learn and needs no extra wheel (OpenCV is a
  large binary we would use for nothing else); its 8-connected labels match OpenCV's outer
  contours, the rule of the original code and of wsolevaluation.
* :func:`iou_curves` scores every threshold in one pass: masks at increasing τ are nested, so
  the components at every τ are unions of a few "basins" (pixels grouped by steepest ascent to
  a local maximum), joined where two basins touch above τ. Pixel work is done once per map, not
  once per threshold; a test checks the numbers equal a per-threshold ``ndimage.label`` loop.

Metrics: per image and threshold the IoU with the ground truth (max over ground-truth boxes);
GT-known Loc = fraction with IoU ≥ 0.5 at a fixed τ; Top-1 Loc = the same and the top-1 class
right; MaxBoxAcc(δ) = max over τ of the fraction with IoU ≥ δ; MaxBoxAccV2 = mean of
MaxBoxAcc(δ) over δ ∈ {0.3, 0.5, 0.7} with all components (Choe et al., CVPR 2020).

Used in chapter 4.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

IOU_THRESHOLDS_V2 = (0.3, 0.5, 0.7)
COMPONENTS = ("largest", "all")
_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE[1] = True  # 8-connected inside a slice, never across thresholds
_PIXELS_PER_CALL = 400_000


def default_thresholds(step: float = 0.01) -> np.ndarray:
    """τ grid ``np.arange(0, 1, step)`` as in wsolevaluation (100 thresholds for step 0.01)."""
    if not 0 < step < 1:
        raise ValueError(f"threshold step must lie in (0, 1), got {step}")
    return np.arange(0.0, 1.0, step)


def _as_maps(maps) -> np.ndarray:
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (N, H, W) or (H, W), got {maps.shape}")
    if np.isnan(maps).any():
        bad = np.flatnonzero(np.isnan(maps).any(axis=(1, 2)))
        raise ValueError(f"{len(bad)} map(s) contain NaN (first: index {bad[0]}); fix the model or input first")
    return maps


def upsample(maps, size: tuple[int, int]) -> np.ndarray:
    """Stretch maps (N, h, w) to ``size`` = (H, W) with bicubic interpolation (align_corners=False)."""
    maps = _as_maps(maps)
    t = torch.from_numpy(maps).unsqueeze(1)
    return F.interpolate(t, size=tuple(size), mode="bicubic", align_corners=False).squeeze(1).numpy()


def normalize(maps) -> np.ndarray:
    """Min–max normalise each map to [0, 1]; a constant map becomes all ones (box = whole image)."""
    maps = _as_maps(maps)
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    out = np.ones_like(maps)
    np.divide(maps - lo, span, out=out, where=span > 0)
    return out


def xywh_to_xyxy(boxes) -> np.ndarray:
    """(x, y, w, h) → (x0, y0, x1, y1) in the half-open convention of this module."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def iou(a, b) -> np.ndarray:
    """IoU of boxes ``a`` (..., 4) and ``b`` (..., 4), broadcast; half-open (x0, y0, x1, y1) boxes.

    Empty boxes (zero area) have IoU 0 with everything.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _components(masks: np.ndarray):
    """Every 8-connected component of every slice of ``masks`` (S, H, W): slice, box, size.

    One ``ndimage.label`` call for the whole stack; labels are numbered in raster order, so
    the components of slice s come before those of slice s + 1.
    """
    labels, n = ndimage.label(masks, structure=_STRUCTURE)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64)
    objs = ndimage.find_objects(labels)
    corners = np.array([(s.start, r.start, c.start, c.stop, r.stop) for s, r, c in objs], dtype=np.int64)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return corners[:, 0], corners[:, [2, 1, 3, 4]].astype(np.float64), sizes


def _check_thresholds(thresholds) -> np.ndarray:
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.ndim != 1 or len(t) == 0 or np.isnan(t).any():
        raise ValueError("thresholds must be a non-empty 1-D sequence of numbers in [0, 1)")
    return t


def _gt_boxes(gt_boxes, n: int) -> list[np.ndarray]:
    """Ground truth as a list of (m_i, 4) xyxy arrays; accepts (N, 4) or a list of (m_i, 4)."""
    if isinstance(gt_boxes, np.ndarray) or isinstance(gt_boxes, torch.Tensor):
        arr = np.asarray(gt_boxes, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"gt_boxes must be (N, 4) (x0, y0, x1, y1) or a list of (m, 4) arrays, got {arr.shape}")
        out = [row[None] for row in arr]
    else:
        out = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in gt_boxes]
    if len(out) != n:
        raise ValueError(f"{n} maps but {len(out)} ground-truth entries")
    return out


def boxes_from_map(heatmap, thresholds, components: str = "largest") -> list[np.ndarray]:
    """Boxes of one normalised map (H, W) at each τ: a list of (m_τ, 4) xyxy arrays.

    ``components="largest"`` gives at most one box per τ (ties: the first in raster order);
    ``"all"`` one box per component. Use :func:`normalize` (and :func:`upsample`) first.
    """
    if components not in COMPONENTS:
        raise ValueError(f"components must be one of {COMPONENTS}, got {components!r}")
    m = _as_maps(heatmap)
    if len(m) != 1:
        raise ValueError("boxes_from_map takes one map (H, W)")
    t = _check_thresholds(thresholds)
    slice_of, boxes, sizes = _components(m[0][None] > t[:, None, None])
    out = []
    for s in range(len(t)):
        sel = np.flatnonzero(slice_of == s)
        if components == "largest" and len(sel):
            sel = sel[[np.argmax(sizes[sel])]]
        out.append(boxes[sel])
    return out


_INDEX_BITS = 24  # maps up to 4096 × 4096 pixels


def _order_keys(maps: np.ndarray) -> np.ndarray:
    """int64 keys ordering pixels by (value, flat index inside the map): a strict total order.

    A float32's bit pattern, with the usual sign flip, sorts like the float; the pixel's index
    sits in the low bits, so the key also says *which* pixel it belongs to.
    """
    N, H, W = maps.shape
    bits = maps.astype(np.float32).view(np.int32).astype(np.int64)
    bits = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (bits << _INDEX_BITS) | np.arange(H * W, dtype=np.int64).reshape(1, H, W)


def _basins(maps: np.ndarray) -> np.ndarray:
    """Steepest-ascent basins of maps (N, H, W): the flat index of each pixel's basin root.

    Every pixel points to the highest pixel of its 3×3 neighbourhood (itself included) in the
    (value, index) order; pointer jumping gives the root, a local maximum. Along pointers values
    never decrease, so the pixels of a basin above any threshold are connected through its root.
    """
    N, H, W = maps.shape
    key = _order_keys(maps)
    padded = np.pad(key, ((0, 0), (1, 1), (1, 1)), constant_values=np.iinfo(np.int64).min)
    best = key.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            np.maximum(best, padded[:, dy : dy + H, dx : dx + W], out=best)
    offset = (np.arange(N, dtype=np.int64) * (H * W)).reshape(N, 1, 1)
    parent = ((best & ((1 << _INDEX_BITS) - 1)) + offset).ravel()
    while True:
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent
        parent = jumped


def _iou_curves_chunk(maps: np.ndarray, gt_pad: np.ndarray, t: np.ndarray, components: str) -> np.ndarray:
    """IoU curves of a chunk of maps (sorted thresholds ``t``), all thresholds in one pass.

    Pixel levels q = #{τ < value}: pixel is in the mask of τ_i iff q > i. Pixels are grouped
    into steepest-ascent basins (few per smooth map); the components at τ_i are the basins
    alive at τ_i joined by basin-to-basin 8-adjacencies whose lower end exceeds τ_i, found with
    one ``scipy.sparse.csgraph.connected_components`` call over all alive (basin, threshold)
    nodes. A component's box, size and first raster pixel are reductions over its basins.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

    N, H, W = maps.shape
    T = len(t)
    L = T + 1
    q = np.searchsorted(t, maps.ravel().astype(np.float64), side="left").reshape(N, H, W)
    root = _basins(maps)
    basin_ids = np.flatnonzero(root == np.arange(N * H * W))
    nB = len(basin_ids)
    lookup = np.zeros(N * H * W, dtype=np.int64)
    lookup[basin_ids] = np.arange(nB)
    basin = lookup[root].reshape(N, H, W)
    basin_image = basin_ids // (H * W)
    # per (basin, level) statistics, then suffix reductions over levels: column i = pixels with q > i
    key = (basin * L + q).ravel()
    pix = np.tile(np.arange(H * W, dtype=np.int64), N)
    cols = np.tile(np.arange(W, dtype=np.int64), N * H)
    big = H * W
    stats = {}
    for name, values, ufunc, init in (
        ("first", pix, np.minimum, big), ("last", pix, np.maximum, -1),
        ("x0", cols, np.minimum, big), ("x1", cols + 1, np.maximum, -1),
    ):
        arr = np.full(nB * L, init, dtype=np.int64)
        ufunc.at(arr, key, values)
        stats[name] = ufunc.accumulate(arr.reshape(nB, L)[:, ::-1], axis=1)[:, ::-1][:, 1:]
    size = np.bincount(key, minlength=nB * L).reshape(nB, L)[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]
    top = (size > 0).sum(axis=1)  # basin b is alive at thresholds i < top[b]
    alive = size > 0
    out = np.zeros(N * T)
    if not alive.any():
        return out.reshape(N, T)
    start = np.cumsum(top) - top  # node id of (b, i) = start[b] + i, alive nodes only
    n_nodes = int(top.sum())
    # basin adjacency (8-neighbours in different basins); saddle = max over pairs of the lower level
    pairs, saddles = [], []
    for (a0, a1), (b0, b1) in (
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
        ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
        ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
    ):
        u, v = basin[:, a0, a1], basin[:, b0, b1]
        cut = np.nonzero(u != v)
        u, v = u[cut], v[cut]
        lvl = np.minimum(q[:, a0, a1][cut], q[:, b0, b1][cut])
        keep = lvl > 0
        pairs.append(np.minimum(u, v)[keep] * nB + np.maximum(u, v)[keep])
        saddles.append(lvl[keep])
    pairs, saddles = np.concatenate(pairs), np.concatenate(saddles)
    if len(pairs):
        uniq, inv = np.unique(pairs, return_inverse=True)
        sad = np.zeros(len(uniq), dtype=np.int64)
        np.maximum.at(sad, inv, saddles)
        # a maximum spanning forest (by saddle) has the same components at every threshold
        forest = minimum_spanning_tree(
            csr_matrix(((T + 2 - sad).astype(np.float64), (uniq // nB, uniq % nB)), shape=(nB, nB))
        ).tocoo()
        uniq = forest.row.astype(np.int64) * nB + forest.col
        sad = (T + 2 - forest.data).astype(np.int64)
        # edge (b1, b2) exists at thresholds i < saddle: expand to (basin, threshold) nodes
        reps = np.minimum(sad, T)
        edge = np.repeat(np.arange(len(uniq)), reps)
        level = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
        src = start[uniq[edge] // nB] + level
        dst = start[uniq[edge] % nB] + level
    else:
        src = dst = np.zeros(0, dtype=np.int64)
    graph = csr_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n_nodes, n_nodes))
    nC, comp = connected_components(graph, directed=False)
    reduced = {}
    for name, ufunc, init in (("first", np.minimum, big), ("last", np.maximum, -1),
                              ("x0", np.minimum, big), ("x1", np.maximum, -1)):
        arr = np.full(nC, init, dtype=np.int64)
        ufunc.at(arr, comp, stats[name][alive])
        reduced[name] = arr
    comp_size = np.bincount(comp, weights=size[alive], minlength=nC)
    node_basin = np.repeat(np.arange(nB), top)
    slot = np.zeros(nC, dtype=np.int64)  # image * T + threshold of each component
    slot[comp] = basin_image[node_basin] * T + (np.arange(n_nodes) - start[node_basin])
    # the first / last pixel in raster order lie on the top / bottom row of the component
    y0, y1 = reduced["first"] // W, reduced["last"] // W + 1
    boxes = np.stack([reduced["x0"], y0, reduced["x1"], y1], axis=1).astype(np.float64)
    comp_iou = iou(boxes[:, None], gt_pad[slot // T]).max(axis=1)
    if components == "all":
        np.maximum.at(out, slot, comp_iou)
    else:  # largest; ties go to the component met first in raster order, as scipy's labels do
        order = np.lexsort((reduced["first"], -comp_size, slot))
        first = order[np.r_[True, slot[order][1:] != slot[order][:-1]]]
        out[slot[first]] = comp_iou[first]
    return out.reshape(N, T)


def iou_curves(heatmaps, gt_boxes, thresholds, components: str = "largest") -> np.ndarray:
    """IoU (N, T) of each map's box(es) at each τ with its ground truth, all τ in one pass.

    ``heatmaps`` (N, H, W) are normalised maps at image size; ``gt_boxes`` xyxy, (N, 4) or a
    list of (m_i, 4). With several predicted or true boxes the best pair counts. Gives the same
    numbers as labelling ``map > τ`` with ``scipy.ndimage.label`` (8-connected) for every τ
    (a test checks this), at a cost that does not grow with the number of thresholds × pixels.
    """
    if components not in COMPONENTS:
        raise ValueError(f"components must be one of {COMPONENTS}, got {components!r}")
    maps = _as_maps(heatmaps)
    t = _check_thresholds(thresholds)
    gts = _gt_boxes(gt_boxes, len(maps))
    N, H, W = maps.shape
    order = np.argsort(t, kind="stable")
    gt_pad = np.zeros((N, max(len(g) for g in gts), 4))  # padding boxes are empty: IoU 0
    for i, g in enumerate(gts):
        gt_pad[i, : len(g)] = g
    out = np.zeros((N, len(t)))
    per_call = max(1, _PIXELS_PER_CALL // (H * W))
    for start in range(0, N, per_call):
        stop = min(N, start + per_call)
        out[start:stop, order] = _iou_curves_chunk(maps[start:stop], gt_pad[start:stop], t[order], components)
    return out


def box_accuracy(ious: np.ndarray, delta: float = 0.5) -> np.ndarray:
    """Fraction of images with IoU ≥ δ at each threshold: (N, T) → (T,)."""
    return (np.asarray(ious) >= delta).mean(axis=0)


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
    return float((np.asarray(ious_at_tau) >= delta).mean())


def top1_loc(ious_at_tau: np.ndarray, correct: np.ndarray, delta: float = 0.5) -> float:
    """Top-1 Loc: IoU ≥ δ *and* the top-1 predicted class is the true class."""
    correct = np.asarray(correct, dtype=bool)
    ious_at_tau = np.asarray(ious_at_tau)
    if correct.shape != ious_at_tau.shape:
        raise ValueError(f"correct {correct.shape} and IoUs {ious_at_tau.shape} must have the same shape")
    return float(((ious_at_tau >= delta) & correct).mean())


def evaluate(maps_val, boxes_val, maps_test, boxes_test, correct_test, image_size, thresholds=None) -> dict:
    """The chapter's protocol: choose τ on val (GT-known, largest component), report on test.

    Maps are raw (N, h, w) class maps; they are upsampled to ``image_size`` and normalised here.
    Returns τ, GT-known Loc, Top-1 Loc, MaxBoxAccV2 and the test curves (fraction with IoU ≥ 0.5
    at each τ, largest component).
    """
    t = default_thresholds() if thresholds is None else _check_thresholds(thresholds)
    val = normalize(upsample(maps_val, image_size))
    test = normalize(upsample(maps_test, image_size))
    tau = choose_threshold(iou_curves(val, boxes_val, t), t)
    ious_test = iou_curves(test, boxes_test, t)
    at_tau = ious_test[:, int(np.flatnonzero(t == tau)[0])]
    ious_all = iou_curves(test, boxes_test, t, components="all")
    return {
        "tau": tau,
        "gt_known_loc": gt_known_loc(at_tau),
        "top1_loc": top1_loc(at_tau, correct_test),
        "maxboxacc_v2": max_box_acc_v2(ious_all),
        "curve": box_accuracy(ious_test, 0.5),
    }


__all__ = [
    "COMPONENTS", "IOU_THRESHOLDS_V2", "box_accuracy", "boxes_from_map", "choose_threshold",
    "default_thresholds", "evaluate", "gt_known_loc", "iou", "iou_curves", "max_box_acc",
    "max_box_acc_v2", "normalize", "top1_loc", "upsample", "xywh_to_xyxy",
]
