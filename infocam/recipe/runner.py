"""Training a checked recipe: ``infocam train``'s run and dry run, and the scoring of the trained network.

:func:`run` holds the output folder for one live run (a lock file with the owner's pid and host; a
lock whose owner died is swept), checks the dataset folder before any work, seeds ``train.seed``
before the network is built (new layers, ADL and a ``pretrained: none`` network start alike in
every run), trains with :func:`infocam.train.fit` (``last.pt`` after every epoch and on SIGTERM;
``resume`` continues it if the keys that change the numbers agree, :func:`~infocam.recipe.schema.training_key`),
scores the network (:func:`localisation`) and writes ``model.pt`` and ``results.json`` (rank 0).
A run that fails leaves ``failed.txt`` (why) in its folder and never a ``model.pt``. :func:`dry_run`
builds the network and pushes one batch of generated images through forward and backward.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from infocam.device import describe
from infocam.paths import DataError
from infocam.recipe.factories import DATASETS, build_datasets, build_network, fit_kwargs, transforms_for
from infocam.recipe.schema import (RecipeError, effective_lr, global_batch, precision_for,
                                   training_key)
from infocam.utils import atomic_write_text, seed_everything

LOCK, FAILED = ".lock", "failed.txt"


class TrainingError(RuntimeError):
    """Training ran but cannot give a usable network (the loss diverged); the message says what to change."""


class FolderBusy(RuntimeError):
    """Another live ``infocam train`` writes the same output folder."""


def recipe_key(recipe: dict, world_size: int = 1, precision: str = "fp32") -> str:
    """A short hash of :func:`~infocam.recipe.schema.training_key` (what a resumed run must match)."""
    key = training_key(recipe, world_size, precision)
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


# -- the output folder: one live run, failures marked ----------------------------------------------


@contextlib.contextmanager
def output_lock(out: Path):
    """Hold ``out/.lock`` (pid, host, process start) for the block; yields the owners of stale locks swept.

    A lock of a live process is :class:`FolderBusy`; one whose process is gone on this host (SIGKILL,
    power loss) is swept, as ``infocam run`` sweeps its temporary folders.
    """
    from infocam.runs import _alive, _owner

    out.mkdir(parents=True, exist_ok=True)
    path, swept = out / LOCK, []
    me = _owner()
    draft = out / f".lock.{os.getpid()}.{socket.gethostname()}"
    draft.write_text(json.dumps(me))
    try:
        while True:
            try:
                os.link(draft, path)  # atomic: fails if a lock is there, never leaves a half-written one
                break
            except FileExistsError:
                try:
                    owner = json.loads(path.read_text())
                except FileNotFoundError:
                    continue
                except (OSError, ValueError):
                    owner = {}
                if owner and _alive(owner):
                    raise FolderBusy(f"output folder {out} is in use by a live infocam train (pid {owner.get('pid')} "
                                     f"on {owner.get('host')}); wait for it to finish, stop it, or choose another "
                                     "output (-s output=...)") from None
                path.unlink(missing_ok=True)
                swept.append(owner)
    finally:
        draft.unlink(missing_ok=True)
    try:
        yield swept
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()) == me:
                path.unlink()


def _mark_failed(out: Path, why: str) -> None:
    """Write why the run failed into ``failed.txt`` and remove a ``model.pt`` / ``results.json`` of this run."""
    for name in ("model.pt", "results.json"):
        (out / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        atomic_write_text(out / FAILED, why.rstrip() + "\n")


def _launcher_gone(parent: int) -> str | None:
    """Why this rank must stop when its torchrun launcher (pid ``parent``) is gone, else None."""
    if os.getppid() == parent:
        return None
    return (f"the torchrun launcher (pid {parent}) died; the ranks stopped. last.pt holds the last finished "
            "epoch: run the same command to resume")


def _watch_launcher(out: Path, rank: int, interval: float = 1.0) -> int | None:
    """Under torchrun: stop this rank within ``interval`` seconds once its launcher is gone (SIGKILL).

    Returns the launcher's pid (None outside torchrun).
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ and "LOCAL_RANK" not in os.environ:
        return None
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(interval)
            why = _launcher_gone(parent)
            if why:
                if rank == 0:
                    with contextlib.suppress(OSError):
                        _mark_failed(out, why)
                    print(f"infocam: error: {why}", file=sys.stderr)
                os._exit(1)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


def _configure_backends(dev: torch.device, recipe: dict) -> None:
    """cuDNN autotuning unless ``train.deterministic``; TF32 matmuls on CUDA (fp32 speed on Ampere and later)."""
    if dev.type != "cuda":
        return
    deterministic = bool(recipe["train"]["deterministic"])
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def runtime_settings(recipe: dict, dev: torch.device, world_size: int) -> dict:
    """The settings a recipe leaves to the machine, resolved: precision, channels_last, workers, batch, lr."""
    from infocam.train import default_workers

    t = recipe["train"]
    return {"precision": precision_for(recipe, dev),
            "channels_last": dev.type == "cuda" if t["channels_last"] == "auto" else bool(t["channels_last"]),
            "num_workers": default_workers(world_size) if t["num_workers"] is None else int(t["num_workers"]),
            "batch_size_per_process": int(t["batch_size"]), "global_batch": global_batch(recipe, world_size),
            "lr": effective_lr(recipe, world_size), "world_size": world_size}


# -- dry run ---------------------------------------------------------------------------------------


def _fixture_folder(folder: Path, n: int, num_classes: int, seed: int = 0):
    """``n`` generated JPEG photos (random sizes around 300 px) with labels and xywh boxes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths, boxes = [], []
    for i in range(n):
        w, h = int(rng.integers(260, 340)), int(rng.integers(240, 320))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        paths.append(folder / f"fixture_{i}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=85)
        boxes.append([w * 0.2, h * 0.25, w * 0.5, h * 0.5])
    return paths, rng.integers(0, num_classes, n), boxes


def dry_run(recipe: dict, batch_size: int = 2, device: str | None = None) -> dict:
    """Build the recipe's network (seeded) and push one batch of a generated image folder through forward + backward.

    Uses the ImageNet weights when they are present, random weights (and says so) when not; the
    recipe's optimiser, parameter groups, transforms and precision are the real ones.
    """
    from torch.nn import functional as F

    from infocam.data.images import ImageDataset
    from infocam.device import resolve_device
    from infocam.train import fit

    dev = resolve_device(device or recipe["device"])
    num_classes = int(recipe["dataset"]["classes"] or DATASETS[recipe["dataset"]["name"]].num_classes)
    seed_everything(int(recipe["train"]["seed"]))
    try:
        model, weights = build_network(recipe, num_classes), recipe["backbone"]["pretrained"]
    except DataError as exc:
        if "not found" not in str(exc):
            raise
        seed_everything(int(recipe["train"]["seed"]))
        model, weights = build_network(recipe, num_classes, pretrained=False), f"random ({exc})"
    train_tf, _ = transforms_for(recipe)
    settings = runtime_settings(recipe, dev, 1)
    with tempfile.TemporaryDirectory(prefix="infocam-dry-run-") as tmp:
        paths, labels, boxes = _fixture_folder(Path(tmp), batch_size, num_classes)
        data = ImageDataset(paths, labels, boxes, train_tf)
        kwargs = {**fit_kwargs(recipe), "epochs": 1, "batch_size": batch_size}
        losses = fit(model, data, None, F.cross_entropy, device=dev, desc="dry run", num_workers=0,
                     precision=settings["precision"], channels_last=settings["channels_last"], **kwargs)
        x = data[0][0][None]
    with torch.no_grad():
        maps = model.features(x.to(dev))
    return {"recipe": recipe["name"], "dataset": recipe["dataset"]["name"], "network": type(model).__name__,
            "weights": weights, "parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "precision": settings["precision"], "loss": losses[0], "image": list(x.shape[1:]),
            "maps": list(maps.shape[1:]),
            "localisation_methods": [m.id for m in localisation_methods(recipe["dataset"]["name"])]}


# -- scoring ---------------------------------------------------------------------------------------


@torch.no_grad()
def localisation_methods(dataset: str) -> list:
    """The catalogue ``infocam train`` scores: window 1 and the paper's window for ``dataset``
    (:data:`infocam.paper.INFOCAM_WINDOW`), its full-padding variant, the centre prior, any added method."""
    from infocam import localisation as L, paper

    k = paper.INFOCAM_WINDOW.get(dataset, 3)
    return L.catalogue((1, k), faithful_window=k)


def localisation(model, test_ds, dev, *, dataset: str = "cub", precision: str = "fp32", batch_size: int = 64,
                 num_workers: int = 0, seed: int = 0) -> dict:
    """Top-1 accuracy and the localisation of a trained network on a test Dataset with boxes, through the
    book's one pipeline (:mod:`infocam.localisation`): every catalogue method (CAM, infoCAM at window 1
    and the paper's window for ``dataset``, its full-padding variant, the centre prior, any added
    method), τ chosen on the selection half of the test split, scores on the report half under the
    reference protocol with the original code's τ = 0.2 beside them, keyed by method id."""
    from infocam import localisation as L

    methods = localisation_methods(dataset)
    out = L.maps_from_model(model, test_ds, methods, device=dev, batch_size=batch_size, num_workers=num_workers,
                            precision=precision)
    boxes = np.trunc(out["boxes"])  # the reference's integer pixel boxes
    size = tuple(test_ds[0][0].shape[-2:])
    split = L.halves(out["labels"])
    table = L.score(out["maps"], boxes, out["correct"], size, split, methods=methods)
    long = L.stack({seed: table})
    return {"test_top1": float(out["correct"].mean()), "report_top1": float(out["correct"][split[1]].mean()),
            "selection_images": len(split[0]), "report_images": len(split[1]),
            "localisation": L.record(long), "comparison": L.comparison(long, "top1_loc")}


# -- the run ---------------------------------------------------------------------------------------


def run(recipe: dict, *, resume: bool = True, force_resume: bool = False, log=print) -> Path:
    """Train a checked recipe; returns the path of its ``results.json`` (written by rank 0).

    Raises :class:`FolderBusy` when another live run holds the folder, :class:`infocam.train.Stopped`
    after a stop request (SIGTERM) with the checkpoint written, and marks the folder failed
    (``failed.txt``) for any other error.
    """
    from infocam.train import init_distributed, world

    out = Path(recipe["output"]).expanduser().resolve()
    dev = init_distributed(recipe["device"])
    rank, size = world()
    if recipe["train"]["sync_bn"] and size > 1 and dev.type != "cuda":
        raise RecipeError("train.sync_bn needs CUDA (SyncBatchNorm has no CPU kernel); set train.sync_bn: false")
    launcher = _watch_launcher(out, rank)
    _configure_backends(dev, recipe)
    with (output_lock(out) if rank == 0 else contextlib.nullcontext([])) as swept:
        for owner in swept:
            log(f"swept the stale lock of a dead run (pid {owner.get('pid')} on {owner.get('host')})")
        if size > 1:
            import torch.distributed as dist

            dist.barrier()
        try:
            return _train(recipe, out, dev, rank, size, resume=resume, force_resume=force_resume, log=log)
        except BaseException as exc:
            from infocam.train import Stopped

            if rank == 0 and not isinstance(exc, Stopped):
                why = launcher and _launcher_gone(launcher)
                if not why and isinstance(exc, TrainingError):
                    why = str(exc)
                if not why:
                    why = ("interrupted (Ctrl-C or SIGTERM outside training)" if isinstance(exc, KeyboardInterrupt)
                           else f"{type(exc).__name__}: {exc}")
                    why += ("\nlast.pt holds the last finished epoch, if any: run the same command to resume, "
                            "or add --fresh to start again")
                _mark_failed(out, why)
            raise


def _train(recipe: dict, out: Path, dev: torch.device, rank: int, size: int, *, resume: bool, force_resume: bool,
           log) -> Path:
    from torch.nn import functional as F

    from infocam.runs import provenance
    from infocam.train import fit, parameter_groups, predict_logits, save_checkpoint

    settings = runtime_settings(recipe, dev, size)
    if rank == 0:
        for name in ("model.pt", "results.json", FAILED) + (() if resume else ("last.pt", "best.pt", "log.jsonl")):
            (out / name).unlink(missing_ok=True)
    train_ds, test_ds, num_classes, source = build_datasets(recipe)  # checks the folder before any work
    if rank == 0:
        log(source)
    seed_everything(int(recipe["train"]["seed"]))  # new layers, ADL and random networks start alike every run
    model = build_network(recipe, num_classes)
    kwargs = fit_kwargs(recipe, size)
    try:
        parameter_groups(model, kwargs["lr"], head=kwargs["head"], head_lr_mult=kwargs["head_lr_mult"])
    except ValueError as exc:
        raise RecipeError(f"train.head_layers: {exc}") from None
    if rank == 0:
        atomic_write_text(out / "recipe.yml", yaml.safe_dump(recipe, sort_keys=False))
    best_on_test = recipe["eval"]["epoch"] == "best_on_test"
    labels = None
    if best_on_test:
        labels = getattr(test_ds, "labels", None)
        if labels is None and rank == 0:
            labels = torch.as_tensor([int(test_ds[i][1]) for i in range(len(test_ds))])
    started = time.time()
    epoch_started = [time.time()]

    def on_epoch(epoch, history, net):
        now = time.time()
        line = {"epoch": epoch + 1, "loss": history[-1], "seconds": round(now - epoch_started[0], 2),
                "images_per_s": round(len(train_ds) / max(now - epoch_started[0], 1e-9), 2)}
        if not math.isfinite(history[-1]):
            raise TrainingError(f"the training loss is {history[-1]} after epoch {epoch + 1}: training diverged; "
                                f"lower train.lr (now {kwargs['lr']:g}) or use precision fp32, then add --fresh "
                                "(or --force-resume to continue from last.pt, the last epoch with a finite loss)")
        if rank == 0:
            if best_on_test:
                logits = predict_logits(net, test_ds, int(recipe["eval"]["batch_size"]), device=dev,
                                        precision=settings["precision"], num_workers=settings["num_workers"])
                net.train()
                line["test_top1"] = float((logits.argmax(1) == labels).float().mean())
                best = torch.load(out / "best.pt", weights_only=False)["test_top1"] if (out / "best.pt").is_file() else -1
                if line["test_top1"] > best:
                    save_checkpoint(out / "best.pt", {"epoch": epoch + 1, "test_top1": line["test_top1"],
                                                      "model": net.state_dict()})
            kept = []
            if (out / "log.jsonl").is_file():  # a resumed run rewrites the epochs it trains again
                kept = [t for t in (out / "log.jsonl").read_text().splitlines() if json.loads(t)["epoch"] <= epoch]
            atomic_write_text(out / "log.jsonl", "".join(t + "\n" for t in kept + [json.dumps(line)]))
            log(f"epoch {line['epoch']}/{recipe['train']['epochs']}: loss {line['loss']:.4f}, "
                f"{line['images_per_s']:.1f} images/s")
        epoch_started[0] = time.time()

    key = training_key(recipe, size, settings["precision"])
    history = fit(model, train_ds, None, F.cross_entropy, device=dev, checkpoint=out / "last.pt", resume=resume,
                  force_resume=force_resume, run_key=key, on_epoch=on_epoch, desc=recipe["name"],
                  precision=settings["precision"], channels_last=settings["channels_last"],
                  num_workers=settings["num_workers"], **kwargs)
    train_seconds = time.time() - started
    if rank == 0:
        reported = len(history)
        if best_on_test:
            best = torch.load(out / "best.pt", weights_only=False)
            model.load_state_dict(best["model"])
            reported = best["epoch"]
        started = time.time()
        scores = localisation(model, test_ds, dev, dataset=recipe["dataset"]["name"], precision=settings["precision"],
                              batch_size=int(recipe["eval"]["batch_size"]), num_workers=settings["num_workers"],
                              seed=int(recipe["train"]["seed"]))
        results = {
            "dataset": recipe["dataset"]["name"], "recipe": recipe,
            "recipe_key": recipe_key(recipe, size, settings["precision"]), "data_source": source,
            "num_classes": num_classes, "train_images": len(train_ds), "test_images": len(test_ds),
            "device": describe(dev), **settings, "train_loss": history, "epoch_reported": reported,
            "epoch_rule": recipe["eval"]["epoch"], **scores, "train_seconds": round(train_seconds, 1),
            "eval_seconds": round(time.time() - started, 1), "provenance": provenance(),
        }
        save_checkpoint(out / "model.pt", model.state_dict())
        atomic_write_text(out / "results.json", json.dumps(results, indent=2, sort_keys=True))
        c = scores["comparison"]
        log(f"test top-1 {100 * scores['test_top1']:.2f} % on {len(test_ds)} images; Top-1 Loc CAM "
            f"{100 * c['cam']:.2f} %, best infoCAM {100 * c['infocam']:.2f} %, centre prior {100 * c['centre']:.2f} % "
            f"(report half, τ from the selection half); results: {out / 'results.json'}")
    if size > 1:
        import torch.distributed as dist

        dist.barrier()
    return out / "results.json"
