"""Training throughput at 224 px on this CPU: the networks, the image loader, and which one bounds an epoch.

(a) forward + backward + SGD step, images/s and CPU-ms per image (process CPU time, both torch
    threads), for VGG16-GAP, ResNet-50 (layer4 stride 1) and EfficientNet-Lite0 as the CPU recipe
    trains it (stages 1–6 frozen, stage 7 + head conv + new fc trained), on batches built beforehand
    (random weights for the torchvision networks: speed only);
(b) the image loader: :class:`infocam.data.images.ImageDataset` over the CUB training images with
    the recipe's training transform (decode, resize 256, random crop 224, flip, normalise): CPU-ms
    per image in this process, and images/s through a ``DataLoader`` with ``--workers`` processes;
(c) the engine end to end: :func:`infocam.train.fit` on those images (loader workers and Lite0
    training sharing the cores), images/s, and its ratio to (a) for Lite0 at the same batch size
    (below 1 by the loader's share of the cores, the workers' start-up (once per run: they persist)
    and the first batch's warm-up).

Measured on the 2-core build machine (load average 2.2, batch 8): VGG16-GAP 2.8 images/s (648
CPU-ms/image), ResNet-50 6.6 (276), Lite0 stage 7 + head 79 (19); the loader 0.8 CPU-ms/image,
266 images/s with 2 workers; fit end to end on 256 CUB images 57 images/s = 0.72 × compute only.
Every epoch is bounded by the network; the loader costs 0.1 / 0.3 / 4 % of the networks' CPU time.

CPU-ms per image do not depend on what else runs on the machine; images/s do (the load average is
printed). Medians over ``--repeats`` timed runs after one warm-up. Needs the CUB folder under the
data root (INFOCAM_DATA) for (b) and (c). No GPU is used (benchmarks/gpu_check.py is the GPU check).
``--size 64 --networks-only`` times (a) at the Tiny-ImageNet recipes' 64 px.
Usage: python benchmarks/bench_train.py [--batch 16] [--batches 2] [--repeats 3] [--workers 2] [--size 224]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("INFOCAM_PROGRESS", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spinning threads on a shared machine

import numpy as np
import torch
from torch.nn import functional as F

from infocam.data import transforms as T
from infocam.data.cub import find_cub, load_cub
from infocam.data.images import cub_dataset
from infocam.models.backbones import NORMALIZATION
from infocam.models.lite0_cam import Lite0CAM
from infocam.models.resnet_cam import ResNet50CAM
from infocam.models.vgg_gap import VGG16GAP
from infocam.train import fit, parameter_groups


def networks():
    return {"vgg16_gap": lambda: VGG16GAP(200), "resnet50": lambda: ResNet50CAM(200),
            "lite0 (stage7+head)": lambda: Lite0CAM(200, trainable_from="stage7")}


def step_rate(make, batch: int, batches: int, repeats: int, size: int = 224) -> tuple[float, float]:
    """Median (images/s, CPU-ms per image) of forward + backward + SGD step on pre-built ``size`` px batches."""
    net = make().train()
    opt = torch.optim.SGD(parameter_groups(net, 0.01, head_lr_mult=10), lr=0.01, momentum=0.9, nesterov=True)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 200, (batch,))
    rates, cpu = [], []
    for r in range(repeats + 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(batches):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
        if r:  # the first run warms up
            rates.append(batch * batches / (time.perf_counter() - start))
            cpu.append(1000 * (time.process_time() - start_cpu) / (batch * batches))
    return statistics.median(rates), statistics.median(cpu)


def item_cpu_ms(dataset, n: int = 64) -> float:
    """CPU-ms per item of the Dataset in this process (decode + transform), one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    start = time.process_time()
    for i in range(n):
        dataset[i % len(dataset)]
    torch.set_num_threads(threads)
    return 1000 * (time.process_time() - start) / n


def loader_rate(dataset, batch: int, batches: int, workers: int, repeats: int) -> float:
    """Median images/s of the DataLoader alone (fresh workers each run: an epoch's start-up included)."""
    rates = []
    for _ in range(repeats):
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers)
        start = time.perf_counter()
        n = 0
        for i, b in enumerate(loader):
            n += len(b[1])
            if i + 1 == batches:
                break
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def engine_rate(dataset, batch: int, workers: int, repeats: int) -> float:
    """Median images/s of infocam.train.fit on the Dataset (one epoch over it), Lite0 as the CPU recipe."""
    rates = []
    for _ in range(repeats):
        net = Lite0CAM(200, trainable_from="stage7")
        start = time.perf_counter()
        fit(net, dataset, None, F.cross_entropy, epochs=1, batch_size=batch, lr=0.01, momentum=0.9, nesterov=True,
            head_lr_mult=10, num_workers=workers)
        rates.append(len(dataset) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=2, help="batches per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--engine-batches", type=int, default=32, help="batches in the end-to-end epoch of (c)")
    parser.add_argument("--size", type=int, default=224, help="image size of (a): 224 (CUB recipes) or 64 (Tiny-ImageNet)")
    parser.add_argument("--networks-only", action="store_true", help="(a) only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"CPU: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, load average "
          f"{os.getloadavg()[0]:.1f}; {args.size} px, batch {args.batch}, medians of {args.repeats}")
    out = {"load_average": os.getloadavg()[0], "batch": args.batch, "size": args.size, "models": {}}
    for name, make in networks().items():
        if args.size % 32 and name.startswith("lite0"):
            continue
        rate, cpu = step_rate(make, args.batch, args.batches, args.repeats, args.size)
        out["models"][name] = {"images_per_s": rate, "cpu_ms_per_image": cpu}
        print(f"(a) {name:<22} forward+backward+step {rate:7.2f} images/s, {cpu:7.1f} CPU-ms/image")
    root = None if args.networks_only else find_cub()
    if root is None:
        print("no CUB folder under the data root (INFOCAM_DATA): loader not measured")
        print(json.dumps(out))
        return
    cub = load_cub(root)
    train = np.flatnonzero(cub.is_train)
    ds = cub_dataset(cub, train, T.train_transform(224, 256, NORMALIZATION["efficientnet_lite0"]))
    out["loader_cpu_ms_per_image"] = item_cpu_ms(ds)
    out["loader_images_per_s"] = loader_rate(ds, args.batch, 8, args.workers, args.repeats)
    print(f"(b) loader: {out['loader_cpu_ms_per_image']:.1f} CPU-ms/image; {args.workers} workers "
          f"{out['loader_images_per_s']:.1f} images/s")
    sub = torch.utils.data.Subset(ds, range(min(args.engine_batches * args.batch, len(ds))))
    out["engine_lite0_images_per_s"] = engine_rate(sub, args.batch, args.workers, max(1, args.repeats - 1))
    lite = out["models"]["lite0 (stage7+head)"]
    out["engine_over_compute_lite0"] = out["engine_lite0_images_per_s"] / lite["images_per_s"]
    print(f"(c) fit(Lite0 CPU recipe) on the loader: {out['engine_lite0_images_per_s']:.2f} images/s = "
          f"{out['engine_over_compute_lite0']:.2f} × compute only")
    for name, m in out["models"].items():
        share = out["loader_cpu_ms_per_image"] / m["cpu_ms_per_image"]
        bound = "the network" if share < 1 else "the loader"
        print(f"    epoch of {name}: bounded by {bound} (the loader costs {100 * share:.1f} % of its CPU time per image)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
