"""The GPU check of the training engine: one epoch of two recipes, fp32 vs bf16, images/s and peak memory.

For a person with a CUDA GPU and a CUB folder under the data root (INFOCAM_DATA). It trains, for
one epoch each,

* ``lite0-cub-cpu`` (the CPU recipe: Lite0 stage 7 + head, ImageNet weights from pip) and
* ``resnet50-cub`` with random weights (``backbone.pretrained=none``: the paper's ResNet-50 recipe
  without needing the ImageNet file),

in ``fp32`` and ``bf16`` autocast, and prints one JSON line per run: images/s of the epoch (loader
included), peak GPU memory (``torch.cuda.max_memory_allocated``), the epoch's loss and the device.
``--images N`` limits the training images (a quick check); ``--device cpu`` runs the same code on
the CPU (only to test this script; bf16 is then CPU autocast).

Usage: python benchmarks/gpu_check.py [--device cuda] [--images 0] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("INFOCAM_PROGRESS", "0")

import torch
from torch.nn import functional as F

from infocam.device import describe, resolve_device
from infocam.recipe import build_datasets, build_network, fit_kwargs, load_recipe
from infocam.train import fit

RUNS = (("lite0-cub-cpu", []), ("resnet50-cub", ["backbone.pretrained=none"]))


def one_epoch(name: str, extra: list[str], precision: str, device: str, images: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe(name, [*extra, f"device={device}", f"precision={precision}", "train.epochs=1",
                                    f"train.num_workers={workers}", f"output={tmp}"])
        train, _, num_classes, source = build_datasets(recipe)
        if images:
            train = torch.utils.data.Subset(train, range(min(images, len(train))))
        dev = resolve_device(device)
        model = build_network(recipe, num_classes)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        loss = fit(model, train, None, F.cross_entropy, device=dev, **fit_kwargs(recipe))[0]
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    return {"recipe": name, "precision": precision, "images": len(train), "batch_size": recipe["train"]["batch_size"],
            "seconds": round(seconds, 2), "images_per_s": round(len(train) / seconds, 1),
            "peak_memory_gib": None if peak is None else round(peak, 2), "loss": round(loss, 4),
            "device": describe(dev), "data": source}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=0, help="limit the training images (0 = all)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args()
    for name, extra in RUNS:
        for precision in ("fp32", "bf16"):
            print(json.dumps(one_epoch(name, extra, precision, args.device, args.images, args.workers)), flush=True)


if __name__ == "__main__":
    main()
