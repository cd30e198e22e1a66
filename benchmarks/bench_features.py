"""Which runtime runs the frozen EfficientNet-Lite0 fastest, how close it gets to the CPU, and the end-to-end gain.

1. Runtimes, in one process on one batch (default 32 real CUB images at 224 px, 2 threads):
   PyTorch eager NCHW (the reference), eager ``channels_last``, ``torch.compile`` and ONNX Runtime
   (the export :mod:`infocam.features` caches). Rounds are interleaved so a busy machine slows
   every runtime alike; prints images/s (median of ``--repeats``), the ratio to eager and the
   largest absolute difference of the (N, 1280, 7, 7) maps from eager's.
2. The compute bound: the network's FLOPs per image (PyTorch's FLOP counter, 2 per multiply-add)
   and the fraction of a large float32 matmul's FLOP/s (same process, same threads) each runtime
   achieves.
3. End to end: :func:`infocam.features.extract_features` (decode + resize in threads + forward +
   cache write) on ``--images`` images with ``runtime="torch"`` (eager) and ``"auto"`` (ONNX Runtime).

Usage: python benchmarks/bench_features.py [--batch 32] [--repeats 5] [--threads 2] [--images 256]
       [--no-compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("INFOCAM_PROGRESS", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in the chapters: no spinning on a busy machine


def _images(n: int, tmp: Path) -> list[Path]:
    from infocam.data.cub import find_cub, load_cub

    folder = find_cub()
    if folder is not None:
        paths = load_cub(folder, check_images=False).paths
        print(f"images: first {min(n, len(paths))} of {folder}")
        return paths[:n]
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


def _flops_per_image(net, size: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def _matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def _runtimes(net, x, compile_: bool, threads: int) -> dict:
    import copy

    import torch

    from infocam.features import FrozenRunner

    runs = {}
    with torch.inference_mode():
        runs["eager NCHW"] = lambda: net(x)[0]
        net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        runs["eager channels_last"] = lambda: net_cl(x_cl)[0]
    if compile_:
        compiled = torch.compile(copy.deepcopy(net))
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(x)
        print(f"torch.compile: first call (compilation) {time.perf_counter() - start:.0f} s")
        runs["torch.compile"] = lambda: compiled(x)[0]
    start = time.perf_counter()
    ort = FrozenRunner(runtime="onnxruntime", size=x.shape[-1], threads=threads)
    print(f"ONNX Runtime: export (or cached export) + session {time.perf_counter() - start:.1f} s")
    xn = x.numpy()
    runs["ONNX Runtime"] = lambda: torch.from_numpy(ort(xn)[0])
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=256, help="images for the end-to-end timing (0: skip)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INFOCAM_CACHE"] = str(Path(tmp) / "cache")
        from infocam.features import extract_features, frozen_network, prefetched_batches
        from infocam.models.backbones import imagenet_transform

        paths = _images(max(args.batch, args.images), Path(tmp))
        x = next(prefetched_batches(paths[: args.batch], imagenet_transform(args.size), args.batch))
        net = frozen_network(size=args.size)
        runs = _runtimes(net, x, not args.no_compile, args.threads)
        with torch.inference_mode():
            ref = net(x)[0]
            outputs = {name: run() for name, run in runs.items()}  # warm-up, and the outputs compared
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                with torch.inference_mode():
                    run()
                times[name].append(time.perf_counter() - start)
        flops = _flops_per_image(net, args.size)
        peak = _matmul_flops()
        print(f"\nEfficientNet-Lite0 {args.size} px, batch {args.batch}, {args.threads} threads, "
              f"median of {args.repeats} (interleaved)")
        print(f"network: {flops / 1e9:.2f} GFLOP per image; 2048x2048 float32 matmul: {peak / 1e9:.1f} GFLOP/s")
        print(f"{'runtime':22s} {'images/s':>9s} {'vs eager':>9s} {'max |diff|':>11s} {'of matmul':>10s}")
        eager = statistics.median(times["eager NCHW"])
        for name in runs:
            t = statistics.median(times[name])
            rate = args.batch / t
            diff = (outputs[name].float() - ref).abs().max().item()
            print(f"{name:22s} {rate:9.1f} {eager / t:8.2f}x {diff:11.2e} {rate * flops / peak:9.1%}")
        print(f"(maps range 0..{ref.max().item():.1f})")

        if args.images:
            e2e, cpu = {}, {}
            for runtime in ("torch", "auto"):
                start, start_cpu = time.perf_counter(), time.process_time()
                extract_features("efficientnet_lite0", paths[: args.images], size=args.size, spatial=True,
                                 runtime=runtime, use_cache=False)
                e2e[runtime] = time.perf_counter() - start
                cpu[runtime] = time.process_time() - start_cpu
            n = min(args.images, len(paths))
            print(f"\nend to end, {n} images (decode in threads + forward + float16 maps); CPU s = all threads:")
            for runtime, seconds in e2e.items():
                label = "PyTorch eager" if runtime == "torch" else "ONNX Runtime (auto)"
                print(f"  {label:20s} {seconds:6.1f} s  {n / seconds:6.1f} images/s  {cpu[runtime]:6.1f} CPU s")
            print(f"  speed-up {e2e['torch'] / e2e['auto']:.2f}x wall, {cpu['torch'] / cpu['auto']:.2f}x CPU time "
                  "(the ONNX export is cached from step 1)")


if __name__ == "__main__":
    main()
