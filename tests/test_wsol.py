"""WSOL boxes and metrics: vectorised IoU curves against a per-threshold loop, conventions, bad input."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from infocam import wsol

EIGHT = np.ones((3, 3), bool)


def reference_curves(maps, gt, thresholds):
    """Straightforward loop: label map > τ for every image and τ; largest and best-of-all IoU."""
    largest = np.zeros((len(maps), len(thresholds)))
    best = np.zeros_like(largest)
    for i, m in enumerate(maps):
        for j, t in enumerate(thresholds):
            labels, n = ndimage.label(m > t, structure=EIGHT)
            if n == 0:
                continue
            boxes = np.array([(c.start, r.start, c.stop, r.stop) for r, c in ndimage.find_objects(labels)], float)
            ious = wsol.iou(boxes[:, None], np.asarray(gt[i], float).reshape(-1, 4)[None]).max(1)
            largest[i, j] = ious[np.argmax(np.bincount(labels.ravel())[1:])]
            best[i, j] = ious.max()
    return largest, best


def _smooth_maps(n, size, seed):
    raw = torch.randn(n, 1, 7, 7, generator=torch.Generator().manual_seed(seed))
    return wsol.normalize(wsol.upsample(raw.squeeze(1), (size, size)))


@pytest.mark.parametrize("kind", ["smooth", "noise", "plateaus"])
def test_iou_curves_match_reference_loop(kind):
    rng = np.random.default_rng(0)
    if kind == "smooth":
        maps = _smooth_maps(12, 40, 0)
    elif kind == "noise":
        maps = wsol.normalize(rng.random((8, 17, 23)))
    else:  # few distinct values: ties everywhere
        maps = wsol.normalize(rng.integers(0, 4, (8, 15, 15)).astype(np.float32))
    H, W = maps.shape[1:]
    x0, y0 = rng.integers(0, W // 2, len(maps)), rng.integers(0, H // 2, len(maps))
    gt = np.stack([x0, y0, x0 + rng.integers(2, W // 2, len(maps)), y0 + rng.integers(2, H // 2, len(maps))], 1)
    t = np.r_[wsol.default_thresholds(0.05), 0.999]
    ref_largest, ref_all = reference_curves(maps, gt, t)
    assert np.array_equal(wsol.iou_curves(maps, gt, t), ref_largest)
    assert np.array_equal(wsol.iou_curves(maps, gt, t, components="all"), ref_all)
    shuffled = np.random.default_rng(1).permutation(len(t))  # threshold order does not matter
    assert np.array_equal(wsol.iou_curves(maps, gt, t[shuffled], components="all"), ref_all[:, shuffled])


def test_iou_convention_and_values():
    assert wsol.iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert wsol.iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert wsol.iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching half-open boxes do not overlap
    assert wsol.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
    assert np.array_equal(wsol.xywh_to_xyxy([[3, 4, 5, 6]]), [[3, 4, 8, 10]])


def test_boxes_from_map_largest_and_all():
    m = np.zeros((20, 20), np.float32)
    m[2:5, 3:9] = 1.0  # 18 px: the largest blob
    m[10:14, 12:14] = 0.8  # 8 px
    largest = wsol.boxes_from_map(m, [0.5])[0]
    assert np.array_equal(largest, [[3, 2, 9, 5]])
    both = wsol.boxes_from_map(m, [0.5], components="all")[0]
    assert sorted(map(tuple, both.tolist())) == [(3, 2, 9, 5), (12, 10, 14, 14)]
    assert len(wsol.boxes_from_map(m, [0.9], components="all")[0]) == 1


def test_constant_map_gives_whole_image():
    flat = wsol.normalize(np.zeros((1, 12, 16)))
    assert np.array_equal(wsol.boxes_from_map(flat[0], [0.2])[0], [[0, 0, 16, 12]])
    ious = wsol.iou_curves(flat, np.array([[0, 0, 16, 12]]), [0.0, 0.5, 0.9])
    assert np.array_equal(ious, [[1.0, 1.0, 1.0]])


def test_metrics():
    ious = np.array([[0.9, 0.6, 0.2], [0.4, 0.55, 0.8], [0.1, 0.2, 0.3]])  # 3 images x 3 thresholds
    assert np.allclose(wsol.box_accuracy(ious, 0.5), [1 / 3, 2 / 3, 1 / 3])
    assert wsol.max_box_acc(ious, 0.5) == pytest.approx(2 / 3)
    assert wsol.max_box_acc_v2(ious) == pytest.approx(np.mean([2 / 3, 2 / 3, 1 / 3]))  # δ = 0.3, 0.5, 0.7
    assert wsol.choose_threshold(ious, [0.1, 0.2, 0.3]) == 0.2
    assert wsol.gt_known_loc(ious[:, 1]) == pytest.approx(2 / 3)
    assert wsol.top1_loc(ious[:, 1], [True, False, True]) == pytest.approx(1 / 3)


def test_evaluate_perfect_maps():
    gt = np.array([[4, 6, 12, 14], [20, 2, 30, 10]], float)
    maps = np.zeros((2, 32, 32), np.float32)
    for m, (x0, y0, x1, y1) in zip(maps, gt.astype(int)):
        m[y0:y1, x0:x1] = 1
    r = wsol.evaluate(maps, gt, maps, gt, np.array([True, False]), (32, 32), thresholds=[0.1, 0.5])
    assert r["gt_known_loc"] == 1.0 and r["top1_loc"] == 0.5 and r["maxboxacc_v2"] == 1.0


def test_bad_input():
    m = np.zeros((2, 8, 8), np.float32)
    m[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        wsol.iou_curves(m, np.zeros((2, 4)), [0.5])
    with pytest.raises(ValueError, match="NaN"):
        wsol.normalize(m)
    with pytest.raises(ValueError, match="ground-truth"):
        wsol.iou_curves(np.zeros((2, 8, 8)), np.zeros((3, 4)), [0.5])
    with pytest.raises(ValueError, match="components"):
        wsol.iou_curves(np.zeros((1, 8, 8)), np.zeros((1, 4)), [0.5], components="biggest")
    with pytest.raises(ValueError, match="thresholds"):
        wsol.iou_curves(np.zeros((1, 8, 8)), np.zeros((1, 4)), [])
    with pytest.raises(ValueError, match="shape"):
        wsol.iou_curves(np.zeros((8,)), np.zeros((1, 4)), [0.5])
