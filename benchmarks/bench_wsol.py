"""MaxBoxAcc and MaxBoxAccV2: the project's evaluator vs wsolevaluation's own two-pass loop, τ steps 0.01 and 0.001.

The reference is :func:`reference_two_pass`, a transcription of the evaluator of wsolevaluation
(Choe et al., CVPR 2020; clovaai/wsolevaluation, ``evaluation.py``, MIT licence): per map and per
τ, ``compute_bboxes_from_scoremaps`` (``cv2.threshold`` + ``cv2.findContours`` on the full image),
then ``BoxEvaluator.accumulate`` / ``compute``, run once per mode as its ``box_v2_metric`` switch
does — MaxBoxAcc (largest contour, the δ = 50 entry) and MaxBoxAccV2 (all contours, the mean over
δ ∈ {30, 50, 70}). The project computes the IoU curves of both modes in one call
(``wsol._curves``, behind ``iou_curves`` and ``evaluate``), then ``max_box_acc`` and
``max_box_acc_v2``.

For each step the script first asserts that both give identical IoU curves and metrics
(:func:`check_identical`; tests/test_wsol.py runs the same check at a small size), then reports
ms per map: the reference's MaxBoxAcc pass, its MaxBoxAccV2 pass, their sum, the project (both
metrics), and reference / project. CAM-like maps (:func:`make_maps`), one thread
(OMP_NUM_THREADS=1, ``cv2.setNumThreads(1)``, ``torch.set_num_threads(1)``), median of
``--repeats``. Issue 24's target: a ratio of at least 5 at step 0.001, wsolevaluation's default
``cam_curve_interval``.

    .venv/bin/python benchmarks/bench_wsol.py [--maps 200] [--size 224] [--steps 0.01 0.001]
                                              [--repeats 3] [--json PATH]
    .venv/bin/python benchmarks/bench_wsol.py --bounds [MAPS]
    .venv/bin/python benchmarks/bench_wsol.py --evaluate [MAPS] [--size 112] [--steps 0.01]

``--json PATH`` also writes the table (and the metrics) as JSON. ``--bounds`` measures what any
exact one-thread method has to beat, per map at 224 × 224 and step 0.01: the reference's two
passes, the leanest per-threshold loop (:func:`plain_loop`, one ``findContours`` per τ serving both
modes), one ``cv2.findContours`` call, scikit-image's component tree (``morphology.max_tree``, the
one-pass structure over all thresholds), and the number of contour pixels the masks hold.
``--evaluate`` times ``wsol.evaluate`` as chapters 4 and 5 call it (via
``infocam.localisation.score``): raw 7×7 class maps (:func:`make_cams`: smooth blobs, as real
CAMs, and cubed noise, many contours) upsampled to ``--size``, half to choose τ, half to report,
``original=True``; ms per map (both halves), median of ``--repeats``, one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

if __name__ == "__main__":
    os.environ["OMP_NUM_THREADS"] = "1"  # one thread, set before numpy and torch load (not when imported by tests)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from infocam import wsol  # noqa: E402
from infocam.utils import atomic_write_text  # noqa: E402

_CONTOUR_INDEX = 1 if cv2.__version__.split(".")[0] == "3" else 0
IOU_THRESHOLD_LIST = [30, 50, 70]


# -- the reference: a transcription of wsolevaluation's evaluation.py and util.py (MIT licence) ----
# Their code line for line, with ``np.float`` (gone from NumPy 1.24) written as ``np.float64``.
def _check_scoremap_validity(scoremap):
    if not isinstance(scoremap, np.ndarray):
        raise TypeError("Scoremap must be a numpy array; it is {}.".format(type(scoremap)))
    if scoremap.dtype != np.float64:
        raise TypeError("Scoremap must be of np.float type; it is of {} type.".format(scoremap.dtype))
    if len(scoremap.shape) != 2:
        raise ValueError("Scoremap must be a 2D array; it is {}D.".format(len(scoremap.shape)))
    if np.isnan(scoremap).any():
        raise ValueError("Scoremap must not contain nans.")
    if (scoremap > 1).any() or (scoremap < 0).any():
        raise ValueError("Scoremap must be in range [0, 1].scoremap.min()={}, scoremap.max()={}."
                         .format(scoremap.min(), scoremap.max()))


def _check_box_convention(boxes, convention):
    if (boxes < 0).any():
        raise RuntimeError("Box coordinates must be non-negative.")
    if len(boxes.shape) == 1:
        boxes = np.expand_dims(boxes, 0)
    elif len(boxes.shape) != 2:
        raise RuntimeError("Box array must have dimension (4) or (num_boxes, 4).")
    if boxes.shape[1] != 4:
        raise RuntimeError("Box array must have dimension (4) or (num_boxes, 4).")
    if convention == "x0y0x1y1":
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
    elif convention == "xywh":
        widths = boxes[:, 2]
        heights = boxes[:, 3]
    else:
        raise ValueError("Unknown convention {}.".format(convention))
    if (widths < 0).any() or (heights < 0).any():
        raise RuntimeError("Boxes do not follow the {} convention.".format(convention))


def _calculate_multiple_iou(box_a, box_b):
    num_a = box_a.shape[0]
    num_b = box_b.shape[0]
    _check_box_convention(box_a, "x0y0x1y1")
    _check_box_convention(box_b, "x0y0x1y1")
    box_a = np.tile(box_a, num_b)
    box_a = np.expand_dims(box_a, axis=1).reshape((num_a, num_b, -1))
    box_b = np.tile(box_b, num_a)
    box_b = np.expand_dims(box_b, axis=1).reshape((num_b, num_a, -1))
    box_b = np.transpose(box_b, (1, 0, 2))
    min_x = np.maximum(box_a[:, :, 0], box_b[:, :, 0])
    min_y = np.maximum(box_a[:, :, 1], box_b[:, :, 1])
    max_x = np.minimum(box_a[:, :, 2], box_b[:, :, 2])
    max_y = np.minimum(box_a[:, :, 3], box_b[:, :, 3])
    area_intersect = np.maximum(0, max_x - min_x + 1) * np.maximum(0, max_y - min_y + 1)
    area_a = (box_a[:, :, 2] - box_a[:, :, 0] + 1) * (box_a[:, :, 3] - box_a[:, :, 1] + 1)
    area_b = (box_b[:, :, 2] - box_b[:, :, 0] + 1) * (box_b[:, :, 3] - box_b[:, :, 1] + 1)
    denominator = area_a + area_b - area_intersect
    degenerate_indices = np.where(denominator <= 0)
    denominator[degenerate_indices] = 1
    ious = area_intersect / denominator
    ious[degenerate_indices] = 0
    return ious


def _compute_bboxes_from_scoremaps(scoremap, scoremap_threshold_list, multi_contour_eval=False):
    _check_scoremap_validity(scoremap)
    height, width = scoremap.shape
    scoremap_image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)

    def scoremap2bbox(threshold):
        _, thr_gray_heatmap = cv2.threshold(src=scoremap_image, thresh=int(threshold * np.max(scoremap_image)),
                                            maxval=255, type=cv2.THRESH_BINARY)
        contours = cv2.findContours(image=thr_gray_heatmap, mode=cv2.RETR_TREE,
                                    method=cv2.CHAIN_APPROX_SIMPLE)[_CONTOUR_INDEX]
        if len(contours) == 0:
            return np.asarray([[0, 0, 0, 0]]), 1
        if not multi_contour_eval:
            contours = [max(contours, key=cv2.contourArea)]
        estimated_boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            x0, y0, x1, y1 = x, y, x + w, y + h
            x1 = min(x1, width - 1)
            y1 = min(y1, height - 1)
            estimated_boxes.append([x0, y0, x1, y1])
        return np.asarray(estimated_boxes), len(contours)

    estimated_boxes_at_each_thr = []
    number_of_box_list = []
    for threshold in scoremap_threshold_list:
        boxes, number_of_box = scoremap2bbox(threshold)
        estimated_boxes_at_each_thr.append(boxes)
        number_of_box_list.append(number_of_box)
    return estimated_boxes_at_each_thr, number_of_box_list


def reference_pass(maps, gt_boxes, cam_curve_interval, box_v2_metric):
    """One run of wsolevaluation's ``evaluate_wsol`` on saved score maps, transcribed: (IoUs (N, T), metric in %).

    ``box_v2_metric`` sets ``multi_contour_eval`` and ``multi_iou_eval`` as their config does.
    Each map goes through ``t2n`` (float64) and ``BoxEvaluator.accumulate``; the score maps are
    already normalised and at image size, so the resize and ``normalize_scoremap`` of their
    ``CAMComputer`` (which wrote them) do not apply. The per-τ IoUs ``accumulate`` computes
    (``sliced_multiple_iou``) are kept for the equality check; ``gt_boxes`` are integer pixel
    boxes, as their ``resize_bbox`` makes them.
    """
    multi_contour_eval = multi_iou_eval = box_v2_metric
    cam_threshold_list = list(np.arange(0, 1, cam_curve_interval))
    num_correct = {iou_threshold: np.zeros(len(cam_threshold_list)) for iou_threshold in IOU_THRESHOLD_LIST}
    cnt = 0
    curves = []
    for cam, gt in zip(maps, gt_boxes):
        scoremap = cam.astype(np.float64)  # t2n
        boxes_at_thresholds, number_of_box_list = _compute_bboxes_from_scoremaps(
            scoremap=scoremap, scoremap_threshold_list=cam_threshold_list, multi_contour_eval=multi_contour_eval)
        boxes_at_thresholds = np.concatenate(boxes_at_thresholds, axis=0)
        multiple_iou = _calculate_multiple_iou(np.array(boxes_at_thresholds), np.array(gt))
        idx = 0
        sliced_multiple_iou = []
        for nr_box in number_of_box_list:
            sliced_multiple_iou.append(max(multiple_iou.max(1)[idx:idx + nr_box]))
            idx += nr_box
        for _THRESHOLD in IOU_THRESHOLD_LIST:
            correct_threshold_indices = np.where(np.asarray(sliced_multiple_iou) >= (_THRESHOLD / 100))[0]
            num_correct[_THRESHOLD][correct_threshold_indices] += 1
        cnt += 1
        curves.append(sliced_multiple_iou)
    performance = [(num_correct[t] * 100. / float(cnt)).max() for t in IOU_THRESHOLD_LIST]  # compute()
    if multi_iou_eval:
        performance = np.average(performance)
    else:
        performance = performance[IOU_THRESHOLD_LIST.index(50)]
    return np.array(curves, dtype=np.float64), float(performance)


def reference_two_pass(maps, gt_boxes, cam_curve_interval):
    """wsolevaluation's evaluator as its users get both metrics: the MaxBoxAcc run, then the MaxBoxAccV2 run.

    A transcription of ``compute_bboxes_from_scoremaps`` and ``BoxEvaluator.accumulate`` /
    ``compute`` (:func:`reference_pass`), with cv2 as they call it. Returns
    ``((largest IoUs, MaxBoxAcc %), (all-contour IoUs, MaxBoxAccV2 %))``.
    """
    return (reference_pass(maps, gt_boxes, cam_curve_interval, box_v2_metric=False),
            reference_pass(maps, gt_boxes, cam_curve_interval, box_v2_metric=True))


# -- the project ----------------------------------------------------------------------------------
def project(maps, gt_boxes, cam_curve_interval):
    """The project's evaluator, both metrics from one call: (largest IoUs, MaxBoxAcc, all IoUs, MaxBoxAccV2)."""
    largest, best = wsol._curves(maps, gt_boxes, wsol.default_thresholds(cam_curve_interval))
    return largest, wsol.max_box_acc(largest), best, wsol.max_box_acc_v2(best)


def check_identical(maps, gt_boxes, cam_curve_interval, ref=None, ours=None):
    """Assert the project equals the reference: the same IoU curves bit for bit, the same metrics.

    The metrics are compared as counts of images: the reference reports k · 100 / N per δ, the
    project k / N, and these need not be the same float after a change of unit; the check asks
    for one integer k per δ that gives both exactly. ``ref`` and ``ours`` are results already
    computed (timed runs); else they are computed here. Returns the metrics (fractions).
    """
    (ref_largest, ref_acc), (ref_all, ref_v2) = ref or reference_two_pass(maps, gt_boxes, cam_curve_interval)
    largest, acc, best, v2 = ours or project(maps, [np.asarray(g) for g in gt_boxes], cam_curve_interval)
    where = f"at step {cam_curve_interval}"
    assert np.array_equal(largest, ref_largest), f"largest-contour IoU curves differ {where}"
    assert np.array_equal(best, ref_all), f"all-contour IoU curves differ {where}"
    n = len(maps)
    ks = {}
    for curves, mode in ((largest, "largest"), (best, "all")):
        for delta in IOU_THRESHOLD_LIST:
            k = int((curves >= delta / 100).sum(axis=0).max())
            assert wsol.max_box_acc(curves, delta / 100) == k / n, f"MaxBoxAcc({delta}, {mode}) is not {k}/{n} {where}"
            ks[mode, delta] = k
    assert acc == ks["largest", 50] / n and ref_acc == ks["largest", 50] * 100. / n, f"MaxBoxAcc differs {where}"
    assert v2 == np.mean([ks["all", d] / n for d in IOU_THRESHOLD_LIST]), f"MaxBoxAccV2 is not its mean {where}"
    assert ref_v2 == np.average([ks["all", d] * 100. / n for d in IOU_THRESHOLD_LIST]), f"MaxBoxAccV2 differs {where}"
    return {"maxboxacc": acc, "maxboxacc_v2": v2}


# -- inputs and timing ----------------------------------------------------------------------------
def make_maps(n, size, seed=0, grid=14):
    """CAM-like maps: smooth 14×14 fields (3×3 mean of noise) stretched to size×size (bicubic), normalised."""
    raw = torch.randn(n, 1, grid, grid, generator=torch.Generator().manual_seed(seed))
    raw = torch.nn.functional.avg_pool2d(raw, 3, 1, 1).squeeze(1)
    return wsol.normalize(wsol.upsample(raw, (size, size)))


def make_gt(maps, seed=0):
    """One integer box per map near its bright part (as ``resize_bbox`` makes them): [[(x0, y0, x1, y1)], ...].

    The box of the pixels above a random level (0.3 to 0.8) of the map, each side moved by up to
    1/16 of the map's side, so IoUs spread over (0, 1) and the metrics count some images.
    """
    rng, size = np.random.default_rng(seed), maps.shape[-1]
    out = []
    for m in maps:
        ys, xs = np.nonzero(m >= rng.uniform(0.3, 0.8))
        box = np.array([xs.min(), ys.min(), xs.max(), ys.max()]) + rng.integers(-(size // 16), size // 16 + 1, 4)
        x0, y0, x1, y1 = np.clip(box, 0, size - 1).tolist()
        out.append([(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))])
    return out


def make_cams(n, kind, seed=0):
    """Raw 7×7 class maps: ``"blobs"`` (1–3 Gaussian bumps of random place, width and height, faint noise, as
    real CAMs) or ``"noise"`` (uniform noise cubed: many small regions, the many-contour case)."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.random((n, 7, 7)).astype(np.float32) ** 3
    yy, xx = np.mgrid[:7, :7]
    cams = 0.05 * rng.standard_normal((n, 7, 7))
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            (cy, cx), sd, height = rng.uniform(0, 6, 2), rng.uniform(0.7, 2.0), rng.uniform(0.3, 1.0)
            cams[i] += height * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sd**2))
    return cams.astype(np.float32)


def evaluate_speed(n, size, step, repeats):
    """ms per map of ``wsol.evaluate`` on ``n`` raw CAMs of each kind (:func:`make_cams`) at ``size`` × ``size``."""
    t = wsol.default_thresholds(step)
    boxes = np.tile(np.array([[0.2, 0.25, 0.7, 0.8]]) * size, (n, 1)).round()
    half = n // 2
    rows = []
    for kind in ("blobs", "noise"):
        cams = make_cams(n, kind)
        wsol.evaluate(cams[:4], boxes[:4], cams[4:8], boxes[4:8], np.ones(4, bool), (size, size), t)  # warm
        seconds, r = timed(lambda: wsol.evaluate(cams[:half], boxes[:half], cams[half:], boxes[half:],
                                                 np.ones(n - half, bool), (size, size), t, original=True), repeats)
        rows.append({"kind": kind, "maps": n, "size": size, "step": step, "ms_per_map": seconds * 1e3 / n,
                     "maxboxacc": r["maxboxacc"], "maxboxacc_v2": r["maxboxacc_v2"]})
        print(f"wsol.evaluate, {kind:5s} CAMs 7×7 → {size}×{size}, {n} maps, step {step:g}: "
              f"{rows[-1]['ms_per_map']:.3f} ms per map (median of {repeats}, one thread)")
    return rows


def timed(fn, repeats):
    """Median wall time of ``repeats`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def measure(maps, gt, step, repeats):
    """One row of the table: times (ms per map) after the equality check on the timed runs' results."""
    gt_arrays = [np.asarray(g) for g in gt]
    t_acc, ref_acc = timed(lambda: reference_pass(maps, gt, step, box_v2_metric=False), repeats)
    t_v2, ref_v2 = timed(lambda: reference_pass(maps, gt, step, box_v2_metric=True), repeats)
    t_ours, ours = timed(lambda: project(maps, gt_arrays, step), repeats)
    metrics = check_identical(maps, gt, step, ref=(ref_acc, ref_v2), ours=ours)
    per_map = 1e3 / len(maps)
    row = {"step": step, "thresholds": len(wsol.default_thresholds(step)),
           "reference_maxboxacc_ms": t_acc * per_map, "reference_maxboxacc_v2_ms": t_v2 * per_map,
           "reference_both_ms": (t_acc + t_v2) * per_map, "project_ms": t_ours * per_map, **metrics}
    row["ratio"] = row["reference_both_ms"] / row["project_ms"]
    return row


# -- bounds ---------------------------------------------------------------------------------------
def plain_loop(maps, gt, thresholds):
    """The leanest per-image, per-threshold OpenCV loop: (largest, all) IoUs, one ``findContours`` per τ for both.

    Boxes as wsolevaluation builds them, IoUs per image in one call; what a per-threshold loop
    costs at best, the bound the project's evaluator is compared with in infocam/wsol.py.
    """
    largest = np.zeros((len(maps), len(thresholds)))
    best = np.zeros_like(largest)
    for i, m in enumerate(maps):
        img = (m.astype(np.float64) * 255).astype(np.uint8)
        height, width = img.shape
        mx = np.max(img)
        boxes, slots, big = [], [], []
        for j, tau in enumerate(thresholds):
            _, binary = cv2.threshold(img, int(tau * mx), 255, cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            if len(contours) == 0:
                big.append(len(boxes))
                boxes.append([0, 0, 0, 0])
                slots.append(j)
                continue
            k = max(range(len(contours)), key=lambda c: cv2.contourArea(contours[c]))
            big.append(len(boxes) + k)
            for contour in contours:
                x, y, w, h = cv2.boundingRect(contour)
                boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
                slots.append(j)
        ious = wsol.iou(np.array(boxes, float), np.asarray(gt[i], float))
        np.maximum.at(best[i], np.array(slots), ious)
        largest[i] = ious[big]
    return largest, best


def bounds(n, size=224, repeats=3):
    """Per-map costs that bound an exact evaluator (see the module docstring), medians of ``repeats``."""
    from skimage.morphology import max_tree

    maps = make_maps(n, size)
    gt = make_gt(maps)
    t = wsol.default_thresholds(0.01)
    u8 = wsol.to_uint8(maps)
    cuts = wsol._cutoffs(u8, t)
    masks = [[cv2.threshold(u8[i], int(c), 255, cv2.THRESH_BINARY)[1] for c in cuts[i]] for i in range(min(n, 20))]

    def contours_only():
        for per_map in masks:
            for mask in per_map:
                cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)

    ref, _ = timed(lambda: reference_two_pass(maps, gt, 0.01), repeats)
    plain, (largest, best) = timed(lambda: plain_loop(maps, gt, t), repeats)
    ours, result = timed(lambda: project(maps, [np.asarray(g) for g in gt], 0.01), repeats)
    if not (np.array_equal(largest, result[0]) and np.array_equal(best, result[2])):
        raise SystemExit("plain_loop and the project's evaluator differ")
    find, _ = timed(contours_only, repeats)
    tree, _ = timed(lambda: [max_tree(m, connectivity=2) for m in u8], repeats)
    pixels = sum(sum(len(c) for c in cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)[0])
                 for per_map in masks for mask in per_map) / len(masks)
    per_map = 1e3 / n
    print(f"{size}×{size}, {len(t)} thresholds, {n} maps, ms per map (median of {repeats}):")
    print(f"  reference, both passes       {ref * per_map:8.2f}   (a 5× target: {ref * per_map / 5:.2f})")
    print(f"  plain one-pass OpenCV loop   {plain * per_map:8.2f}")
    print(f"  project (both metrics)       {ours * per_map:8.2f}")
    print(f"  findContours alone           {find * 1e3 / len(masks):8.2f}   "
          f"({find * 1e9 / (len(masks) * len(t) * size * size):.2f} ns per pixel per threshold)")
    print(f"  skimage max_tree (one pass)  {tree * per_map:8.2f}")
    print(f"  contour pixels over the {len(t)} masks: {pixels:,.0f} per map")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=200, help="number of maps (200)")
    parser.add_argument("--size", type=int, default=224, help="map side in pixels (224)")
    parser.add_argument("--steps", type=float, nargs="+", default=[0.01, 0.001],
                        help="τ grid steps, cam_curve_interval (0.01 0.001)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, median reported (3)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--bounds", type=int, nargs="?", const=100, metavar="MAPS",
                        help="per-map costs that bound an exact evaluator, on MAPS maps (100)")
    parser.add_argument("--evaluate", type=int, nargs="?", const=1450, metavar="MAPS",
                        help="time wsol.evaluate on MAPS raw 7x7 CAMs (blobs, noise) at --size, "
                             "first of --steps (1450)")
    args = parser.parse_args()
    for name in ("maps", "size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    for step in args.steps:
        if not 0 < step < 1:
            parser.error(f"--steps must lie in (0, 1), got {step}")
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if args.bounds is not None:
        return bounds(args.bounds, repeats=args.repeats)
    if args.evaluate is not None:
        if args.evaluate < 2:
            parser.error(f"--evaluate needs at least 2 maps (half choose τ, half report), got {args.evaluate}")
        rows = evaluate_speed(args.evaluate, args.size, args.steps[0], args.repeats)
        if args.json:
            info = {"threads": 1, "opencv": cv2.__version__, "load_average": os.getloadavg(), "evaluate": rows}
            atomic_write_text(args.json, json.dumps(info, indent=2) + "\n")
        return rows
    maps = make_maps(args.maps, args.size)
    gt = make_gt(maps)
    check_identical(maps[:2], gt[:2], 0.1)  # warm imports and caches
    print(f"{args.maps} maps {args.size}×{args.size}, ms per map, median of {args.repeats}, one thread, "
          f"OpenCV {cv2.__version__}; reference = wsolevaluation's loop, one pass per metric")
    print(f"{'step':>7}{'τs':>6}{'ref MaxBoxAcc':>15}{'ref V2':>9}{'ref sum':>9}{'project':>9}{'ratio':>7}"
          f"{'MaxBoxAcc':>11}{'MaxBoxAccV2':>13}  identical")
    rows = []
    for step in args.steps:
        r = measure(maps, gt, step, args.repeats)
        rows.append(r)
        print(f"{step:>7g}{r['thresholds']:>6}{r['reference_maxboxacc_ms']:>15.2f}"
              f"{r['reference_maxboxacc_v2_ms']:>9.2f}{r['reference_both_ms']:>9.2f}{r['project_ms']:>9.2f}"
              f"{r['ratio']:>7.2f}{r['maxboxacc']:>11.4f}{r['maxboxacc_v2']:>13.4f}  True")
    if args.json:
        info = {"maps": args.maps, "size": args.size, "repeats": args.repeats, "threads": 1,
                "opencv": cv2.__version__, "numpy": np.__version__, "python": platform.python_version(),
                "load_average": os.getloadavg(), "rows": rows}
        atomic_write_text(args.json, json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
