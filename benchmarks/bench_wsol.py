"""MaxBoxAccV2 over many maps × 100 thresholds: vectorised ``wsol.iou_curves`` vs a per-image, per-threshold loop.

The reference is the straightforward implementation: for every map and every τ, label ``map > τ``
with ``scipy.ndimage.label`` (8-connected), box every component, take the best IoU. Both give
identical numbers (checked here and in tests/test_wsol.py). Prints medians over repeats.

    .venv/bin/python benchmarks/bench_wsol.py [--maps 1000] [--size 56] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from scipy import ndimage

from infocam import wsol

EIGHT = np.ones((3, 3), bool)


def reference_iou_curves_all(maps, gt, thresholds):
    """Per-image, per-threshold loop (all components), the reference."""
    out = np.zeros((len(maps), len(thresholds)))
    for i, m in enumerate(maps):
        for j, t in enumerate(thresholds):
            labels, n = ndimage.label(m > t, structure=EIGHT)
            if n == 0:
                continue
            boxes = np.array([(c.start, r.start, c.stop, r.stop) for r, c in ndimage.find_objects(labels)], float)
            out[i, j] = wsol.iou(boxes, gt[i]).max()
    return out


def make_maps(n, size, seed=0):
    """CAM-like maps: smooth 14×14 fields stretched to size×size (bicubic), normalised."""
    raw = torch.randn(n, 1, 14, 14, generator=torch.Generator().manual_seed(seed))
    raw = torch.nn.functional.avg_pool2d(raw, 3, 1, 1).squeeze(1)
    return wsol.normalize(wsol.upsample(raw, (size, size)))


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--maps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    maps = make_maps(args.maps, args.size)
    rng = np.random.default_rng(0)
    xy = rng.integers(0, args.size // 2, (args.maps, 2))
    gt = np.concatenate([xy, xy + rng.integers(4, args.size // 2, (args.maps, 2))], 1).astype(float)
    t = wsol.default_thresholds(0.01)
    wsol.iou_curves(maps[:2], gt[:2], t, components="all")  # warm imports
    t_ref, ref = timed(lambda: reference_iou_curves_all(maps, gt, t), args.repeats)
    t_vec, vec = timed(lambda: wsol.iou_curves(maps, gt, t, components="all"), args.repeats)
    same = np.array_equal(ref, vec)
    v2_ref, v2_vec = wsol.max_box_acc_v2(ref), wsol.max_box_acc_v2(vec)
    print(f"MaxBoxAccV2 on {args.maps} maps of {args.size}×{args.size}, {len(t)} thresholds, median of {args.repeats}")
    print(f"{'implementation':<34}{'time (s)':>10}{'MaxBoxAccV2':>14}")
    print(f"{'reference: loop over images × τ':<34}{t_ref:>10.3f}{v2_ref:>14.6f}")
    print(f"{'wsol.iou_curves (one pass)':<34}{t_vec:>10.3f}{v2_vec:>14.6f}")
    print(f"speed-up {t_ref / t_vec:.1f}×; IoU matrices identical: {same}")
    if not same:
        raise SystemExit("results differ")


if __name__ == "__main__":
    main()
