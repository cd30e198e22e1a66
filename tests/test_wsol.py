"""WSOL: the one-pass IoU curves equal the plain per-image, per-threshold OpenCV loop and wsolevaluation's own
evaluator (transcribed in benchmarks/bench_wsol.py); the reference rules; bad input."""

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from infocam import wsol


def reference_curves(maps, gt, thresholds):
    """The definition: reference_box_table (one cv2.findContours per map and τ), then +1 IoU."""
    largest = np.zeros((len(maps), len(thresholds)))
    best = np.zeros_like(largest)
    for i, m in enumerate(maps):
        g = np.asarray(gt[i], float).reshape(-1, 4)
        for j, (boxes, big) in enumerate(wsol.reference_box_table(m, thresholds)):
            largest[i, j] = wsol.iou(big[None], g).max()
            best[i, j] = wsol.iou(boxes[:, None], g[None]).max()
    return largest, best


def _smooth_maps(n, h, w, seed, grid=7):
    raw = torch.randn(n, 1, grid, grid, generator=torch.Generator().manual_seed(seed))
    return wsol.normalize(wsol.upsample(raw.squeeze(1), (h, w)))


def _fixture(kind, rng):
    if kind == "smooth":
        return _smooth_maps(10, 40, 40, 0)
    if kind == "smooth-large":
        return _smooth_maps(3, 112, 112, 1, grid=14)
    if kind == "non-square":
        return _smooth_maps(8, 23, 57, 2)
    if kind == "noise":
        return wsol.normalize(rng.random((6, 17, 23)))
    if kind == "plateaus":  # few distinct values: ties everywhere
        return wsol.normalize(rng.integers(0, 4, (8, 15, 15)).astype(np.float32))
    if kind == "holes":  # rings, nested rings and a ring of width one: hole contours
        maps = np.zeros((4, 30, 30), np.float32)
        yy, xx = np.mgrid[:30, :30]
        r = np.hypot(yy - 14.5, xx - 14.5)
        maps[0] = (r > 5) & (r < 11)
        maps[1] = 0.4 * ((r > 3) & (r < 6)) + 0.9 * ((r > 8) & (r < 12)) + 0.2
        maps[2, 5:25, 5:25] = 1
        maps[2, 10:15, 10:20] = 0
        maps[2, 17:20, 8:12] = 0.5
        maps[3, 3:27, 3:27] = 1
        maps[3, 4:26, 4:26] = 0
        maps[3, 12:18, 12:18] = 1
        return wsol.normalize(maps + 0.3 * rng.random((4, 30, 30)).astype(np.float32) * (rng.random((4, 30, 30)) < 0.1))
    if kind == "border":  # regions touching every border (stacked masks: bottom-row regions above top-row ones)
        maps = _smooth_maps(6, 32, 24, 3)
        maps[:, 0, :] = 1
        maps[:, :, -1] = 0.95
        maps[:, -3:, :5] = 0.9
        return maps
    if kind == "constant":  # constant and all-zero maps normalise to zeros: no box
        return wsol.normalize(np.stack([np.zeros((10, 12)), np.full((10, 12), 3.0), np.eye(10, 12)]).astype(np.float32))
    if kind == "repeated":  # equal maps reuse their contours; every image keeps its own ground truth
        prior = wsol.normalize(wsol.centre_prior(4, 28, 28))
        smooth = _smooth_maps(3, 28, 28, 4)
        return np.concatenate([prior[:2], smooth, prior[2:], smooth[::-1], smooth[:1]])
    raise ValueError(kind)


KINDS = ["smooth", "smooth-large", "non-square", "noise", "plateaus", "holes", "border", "constant", "repeated"]


@pytest.mark.parametrize("kind", KINDS)
def test_iou_curves_equal_plain_opencv_loop(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    maps = _fixture(kind, rng)
    N, H, W = maps.shape
    x0, y0 = rng.integers(0, W // 2, N), rng.integers(0, H // 2, N)
    gt = np.stack([x0, y0, x0 + rng.integers(0, W // 2, N), y0 + rng.integers(0, H // 2, N)], 1)
    t = np.r_[wsol.default_thresholds(0.02), 0.999]
    ref_largest, ref_all = reference_curves(maps, gt, t)
    largest, best = wsol.iou_curves(maps, gt, t), wsol.iou_curves(maps, gt, t, components="all")
    assert np.array_equal(largest, ref_largest)
    assert np.array_equal(best, ref_all)
    shuffled = np.random.default_rng(1).permutation(len(t))  # threshold order does not matter
    assert np.array_equal(wsol.iou_curves(maps, gt, t[shuffled], components="all"), ref_all[:, shuffled])


def _bench_wsol():
    """benchmarks/bench_wsol.py as a module: its transcription of wsolevaluation's evaluator."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_wsol.py"
    spec = importlib.util.spec_from_file_location("bench_wsol", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("step", [0.01, 0.001])  # the book's grid and wsolevaluation's default cam_curve_interval
def test_equals_wsolevaluation_two_pass_loop(step):
    """Bit for bit: the IoU curves, MaxBoxAcc and MaxBoxAccV2 of the transcribed reference evaluator."""
    rng = np.random.default_rng(7)
    plateaus = wsol.normalize(rng.integers(0, 4, (2, 30, 30)).astype(np.float32))
    maps = np.concatenate([_smooth_maps(5, 30, 30, 6), _fixture("holes", rng), plateaus, np.zeros((1, 30, 30))])
    x0, y0 = rng.integers(0, 15, (2, len(maps)))
    gts = [[(int(a), int(b), int(a + rng.integers(0, 15)), int(b + rng.integers(0, 15)))] for a, b in zip(x0, y0)]
    gts[0].append((2, 3, 29, 29))  # several true boxes: the best one counts
    gts[5] += [(0, 0, 0, 0), (10, 10, 20, 20)]
    metrics = _bench_wsol().check_identical(maps.astype(np.float32), gts, step)
    assert 0 < metrics["maxboxacc_v2"] < 1


def test_several_ground_truth_boxes_take_the_best():
    maps = _smooth_maps(3, 30, 30, 5)
    gts = [np.array([[0, 0, 5, 5], [10, 10, 25, 25]]), np.array([[3, 3, 20, 20]]), np.array([[0, 0, 29, 29]] * 3)]
    t = wsol.default_thresholds(0.05)
    ref_largest, ref_all = reference_curves(maps, gts, t)
    assert np.array_equal(wsol.iou_curves(maps, gts, t), ref_largest)
    assert np.array_equal(wsol.iou_curves(maps, gts, t, components="all"), ref_all)


def test_reference_rules_by_hand():
    m = np.zeros((20, 20), np.float32)
    m[2:5, 3:9] = 1.0  # 18 px: the largest region
    m[10:14, 12:14] = 0.8
    # boundingRect gives x, y, w, h; the box is (x, y, x + w, y + h)
    assert np.array_equal(wsol.boxes_from_map(m, [0.5])[0], [[3, 2, 9, 5]])
    both = wsol.boxes_from_map(m, [0.5], components="all")[0]
    assert sorted(map(tuple, both.tolist())) == [(3, 2, 9, 5), (12, 10, 14, 14)]
    # the kept pixels are those strictly above int(τ · 255) of uint8(map · 255): 0.8 → 204 > int(0.8 · 255) = 204 is false
    assert len(wsol.boxes_from_map(m, [0.8], components="all")[0]) == 1
    assert len(wsol.boxes_from_map(m, [0.79], components="all")[0]) == 2
    # x1, y1 clipped to W - 1, H - 1 at the border
    edge = np.zeros((10, 12), np.float32)
    edge[4:, 6:] = 1
    assert np.array_equal(wsol.boxes_from_map(edge, [0.5])[0], [[6, 4, 11, 9]])
    # a hole is a contour too
    ring = np.zeros((12, 12), np.float32)
    ring[2:10, 2:10] = 1
    ring[4:8, 4:8] = 0
    assert len(wsol.boxes_from_map(ring, [0.5], components="all")[0]) == 2


def test_constant_and_zero_maps_give_no_box():
    for raw in (np.zeros((12, 16)), np.full((12, 16), -2.5)):
        flat = wsol.normalize(raw[None])
        assert not flat.any()
        assert np.array_equal(wsol.boxes_from_map(flat[0], [0.0, 0.2])[0], [[0, 0, 0, 0]])
    # the (0, 0, 0, 0) box is the top-left pixel under the +1 convention: IoU 1/area with a box holding it
    ious = wsol.iou_curves(wsol.normalize(np.zeros((1, 12, 16))), np.array([[0, 0, 1, 1]]), [0.0, 0.5])
    assert np.array_equal(ious, [[0.25, 0.25]])


def test_iou_plus_one_convention():
    assert wsol.iou([0, 0, 9, 9], [0, 0, 9, 9]) == 1.0
    assert wsol.iou([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(50 / 150)
    assert wsol.iou([0, 0, 9, 9], [9, 0, 18, 9]) == pytest.approx(10 / 190)  # sharing one column
    assert wsol.iou([0, 0, 9, 9], [10, 0, 19, 9]) == 0.0
    assert wsol.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 1.0
    assert np.array_equal(wsol.xywh_to_xyxy([[3, 4, 5, 6]]), [[3, 4, 8, 10]])


def test_uint8_and_resize_follow_the_reference():
    m = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    assert wsol.to_uint8(m).tolist() == [[[0, 127, 255]]]
    boxes = wsol.resize_boxes([[10, 20, 99, 50]], [[100, 60]], (224, 224))
    assert boxes.tolist() == [[int(10 * 2.24), int(20 * 224 / 60), int(99 * 2.24), int(50 * 224 / 60)]]
    with pytest.raises(ValueError, match="normalised"):
        wsol.to_uint8(np.full((1, 2, 2), 2.0))


def test_metrics():
    ious = np.array([[0.9, 0.6, 0.2], [0.4, 0.55, 0.8], [0.1, 0.2, 0.3]])  # 3 images x 3 thresholds
    assert np.allclose(wsol.box_accuracy(ious, 0.5), [1 / 3, 2 / 3, 1 / 3])
    assert wsol.max_box_acc(ious, 0.5) == pytest.approx(2 / 3)
    assert wsol.max_box_acc_v2(ious) == pytest.approx(np.mean([2 / 3, 2 / 3, 1 / 3]))  # δ = 0.3, 0.5, 0.7
    assert wsol.choose_threshold(ious, [0.1, 0.2, 0.3]) == 0.2
    assert wsol.gt_known_loc(ious[:, 1]) == pytest.approx(2 / 3)
    assert wsol.top1_loc(ious[:, 1], [True, False, True]) == pytest.approx(1 / 3)
    assert wsol.batch_running_average([1, 1, 0, 0, 0], 2) == pytest.approx(np.mean([1, 0, 0]))


def test_evaluate_protocols():
    gt = np.array([[4, 6, 11, 13], [20, 2, 29, 9]], float)
    maps = np.zeros((2, 32, 32), np.float32)
    for m, (x0, y0, x1, y1) in zip(maps, gt.astype(int)):
        m[y0 : y1 + 1, x0 : x1 + 1] = 1
        m[y0, x0] = 0.5  # keep the corner pixel at τ = 0.2 and 0.5 only
    # a box from boundingRect is one pixel wider than the region (x0 + w), so IoU is < 1 but > 0.7
    r = wsol.evaluate(maps, gt, maps, gt, np.array([True, False]), (32, 32), thresholds=[0.1, 0.5])
    assert r["gt_known_loc"] == 1.0 and r["top1_loc"] == 0.5 and r["maxboxacc_v2"] == 1.0 and r["maxboxacc"] == 1.0
    o = wsol.evaluate(None, None, maps, gt, np.array([True, False]), (32, 32), protocol="original")
    assert o["tau"] == wsol.ORIGINAL_TAU and o["gt_known_loc"] == 1.0 and o["top1_loc"] == 0.5
    o3 = wsol.evaluate(None, None, np.concatenate([maps, maps[:1]]), np.concatenate([gt, gt[:1]]),
                       np.array([True, False, False]), (32, 32), protocol="original", running_average=2)
    assert o3["top1_loc"] == pytest.approx(np.mean([0.5, 0.0]))
    with pytest.raises(ValueError, match="protocol"):
        wsol.evaluate(maps, gt, maps, gt, [True, True], (32, 32), protocol="half-open")


def test_bad_input():
    m = np.zeros((2, 8, 8), np.float32)
    m[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        wsol.iou_curves(m, np.zeros((2, 4)), [0.5])
    with pytest.raises(ValueError, match="NaN"):
        wsol.normalize(m)
    m[1, 2, 2] = np.inf
    with pytest.raises(ValueError, match="contain inf"):
        wsol.normalize(m)
    ok = np.zeros((1, 8, 8))
    with pytest.raises(ValueError, match="ground-truth"):
        wsol.iou_curves(np.zeros((2, 8, 8)), np.zeros((3, 4)), [0.5])
    with pytest.raises(ValueError, match=r"x0 <= x1"):
        wsol.iou_curves(ok, np.array([[5, 0, 2, 4]]), [0.5])
    with pytest.raises(ValueError, match=r"y0 <= y1"):
        wsol.iou_curves(ok, np.array([[0, 5, 2, 4]]), [0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        wsol.iou_curves(ok, np.zeros((1, 4)), np.arange(0, 100))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        wsol.max_box_acc(np.zeros((3, 2)), delta=50)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        wsol.gt_known_loc(np.zeros(3), delta=0)
    with pytest.raises(ValueError, match="components"):
        wsol.iou_curves(ok, np.zeros((1, 4)), [0.5], components="biggest")
    with pytest.raises(ValueError, match="thresholds"):
        wsol.iou_curves(ok, np.zeros((1, 4)), [])
    with pytest.raises(ValueError, match="shape"):
        wsol.iou_curves(np.zeros((8,)), np.zeros((1, 4)), [0.5])


def test_opencv_version_is_4():
    assert cv2.__version__.split(".")[0] == "4"


def test_centre_prior_and_original_protocol_from_the_curve():
    blob = wsol.centre_prior(3, 7, 7)
    assert blob.shape == (3, 7, 7) and blob[0, 3, 3] == blob.max() and np.array_equal(blob[0], blob[2])
    gt = np.array([[10, 10, 21, 21]] * 3, float)  # a centred box on 32×32
    correct = np.array([True, True, False])
    for t in (wsol.default_thresholds(0.1), np.array([0.15, 0.5])):  # 0.2 on the grid, then off it
        r = wsol.evaluate(blob, gt, blob, gt, correct, (32, 32), t, original=True, running_average=2)
        o = wsol.evaluate(None, None, blob, gt, correct, (32, 32), protocol="original")
        ra = wsol.evaluate(None, None, blob, gt, correct, (32, 32), protocol="original", running_average=2)
        assert len(t) != 10 or (r["gt_known_loc"] == 1.0 and r["top1_loc"] == pytest.approx(2 / 3))
        assert r["original_gt_known_loc"] == o["gt_known_loc"] and r["original_top1_loc"] == o["top1_loc"]
        assert r["original_top1_loc_running"] == ra["top1_loc"]
    assert "original_top1_loc" not in wsol.evaluate(blob, gt, blob, gt, correct, (32, 32), [0.5])


def test_boxes_beyond_the_maps_and_empty_maps_are_one_clear_error():
    maps = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    at_edge = np.array([[0, 0, 16, 16], [3, 4, 10, 12]])  # resize_boxes of a full-image box ends at W
    assert wsol.iou_curves(maps, at_edge, [0.5]).shape == (2, 1)
    in_image_pixels = np.array([[40, 30, 300, 200], [3, 4, 10, 12]])  # resize_boxes forgotten
    with pytest.raises(ValueError, match=r"1 of 2 ground-truth entries reach beyond the 16x16 maps \(first: entry 0.*"
                                         r"resize_boxes\(boxes, image_sizes, \(16, 16\)\)"):
        wsol.iou_curves(maps, in_image_pixels, [0.5])
    with pytest.raises(ValueError, match="reach beyond the 16x16 maps"):
        wsol.evaluate(maps[:, :4, :4], at_edge, maps[:, :4, :4], in_image_pixels, [True, False], (16, 16))
    for empty in (np.zeros((0, 8, 8)), np.array([]), []):
        with pytest.raises(ValueError, match=r"no maps to score: an empty array of shape"):
            wsol.iou_curves(empty, np.zeros((0, 4)), [0.5])
    with pytest.raises(ValueError, match="no maps to score"):
        wsol.evaluate(maps, at_edge, np.zeros((0, 4, 4)), np.zeros((0, 4)), [], (16, 16))


def _random_maps(rng, n, size):
    """Maps of many shapes at one size: smooth CAM-like, plateaus, rings with holes, speckle (many contours),
    quantised blobs, all-zero and constant maps, and copies of earlier maps (contoured once)."""
    yy, xx = np.mgrid[:size, :size] / size
    maps = []
    for i in range(n):
        kind = rng.integers(0, 8)
        if kind == 0:
            m = wsol.upsample(rng.standard_normal((1, 7, 7)).astype(np.float32), (size, size))[0]
        elif kind == 1:
            m = wsol.upsample(rng.integers(0, 3, (1, 5, 5)).astype(np.float32), (size, size))[0].round(1)
        elif kind == 2:
            r = np.hypot(yy - rng.uniform(0.3, 0.7), xx - rng.uniform(0.3, 0.7))
            m = sum(rng.uniform(0.2, 1) * ((r > a) & (r < a + rng.uniform(0.02, 0.1))) for a in rng.uniform(0, 0.4, 3))
        elif kind == 3:
            m = rng.random((size, size)) ** 4
        elif kind == 4:
            m = np.floor(4 * np.exp(-((yy - rng.random()) ** 2 + (xx - rng.random()) ** 2) / rng.uniform(0.01, 0.1)))
        elif kind == 5:
            m = np.zeros((size, size)) + rng.integers(0, 2) * rng.standard_normal()
        else:
            m = maps[rng.integers(0, len(maps))] if maps else np.zeros((size, size))
        maps.append(np.asarray(m, np.float32))
    return wsol.normalize(np.stack(maps))


@pytest.mark.parametrize("size, n", [(64, 130), (112, 100), (224, 30)])
def test_iou_curves_equal_plain_loop_on_random_maps(size, n):
    """Property check: a few hundred random maps, several true boxes per image, unsorted thresholds."""
    rng = np.random.default_rng(size)
    maps = _random_maps(rng, n, size)
    gts = []
    for _ in range(n):
        xy = rng.integers(0, size, (rng.integers(1, 4), 2, 2))
        gts.append(np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1))
    t = rng.permutation(np.r_[wsol.default_thresholds(0.05), rng.random(6) * 0.999])
    ref_largest, ref_all = reference_curves(maps, gts, t)
    largest, best = wsol._curves(maps, gts, t)
    assert np.array_equal(largest, ref_largest)
    assert np.array_equal(best, ref_all)


@pytest.mark.parametrize("stack_pixels", [1, 3 * 49 * 48])  # one mask per findContours call; three
def test_small_stacks_and_chunks_give_the_same_curves(monkeypatch, stack_pixels):
    """Masks split over several findContours stacks, maps over several chunks (copies in different chunks)."""
    rng = np.random.default_rng(3)
    maps = _random_maps(rng, 40, 48)
    gts = [np.array([[5, 6, 30, 40], [0, 0, 47, 10]])] * 40
    t = wsol.default_thresholds(0.03)
    monkeypatch.setattr(wsol, "_PIXELS_PER_STACK", stack_pixels)
    monkeypatch.setattr(wsol, "_PIXELS_PER_CALL", 5 * 48 * 48)
    ref_largest, ref_all = reference_curves(maps, gts, t)
    largest, best = wsol._curves(maps, gts, t)
    assert np.array_equal(largest, ref_largest)
    assert np.array_equal(best, ref_all)


def _one_contour_table(u8):
    """wsol._one_contour of uint8 maps (n, H, W), with the padded stack and histograms _contour_tables gives it."""
    n, H, W = u8.shape
    padded = np.zeros((n, H + 1, W), np.uint8)
    padded[:, :H] = u8
    hist = np.stack([np.bincount(m.ravel(), minlength=256) for m in u8]).ravel()
    return wsol._one_contour(u8, padded, hist)


def _hard_maps(rng, n, h, w):
    """Random maps that stress the one-contour proof: binary speckle (diagonal-only contacts, single pixels,
    holes touching diagonally), diagonal stripes, quantised bumps off and on the border, rings, plateaus."""
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    maps = []
    for _ in range(n):
        kind = rng.integers(0, 6)
        if kind == 0:
            m = rng.random((h, w)) < rng.uniform(0.1, 0.9)
        elif kind == 1:
            stripes = (np.arange(h)[:, None] + rng.integers(1, 3) * np.arange(w)) % rng.integers(2, 5) == 0
            m = stripes * rng.random((h, w))
        elif kind == 2:
            cy, cx = rng.uniform(-0.2, 1.2, (2, rng.integers(1, 5)))
            m = sum(rng.uniform(0.2, 1) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / rng.uniform(0.002, 0.1))
                    for y, x in zip(cy, cx))
            m = np.floor(m * rng.integers(3, 40))
        elif kind == 3:
            r = np.hypot(yy - rng.uniform(0, 1), xx - rng.uniform(0, 1))
            m = sum(rng.uniform(0.2, 1) * ((r > a) & (r < a + rng.uniform(0.01, 0.2)))
                    for a in rng.uniform(0, 0.6, 4))
        elif kind == 4:
            m = wsol.upsample(rng.standard_normal((1, 4, 4)).astype(np.float32), (h, w))[0]
            m = np.round(m * rng.integers(1, 6))
        else:
            m = wsol.upsample(rng.standard_normal((1, 5, 5)).astype(np.float32), (h, w))[0]
            m[0] = m.max() + 1
            m[:, -1] = m.max() * rng.uniform(0.5, 1.1)
        maps.append(np.asarray(m, np.float32))
    return wsol.normalize(np.stack(maps))


@pytest.mark.parametrize("shape", [(40, 40), (23, 57), (3, 5), (1, 9), (6, 1)])
def test_one_contour_decisions_are_never_wrong(shape):
    """Every cut-off the fast path skips has exactly one contour, counted by findContours (random maps of all kinds)."""
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    h, w = shape
    maps = np.concatenate([_smooth_maps(20, h, w, h * w), _hard_maps(rng, 60, h, w),
                           wsol.normalize(rng.random((10, h, w)).astype(np.float32) ** 3)]
                          + ([_random_maps(rng, 30, h)] if h == w else []))
    u8 = wsol.to_uint8(maps)
    one = _one_contour_table(u8)
    decided = 0
    for m, row in zip(u8, one):
        for c in np.flatnonzero(row):
            mask = (m > c).view(np.uint8)
            assert len(cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]) == 1, (m, c)
            decided += 1
    assert decided > 0
    t = wsol.default_thresholds(0.01)
    gts = [np.array([[0, 0, w // 2, h // 2], [w // 3, h // 4, w - 1, h - 1]])] * len(maps)
    ref_largest, ref_all = reference_curves(maps, gts, t)
    largest, best = wsol._curves(maps, gts, t)
    assert np.array_equal(largest, ref_largest)
    assert np.array_equal(best, ref_all)


def test_smooth_single_blobs_skip_find_contours(monkeypatch):
    """The fast path is taken: a centred blob needs no findContours call; smooth CAMs skip most of their masks."""
    calls = []
    find = cv2.findContours
    monkeypatch.setattr(cv2, "findContours", lambda *a, **k: calls.append(1) or find(*a, **k))
    blob = wsol.normalize(wsol.centre_prior(2, 112, 112))
    gt = np.array([[30, 30, 80, 80]] * 2)
    t = wsol.default_thresholds(0.01)
    largest, best = wsol._curves(blob, gt, t)
    assert calls == []
    ref_largest, ref_all = reference_curves(blob, gt, t)
    assert np.array_equal(largest, ref_largest) and np.array_equal(best, ref_all)
    u8 = wsol.to_uint8(wsol.prepare(_bench_wsol().make_cams(20, "blobs"), (112, 112)))
    one = _one_contour_table(u8)
    cuts = [np.unique(c) for c in wsol._cutoffs(u8, t)]
    assert np.mean([one[i, c].mean() for i, c in enumerate(cuts)]) > 0.5


def test_histograms_stay_exact_beyond_float32_counts():
    """cv2.calcHist counts in float32: 2^24 + 1 equal values take the np.bincount path."""
    assert wsol._histogram(np.zeros((1 << 24) + 1, np.uint8))[0] == (1 << 24) + 1
    x = np.random.default_rng(0).integers(0, 256, (37, 41), dtype=np.uint8)
    assert np.array_equal(wsol._histogram(x), np.bincount(x.ravel(), minlength=256))
