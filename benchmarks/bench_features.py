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

``--levers [tiny|cub]`` instead times what a book build's feature pass can tune, on ``--images`` images
of that set (Tiny-ImageNet: 64 px JPEGs upsampled to 224 px), one lever at a time, rounds interleaved,
median of ``--repeats``; ``--busy K`` runs K one-thread matmul loops meanwhile (the other pool worker's
chapter kernel in ``infocam execute``). Every variant's values are compared with the reference's
(max |diff|; "identical" = bit-identical): decoding (per-image transform vs a table look-up for
ToTensor + Normalize), ONNX Runtime threads x batch size, graph optimisation levels, the float16 / pooled
writes, and the whole pass (:func:`infocam.features.cache_features` into scratch files) with the
build's old settings (2 ONNX Runtime threads, 2 decode threads) against the new ones.

Usage: python benchmarks/bench_features.py [--batch 32] [--repeats 5] [--threads 2] [--images 256]
       [--no-compile]
       python benchmarks/bench_features.py --levers tiny [--images 512] [--repeats 3] [--busy 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
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


# -- levers of the book's feature passes (--levers) --------------------------------------------

_MATMUL_LOOP = "import numpy as np\na = np.random.rand(384, 384).astype(np.float32)\nwhile True:\n    a @ a"


@contextmanager
def _busy(k: int):
    """K one-thread matmul loops in other processes while the block runs (a busy pool worker)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", _MATMUL_LOOP], env=env) for _ in range(k)]
    try:
        time.sleep(0.5 if k else 0)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _interleaved(runs: dict, repeats: int) -> dict:
    """name -> (median wall s, median CPU s of this process, last result); rounds interleaved."""
    wall, cpu, out = {n: [] for n in runs}, {n: [] for n in runs}, {}
    for _ in range(repeats):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            out[name] = run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {n: (statistics.median(wall[n]), statistics.median(cpu[n]), out[n]) for n in runs}


def _diff(a, b) -> str:
    import numpy as np

    a, b = (np.concatenate(v) if isinstance(v, list) else np.asarray(v) for v in (a, b))
    if a.shape == b.shape and np.array_equal(a, b):
        return "identical"
    return f"max |diff| {np.abs(a.astype(np.float64) - b.astype(np.float64)).max():.1e}"


def _table(title: str, n: int, results: dict, ref) -> None:
    print(f"\n{title} ({n} images, median wall and process CPU s; vs {next(iter(results))!r})")
    print(f"{'variant':34s} {'images/s':>9s} {'CPU s/1000':>11s} {'CPU ratio':>10s}  values")
    base_cpu = next(iter(results.values()))[1]
    for name, (wall, cpu, out) in results.items():
        print(f"{name:34s} {n / wall:9.1f} {1000 * cpu / n:11.2f} {cpu / base_cpu:9.2f}x  {_diff(out, ref)}")


def _set_paths(name: str) -> tuple[list, int]:
    from infocam import features as F
    from infocam.bookbuild import feature_jobs

    job = feature_jobs([f"features:{name}"]).get(f"features:{name}")
    if job is None:
        raise SystemExit(f"--levers {name}: no {name} folder under the data root (INFOCAM_DATA); run make data")
    assert job[2] == (F.TINY_IMAGE_SIZE if name == "tiny" else F.CUB_IMAGE_SIZE)
    return job[1], job[2]


def levers(args) -> None:
    from infocam import features as F

    # scratch feature files; the ONNX exports are the user's (exported once, as the book does)
    onnx = F.cache_dir() / "onnx"
    onnx.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-features-"))
    (scratch / "onnx").symlink_to(onnx)
    os.environ["INFOCAM_CACHE"] = str(scratch)
    try:
        _levers(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _levers(args, scratch: Path) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch

    from infocam import features as F
    from infocam.models.backbones import imagenet_transform

    paths, size = _set_paths(args.levers)
    paths = paths[: args.images]
    n = len(paths)
    transform = imagenet_transform(size)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{args.levers}: {n} images at {size} px, {args.busy} busy one-thread process(es), "
          f"torch threads {torch.get_num_threads()}; uptime before: {load}")
    with _busy(args.busy):
        # 1. decoding + resizing + normalising, in this thread
        def per_image():
            return [torch.stack([F._load_image(p, transform) for p in paths[i : i + 32]]) for i in range(0, n, 32)]

        def batched():
            return [F._load_batch(paths[i : i + 32], transform) for i in range(0, n, 32)]

        results = _interleaved({"decode: per-image transform": per_image, "decode: table look-up": batched},
                               args.repeats)
        _table("1. decode + resize + normalise, one thread", n, results, results["decode: per-image transform"][2])
        x = torch.cat(results["decode: table look-up"][2]).numpy()

        # 2. ONNX Runtime threads x batch size (the build had 2 threads, batch 32)
        runners = {t: F.FrozenRunner(size=size, threads=t) for t in (2, 1)}

        def forward(t, bs):
            return lambda: np.concatenate([runners[t](x[i : i + bs])[0] for i in range(0, n, bs)])

        variants = ((2, 32), (2, 64), (1, 32), (1, 16), (1, 64), (1, 128))
        runs = {f"forward: {t} thread(s), batch {bs}": forward(t, bs) for t, bs in variants}
        results = _interleaved(runs, args.repeats)
        ref = results["forward: 2 thread(s), batch 32"][2]
        _table("2. forward pass, ONNX Runtime intra-op threads x batch size", n, results, ref)

        # 3. graph optimisation levels (ENABLE_ALL is ONNX Runtime's default; the others are ~3x slower)
        m = min(n, 64)
        path = F.export_onnx(runners[1].net, F.BACKBONE, size, ("maps",))
        levels = ("ORT_ENABLE_ALL", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_BASIC", "ORT_DISABLE_ALL")
        runs = {}
        for level in levels:
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            runs[f"graph: {level}"] = (lambda s: lambda: np.concatenate(
                [s.run(None, {"images": x[i : min(i + 32, m)]})[0] for i in range(0, m, 32)]))(session)
        results = _interleaved(runs, args.repeats)
        _table("3. graph optimisation level, 1 thread, batch 32", m, results, ref[:m])

        # 4. what happens to the outputs: float16 maps into a memory-mapped .npy, pooled mean
        def write_f16():
            out = np.lib.format.open_memmap(scratch / "maps.npy", mode="w+", dtype=np.float16, shape=ref.shape)
            for i in range(0, n, 32):
                out[i : i + 32] = ref[i : i + 32]
            out.flush()
            return out

        def pooled():
            return np.concatenate([ref[i : i + 32].mean(axis=(2, 3)) for i in range(0, n, 32)])

        results = _interleaved({"outputs: float16 maps -> memmap": write_f16, "outputs: pooled mean": pooled},
                               args.repeats)
        print(f"\n4. outputs ({n} images): float16 maps into a memmap "
              f"{1000 * results['outputs: float16 maps -> memmap'][1] / n:.2f} CPU s/1000, pooled mean "
              f"{1000 * results['outputs: pooled mean'][1] / n:.2f} CPU s/1000")

        # 5. the whole pass into scratch cache files: old build settings vs new
        def whole(threads, workers):
            def run():
                shutil.rmtree(F.cache_dir() / "features", ignore_errors=True)
                files = F.cache_features(F.BACKBONE, paths, kinds=("spatial",), size=size, threads=threads,
                                         workers=workers)
                return np.load(files["spatial"])
            return run

        runs = {f"pass: {t} thread(s), {w} decoder(s)": whole(t, w) for t, w in ((2, 2), (1, 1), (1, 2), (2, 1))}
        results = _interleaved(runs, args.repeats)
        _table("5. the whole pass (decode + forward + float16/pooled cache files)", n, results,
               ref.astype(np.float16))
    print(f"uptime after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=256, help="images for the end-to-end timing (0: skip)"
                        " or for --levers")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    parser.add_argument("--levers", choices=("tiny", "cub"), help="time the feature pass's levers on this set")
    parser.add_argument("--busy", type=int, default=0, help="with --levers: one-thread matmul loops meanwhile")
    args = parser.parse_args()
    if args.levers:
        return levers(args)
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
