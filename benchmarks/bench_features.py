"""Feature-extraction throughput for the chapter-3 linear probe, and what the cache saves.

Extracts pooled EfficientNet-Lite0 features of the first N images of the CUB folder under the
data root (or of generated images when there is none) at several input sizes into a temporary
cache, then repeats the call to time the cached read. Prints images/s (median of repeats).
Usage: python benchmarks/bench_features.py [--images 96] [--sizes 160 224] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("INFOCAM_PROGRESS", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in chapter 3: no spinning on a busy machine


def _images(n: int, tmp: Path) -> list[Path]:
    from infocam.data.cub import find_cub, load_cub

    folder = find_cub()
    if folder is not None:
        print(f"images: first {n} of {folder}")
        return load_cub(folder, check_images=False).paths[:n]
    import numpy as np
    from PIL import Image

    print(f"images: {n} generated 256x320 JPEGs (no CUB folder under the data root)")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = tmp / f"img_{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (256, 320, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INFOCAM_CACHE"] = str(Path(tmp) / "cache")
        from infocam.models.backbones import extract_features, load_backbone

        paths = _images(args.images, Path(tmp))
        load_backbone()  # import and weight loading outside the timings
        print(f"{'size':>6s} {'first run images/s':>19s} {'cached read s':>14s} {'speed-up':>9s}")
        for size in args.sizes:
            cold, warm = [], []
            for rep in range(args.repeats):
                start = time.perf_counter()
                extract_features("efficientnet_lite0", paths, size=size, use_cache=False)
                cold.append(time.perf_counter() - start)
            extract_features("efficientnet_lite0", paths, size=size)  # fill the cache
            for rep in range(args.repeats):
                start = time.perf_counter()
                extract_features("efficientnet_lite0", paths, size=size)
                warm.append(time.perf_counter() - start)
            c, w = statistics.median(cold), statistics.median(warm)
            print(f"{size:6d} {len(paths) / c:19.1f} {w:14.3f} {c / w:8.0f}x")


if __name__ == "__main__":
    main()
