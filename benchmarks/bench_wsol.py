"""MaxBoxAcc and MaxBoxAccV2 over many maps × 100 thresholds: ``wsol.iou_curves`` vs the plain OpenCV loop.

The reference is the plain loop of wsolevaluation's rules, run in the same process: for every map
and every τ, ``cv2.threshold`` + ``cv2.findContours`` on the full image, every contour's box and
the largest contour's box (``wsol.reference_box_table``), then the +1 IoU. ``wsol.iou_curves``
must give identical IoU matrices (checked here and in tests/test_wsol.py). One thread, medians.

    .venv/bin/python benchmarks/bench_wsol.py [--sizes 224 64] [--maps 1000 500] [--repeats 3] [--workers 1 2]
    .venv/bin/python benchmarks/bench_wsol.py --bounds [MAPS]

``--bounds`` measures what any exact one-thread method has to beat, per map at 224 × 224 and 100
thresholds: the plain loop, one ``cv2.findContours`` call, scikit-image's component tree
(``morphology.max_tree``, the one-pass structure over all thresholds), and the number of contour
pixels the 100 masks hold (every one of them bounds a region whose box or area is needed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from infocam import wsol  # noqa: E402


def plain_loop(maps, gt, thresholds):
    """Per image, per threshold OpenCV, written as lean as the reference evaluator: (largest, all) IoUs.

    One ``findContours`` serves both modes (the reference runs once per mode, so this is the faster
    of the two ways to use it); boxes as wsolevaluation builds them, IoUs per image in one call.
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
        ious = wsol.iou(np.array(boxes, float), gt[i][None])
        np.maximum.at(best[i], np.array(slots), ious)
        largest[i] = ious[big]
    return largest, best


def wsol_curves(maps, gt, thresholds):
    return wsol._curves(maps, gt, thresholds)


def make_maps(n, size, seed=0, grid=14):
    """CAM-like maps: smooth 14×14 fields (3×3 mean of noise) stretched to size×size (bicubic), normalised."""
    raw = torch.randn(n, 1, grid, grid, generator=torch.Generator().manual_seed(seed))
    raw = torch.nn.functional.avg_pool2d(raw, 3, 1, 1).squeeze(1)
    return wsol.normalize(wsol.upsample(raw, (size, size)))


def make_gt(n, size, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.integers(0, size // 2, (n, 2))
    return np.concatenate([xy, xy + rng.integers(4, size // 2, (n, 2))], 1).astype(float)


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _job(args):
    fn, maps, gt, t = args
    return fn(maps, gt, t)


def in_workers(fn, maps, gt, t, workers):
    """Split the maps over ``workers`` processes (one thread each); results in order."""
    parts = np.array_split(np.arange(len(maps)), workers)
    with ProcessPoolExecutor(workers) as pool:
        outs = list(pool.map(_job, [(fn, maps[p], gt[p], t) for p in parts]))
    return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


def bounds(n, size=224, repeats=3):
    """Per-map costs that bound an exact evaluator (see the module docstring), medians of ``repeats``."""
    from skimage.morphology import max_tree

    maps, gt = make_maps(n, size), make_gt(n, size)
    t = wsol.default_thresholds(0.01)
    u8 = wsol.to_uint8(maps)
    cuts = wsol._cutoffs(u8, t)
    masks = [[cv2.threshold(u8[i], int(c), 255, cv2.THRESH_BINARY)[1] for c in cuts[i]] for i in range(min(n, 20))]

    def contours_only():
        for per_map in masks:
            for mask in per_map:
                cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)

    plain, _ = timed(lambda: plain_loop(maps, gt, t), repeats)
    find, _ = timed(contours_only, repeats)
    tree, _ = timed(lambda: [max_tree(m, connectivity=2) for m in u8], repeats)
    pixels = sum(sum(len(c) for c in cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)[0])
                 for per_map in masks for mask in per_map) / len(masks)
    per_map = 1e3 / n
    print(f"{size}×{size}, {len(t)} thresholds, {n} maps, ms per map (median of {repeats}):")
    print(f"  plain OpenCV loop            {plain * per_map:8.2f}   (a 5× target: {plain * per_map / 5:.2f})")
    print(f"  findContours alone           {find * 1e3 / len(masks):8.2f}   "
          f"({find * 1e9 / (len(masks) * len(t) * size * size):.2f} ns per pixel per threshold)")
    print(f"  skimage max_tree (one pass)  {tree * per_map:8.2f}")
    print(f"  contour pixels over the {len(t)} masks: {pixels:,.0f} per map")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 64])
    parser.add_argument("--maps", type=int, nargs="+", default=[1000, 500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--bounds", type=int, nargs="?", const=100, metavar="MAPS",
                        help="per-map costs that bound an exact evaluator, on MAPS maps (100)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if args.bounds is not None:
        return bounds(args.bounds, repeats=args.repeats)
    t = wsol.default_thresholds(0.01)
    print(f"{len(t)} thresholds, median of {args.repeats}, OpenCV {cv2.__version__}, one thread per process")
    print(f"{'size':>6}{'maps':>6}{'workers':>8}{'plain (s)':>11}{'wsol (s)':>14}{'ratio':>7}"
          f"{'MaxBoxAcc':>11}{'MaxBoxAccV2':>13}  identical")
    for size, n in zip(args.sizes, args.maps):
        maps, gt = make_maps(n, size), make_gt(n, size)
        wsol_curves(maps[:2], gt[:2], t)  # warm imports
        for workers in args.workers:
            if workers == 1:
                t_ref, ref = timed(lambda: plain_loop(maps, gt, t), args.repeats)
                t_new, new = timed(lambda: wsol_curves(maps, gt, t), args.repeats)
            else:
                t_ref, ref = timed(lambda: in_workers(plain_loop, maps, gt, t, workers), args.repeats)
                t_new, new = timed(lambda: in_workers(wsol_curves, maps, gt, t, workers), args.repeats)
            same = all(np.array_equal(a, b) for a, b in zip(ref, new))
            acc, v2 = wsol.max_box_acc(new[0]), wsol.max_box_acc_v2(new[1])
            if (acc, v2) != (wsol.max_box_acc(ref[0]), wsol.max_box_acc_v2(ref[1])):
                same = False
            print(f"{size:>6}{n:>6}{workers:>8}{t_ref:>11.3f}{t_new:>14.3f}{t_ref / t_new:>7.2f}"
                  f"{acc:>11.4f}{v2:>13.4f}  {same}")
            if not same:
                raise SystemExit("results differ")


if __name__ == "__main__":
    main()
