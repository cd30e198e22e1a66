"""The prepared GPU check of ``infocam train``: throughput by network and precision, then one real run end to end.

For a maintainer with a GPU, once (about 10 minutes on one H100; needs no dataset and no weights):

1. **throughput**: warm-up steps, then timed forward + backward + SGD steps on batches already on the
   device, for VGG16-GAP, ResNet-50 and ResNet-50 + ADL at 224 px (the CUB recipes' per-GPU batches
   30, 128, 128) and ResNet-50 at 64 px (the Tiny-ImageNet recipe, batch 640), each in fp32 (TF32
   matmuls), bf16 autocast and fp16 autocast with a GradScaler: images/s (global, all ranks) and
   peak memory (``torch.cuda.max_memory_allocated``), with the recipe's own parameter groups and
   channels_last on CUDA;
2. **end to end**: ``infocam train resnet50_adl-cub`` on generated CUB-format fixture images (random
   weights unless the ImageNet file is under the data root): a real SIGTERM after the first epoch
   (checkpoint, exit 143), the same command again (resume to the end), localisation through the
   command's scoring, ``results.json`` read back.

One JSON summary on stdout (and ``--out``). Under ``torchrun --nproc-per-node 2 benchmarks/gpu_check.py``
each rank runs its share (DistributedDataParallel), rank 0 alone writes. Items that would pass
``--budget-s`` are skipped and listed. ``--device cpu --tiny`` runs the same code in seconds
(tests/test_gpu_check.py; fp16 is then skipped: CPU autocast has no fp16).

Usage: python benchmarks/gpu_check.py [--device cuda] [--out gpu_check.json] [--budget-s 540] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("INFOCAM_PROGRESS", "0")

import torch
from torch.nn import functional as F

from infocam.data.cub import make_fixture
from infocam.device import autocast, describe, grad_scaler
from infocam.recipe import build_network, fit_kwargs, load_recipe, runtime_settings
from infocam.train import init_distributed, make_optimizer, parameter_groups, world

# (label, recipe, overrides, image size, per-GPU batch); tiny runs shrink size and batch
THROUGHPUT = (("vgg16_gap 224px", "vgg16_gap-cub", [], 224, 30),
              ("resnet50 224px", "resnet50-cub", [], 224, 128),
              ("resnet50+adl 224px", "resnet50_adl-cub", [], 224, 128),
              ("resnet50 64px (tiny-imagenet)", "resnet50-tiny_imagenet", [], 64, 640))
PRECISIONS = ("fp32", "bf16", "fp16")


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def throughput(name: str, overrides: list, size: int, batch: int, precision: str, dev, warmup: int, steps: int) -> dict:
    """Images/s (all ranks) and peak memory of forward + backward + step after ``warmup`` untimed steps."""
    rank, world_size = world()
    recipe = load_recipe(name, [*overrides, f"device={dev.type}", "backbone.pretrained=none",
                                f"dataset.image_size={size}", f"dataset.resize={size}"], check_device=False)
    torch.manual_seed(0)
    model = build_network(recipe, 200).to(dev).train()
    settings = runtime_settings(recipe, dev, world_size)
    if settings["channels_last"]:
        model.to(memory_format=torch.channels_last)
    kw = fit_kwargs(recipe, world_size)
    opt = make_optimizer(parameter_groups(model, kw["lr"], head=kw["head"], head_lr_mult=kw["head_lr_mult"]),
                         "sgd", kw["lr"], kw["momentum"], kw["weight_decay"], kw["nesterov"])
    net = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    x = torch.randn(batch, 3, size, size, device=dev)
    if settings["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 200, (batch,), device=dev)
    scaler = grad_scaler(dev, precision)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    losses = []
    for i in range(warmup + steps):
        _sync(dev)
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast(dev, precision):
            loss = F.cross_entropy(net(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        _sync(dev)
        if i >= warmup:
            times.append(time.perf_counter() - start)
            losses.append(loss.detach())
    step = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    out = {"network": name, "precision": precision, "image_size": size, "batch_per_gpu": batch,
           "global_batch": batch * world_size, "warmup_steps": warmup, "timed_steps": steps,
           "median_step_s": round(step, 4), "images_per_s": round(batch * world_size / step, 1),
           "peak_memory_gib": None if peak is None else round(peak, 2),
           "channels_last": settings["channels_last"], "loss_finite": bool(torch.isfinite(torch.stack(losses)).all())}
    del model, net, opt, x
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return out


def end_to_end(data_root: Path, out: Path, dev, tiny: bool, epochs: int) -> dict:
    """``infocam train`` on the fixture: SIGTERM after epoch 1 (exit 143), the same command again (resume)."""
    from infocam.cli import main
    from infocam.models.pretrained import weight_candidates

    rank, _ = world()
    have_weights = any(p.is_file() for p in weight_candidates("resnet50", None, data_root))
    sets = [f"data_root={data_root}", f"output={out}", f"device={dev}", f"train.epochs={epochs}", "train.step_size=2",
            "train.lr=0.001", "train.reference_batch=null", "eval.batch_size=16",
            f"backbone.pretrained={'imagenet' if have_weights else 'none'}"]
    sets += (["dataset.image_size=32", "dataset.resize=40", "train.batch_size=4", "train.num_workers=0"] if tiny else
             ["train.batch_size=16", "train.num_workers=4"])
    args = ["train", "resnet50_adl-cub"] + [a for s in sets for a in ("-s", s)]
    log = out / "log.jsonl"

    def sigterm_after_epoch_one():  # each rank signals itself, as a scheduler's preemption reaches every rank
        while not stop_watch.is_set():
            if log.is_file() and log.read_text().strip():
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.02)

    stop_watch = threading.Event()
    watcher = threading.Thread(target=sigterm_after_epoch_one, daemon=True)
    started = time.perf_counter()
    watcher.start()
    first = main(args)
    stop_watch.set()
    stopped_at = None
    if (out / "last.pt").is_file():
        state = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
        stopped_at = {"epoch": state["epoch"], "step": state.get("step", 0)}
    second = main(args)
    seconds = time.perf_counter() - started
    summary = {"recipe": "resnet50_adl-cub", "weights": "imagenet" if have_weights else "random (no ImageNet file)",
               "first_exit": first, "checkpoint_at_stop": stopped_at, "resume_exit": second,
               "seconds": round(seconds, 1)}
    if rank == 0 and (out / "results.json").is_file():
        res = json.loads((out / "results.json").read_text())
        summary.update({k: res.get(k) for k in ("dataset", "world_size", "global_batch", "precision",
                                                  "channels_last", "num_workers", "train_loss", "test_top1")})
        methods = (res.get("localisation") or {}).get("methods", {})
        summary["localisation"] = {m: {k: round(v[k], 4) for k in ("top1_loc", "gt_known_loc", "maxboxacc_v2")}
                                   for m, v in methods.items()}
        summary["images_per_s_by_epoch"] = [json.loads(t)["images_per_s"] for t in log.read_text().splitlines()]
    summary["ok"] = first == 143 and second == 0
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON summary here")
    parser.add_argument("--budget-s", type=float, default=540, help="skip what would start after this many seconds")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU test of this script)")
    parser.add_argument("--only", default="", help="time only the networks whose label contains this text")
    args = parser.parse_args()
    begun = time.perf_counter()
    dev = init_distributed(args.device)
    rank, world_size = world()
    summary = {"device": describe(dev), "world_size": world_size, "torch": torch.__version__,
               "throughput": [], "skipped": []}
    for label, name, overrides, size, batch in THROUGHPUT:
        if args.only not in label:
            continue
        if args.tiny:
            size, batch = (32, 2) if size == 224 else (32, 4)
        for precision in PRECISIONS:
            what = f"{label} {precision}"
            if precision == "fp16" and dev.type != "cuda":
                summary["skipped"].append(f"{what}: fp16 autocast needs CUDA")
                continue
            if time.perf_counter() - begun > args.budget_s:
                summary["skipped"].append(f"{what}: over the time budget")
                continue
            try:
                row = throughput(name, overrides, size, batch, precision, dev, 1 if args.tiny else args.warmup,
                                 2 if args.tiny else args.steps)
                summary["throughput"].append({"what": label, **row})
            except torch.OutOfMemoryError:
                summary["skipped"].append(f"{what}: out of GPU memory at batch {batch}")
                torch.cuda.empty_cache()
            if rank == 0 and summary["throughput"]:
                print(f"{what}: {summary['throughput'][-1]['images_per_s']} images/s", file=sys.stderr, flush=True)
    if time.perf_counter() - begun > args.budget_s:
        summary["skipped"].append("end to end: over the time budget")
    else:
        with tempfile.TemporaryDirectory(prefix="infocam-gpu-check-") as tmp:
            if world_size > 1:  # every rank works in rank 0's folder (one host)
                import torch.distributed as dist

                shared = [tmp]
                dist.broadcast_object_list(shared)
                tmp = shared[0]
            if rank == 0:
                make_fixture(Path(tmp) / "data", num_classes=2 if args.tiny else 4, n_train=4 if args.tiny else 32,
                             n_test=2 if args.tiny else 16, size=48 if args.tiny else 256)
            if world_size > 1:
                dist.barrier()
            summary["end_to_end"] = end_to_end(Path(tmp) / "data", Path(tmp) / "out", args.device, args.tiny,
                                               epochs=3 if args.tiny else 4)
            if world_size > 1:
                dist.barrier()  # rank 0's folder outlives every rank's use of it
    summary["seconds"] = round(time.perf_counter() - begun, 1)
    if rank == 0:
        text = json.dumps(summary, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
    return 0 if summary.get("end_to_end", {}).get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
