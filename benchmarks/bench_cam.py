"""infoCAM vs CAM: time per batch on the chapter's CNN-GAP (same model, same batch; medians).

Two timings: the whole step (forward pass + map) and the map alone (features already stored).
infoCAM's subtraction folds into the class weights, so only the k×k box sum is extra.

    .venv/bin/python benchmarks/bench_cam.py [--batch 256] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from infocam.cam import CAM, InfoCAM
from infocam.models.cnn_gap import CNNGAP


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--canvas", type=int, default=56)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 by default: on a shared machine two threads mostly measure contention)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    net = CNNGAP(num_classes=10, widths=(8, 16, 32, 32)).eval()
    x = torch.rand(args.batch, 1, args.canvas, args.canvas)
    cls = torch.randint(0, 10, (args.batch,))
    extractors = {
        "CAM": lambda: CAM(net, "features", "fc"),
        "infoCAM mean-others k=3": lambda: InfoCAM(net, "features", "fc", variant="mean-others", window=3),
        "infoCAM least-likely k=3": lambda: InfoCAM(net, "features", "fc", variant="least-likely", window=3),
        "infoCAM mean-others k=3 faithful": lambda: InfoCAM(net, "features", "fc", window=3, mode="faithful"),
    }
    rows = {}
    with torch.no_grad():
        for name, make in extractors.items():
            with make() as cam:
                def step():
                    logits = net(x)
                    return cam(cls, logits)

                step_t = median_time(step, args.repeats)
                logits = net(x)
                map_t = median_time(lambda: cam(cls, logits), args.repeats)
            rows[name] = (step_t, map_t)
    base_step, base_map = rows["CAM"]
    print(f"CNN-GAP, batch {args.batch} of {args.canvas}×{args.canvas}, {args.threads} thread(s), median of {args.repeats} (ms)")
    print(f"{'extractor':<34}{'forward+map':>12}{'ratio':>7}{'map only':>10}{'ratio':>7}")
    for name, (s, m) in rows.items():
        print(f"{name:<34}{1e3 * s:>12.2f}{s / base_step:>7.2f}{1e3 * m:>10.3f}{m / base_map:>7.2f}")


if __name__ == "__main__":
    main()
