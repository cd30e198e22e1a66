"""Training recipes: one YAML file per long run, validated before anything trains, run by ``infocam train``.

A recipe names the dataset, the backbone (± ADL), the optimiser and schedule, the device, the
precision and the output folder::

    name: resnet50-cub
    dataset: {name: cub, image_size: 224, resize: 256}
    backbone: {name: resnet50, pretrained: imagenet}
    adl: {enabled: false}
    train: {epochs: 200, batch_size: 32, lr: 0.01, head_lr_mult: 10, schedule: step, step_size: 60}
    device: auto
    precision: fp32
    output: runs/train/resnet50-cub

:func:`load_recipe` fills defaults and checks every key and value (an unknown key gets a did-you-mean,
an unknown backbone the list of choices, ``cuda`` without CUDA, a world size that does not divide the
batch — one :class:`RecipeError` each); :func:`run` then checks the dataset folder (a missing file is
one error naming it) and the ImageNet weights (missing, or of another architecture), builds the
network and trains it with :func:`infocam.train.fit`, writing ``last.pt`` after every epoch
(``resume`` continues it; a checkpoint of another recipe is refused), ``log.jsonl``, the final
``model.pt`` and ``results.json`` (top-1, CAM and infoCAM localisation from :func:`localisation`,
the provenance of ``infocam run``). :func:`dry_run` builds the network and
pushes one batch of a generated image folder through forward and backward. The paper's recipes
ship in ``infocam/recipes/`` (:func:`shipped_recipes`). Used by ``infocam train`` and chapter 5.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from infocam.data.splits import selection_report_halves
from infocam.device import DeviceError, PRECISIONS, check_precision, describe, resolve_device
from infocam.paths import DataError

RECIPES_DIR = Path(__file__).parent / "recipes"
NETWORKS = ("vgg16_gap", "resnet50", "inception_v3", "efficientnet_lite0")
DATASETS = ("cub", "tiny_imagenet")
DATASET_CLASSES = {"cub": 200, "tiny_imagenet": 200}  # for a dry run without the data

DEFAULTS = {
    "name": None,
    "dataset": {"name": "cub", "root": None, "image_size": 224, "resize": 256, "crop": "crop", "classes": None},
    "backbone": {"name": "vgg16_gap", "pretrained": "imagenet", "weights_path": None, "download": False,
                 "trainable_from": "stage7"},
    "adl": {"enabled": False, "drop_rate": 0.75, "gamma": None},
    "train": {"epochs": 200, "batch_size": 32, "optimizer": "sgd", "lr": 0.001, "momentum": 0.9,
              "nesterov": True, "weight_decay": 1.0e-4, "head_lr_mult": 10.0, "schedule": "step",
              "step_size": 60, "gamma": 0.1, "seed": 0, "num_workers": 4, "drop_last": True},
    "eval": {"batch_size": 64},
    "device": "auto",
    "precision": "fp32",
    "output": None,
}
CHOICES = {
    "dataset.name": DATASETS, "dataset.crop": ("crop", "resized_crop"), "backbone.name": NETWORKS,
    "backbone.pretrained": ("imagenet", "none"), "train.optimizer": ("sgd", "adam"),
    "train.schedule": ("step", "cosine", "none"), "precision": PRECISIONS,
}
OPTIONAL = {"name", "dataset.root", "dataset.classes", "backbone.weights_path", "adl.gamma", "output"}


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the file, the key or value, and the fix."""


# -- loading and validation ------------------------------------------------------------------------


def shipped_recipes() -> dict[str, Path]:
    """The recipes that ship with infocam, by name (file stem)."""
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yml"))}


def resolve_recipe_path(name_or_path: str | os.PathLike) -> Path:
    """A recipe file: an existing path, or the name of a shipped recipe."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_recipes()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    close = difflib.get_close_matches(str(name_or_path), list(shipped), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise RecipeError(f"recipe {str(name_or_path)!r} is neither a file nor a shipped recipe ({', '.join(shipped)}){hint}")


# Names people commonly use for a recipe key, for the did-you-mean of an unknown key.
ALIASES = {"learning_rate": "lr", "wd": "weight_decay", "bs": "batch_size", "num_epochs": "epochs",
           "lr_mult": "head_lr_mult", "model": "backbone", "network": "backbone", "arch": "backbone",
           "workers": "num_workers", "scheduler": "schedule", "amp": "precision", "out": "output",
           "output_dir": "output", "data": "dataset", "data_root": "root", "size": "image_size"}


def _did_you_mean(key: str, allowed) -> str:
    if ALIASES.get(key) in allowed:
        return f"; did you mean {ALIASES[key]!r}?"
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"


def _merge(defaults: dict, given: dict, where: str, source: str) -> dict:
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        dotted = f"{where}{key}"
        if key not in defaults:
            raise RecipeError(f"{source}: unknown key {dotted!r}{_did_you_mean(key, defaults)}")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise RecipeError(f"{source}: {dotted!r} must be a mapping of {', '.join(defaults[key])}")
            out[key] = _merge(defaults[key], value, dotted + ".", source)
        else:
            out[key] = value
    return out


def _check_value(dotted: str, value, default, source: str) -> None:
    if value is None:
        if dotted in OPTIONAL:
            return
        raise RecipeError(f"{source}: {dotted!r} must be set (default {default!r})")
    if dotted in CHOICES:
        if value not in CHOICES[dotted]:
            close = difflib.get_close_matches(str(value), [str(c) for c in CHOICES[dotted]], n=1, cutoff=0.5)
            raise RecipeError(f"{source}: {dotted} = {value!r} is not one of {', '.join(map(str, CHOICES[dotted]))}"
                              + (f"; did you mean {close[0]!r}?" if close else ""))
        return
    kind = type(default) if default is not None else None
    if kind is bool and not isinstance(value, bool):
        raise RecipeError(f"{source}: {dotted} must be true or false, got {value!r}")
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise RecipeError(f"{source}: {dotted} must be a number, got {value!r}")
    if kind is int and not float(value).is_integer():
        raise RecipeError(f"{source}: {dotted} must be a whole number, got {value!r}")


def _walk(recipe: dict, defaults: dict, where: str, source: str) -> None:
    for key, default in defaults.items():
        dotted = f"{where}{key}"
        if isinstance(default, dict):
            _walk(recipe[key], default, dotted + ".", source)
        else:
            _check_value(dotted, recipe[key], default, source)


def parse_override(text: str) -> tuple[list[str], object]:
    """``"train.epochs=1"`` → (["train", "epochs"], 1) (the value parsed as YAML)."""
    if "=" not in text:
        raise RecipeError(f"override {text!r} must look like key=value, e.g. train.epochs=1")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def _nest(keys: list[str], value) -> dict:
    out: dict = value
    for k in reversed(keys):
        out = {k: out}
    return out


def _deep_update(base: dict, extra: dict) -> dict:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


def load_recipe(name_or_path, overrides: list[str] | dict | None = None, *, check_device: bool = True) -> dict:
    """Read, complete and validate a recipe (a file, a shipped name, or a dict); ``overrides`` as ``key=value``."""
    if isinstance(name_or_path, dict):
        given, source = copy.deepcopy(name_or_path), "recipe"
    else:
        path = resolve_recipe_path(name_or_path)
        source = str(path)
        try:
            given = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise RecipeError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(given, dict):
            raise RecipeError(f"{path} must be a YAML mapping of {', '.join(DEFAULTS)}")
        given.setdefault("name", path.stem)
    if isinstance(overrides, dict):
        _deep_update(given, copy.deepcopy(overrides))
    else:
        for item in overrides or []:
            _deep_update(given, _nest(*parse_override(item)))
    recipe = _merge(DEFAULTS, given, "", source)
    _walk(recipe, DEFAULTS, "", source)
    recipe["name"] = recipe["name"] or "recipe"
    recipe["output"] = recipe["output"] or f"runs/train/{recipe['name']}"
    net, ds = recipe["backbone"]["name"], recipe["dataset"]
    if recipe["adl"]["enabled"] and net not in ("vgg16_gap", "resnet50"):
        raise RecipeError(f"{source}: adl.enabled needs backbone vgg16_gap or resnet50 (the paper's ADL positions), "
                          f"not {net}")
    if net == "efficientnet_lite0" and ds["image_size"] % 32:
        raise RecipeError(f"{source}: dataset.image_size of efficientnet_lite0 must be a multiple of 32, "
                          f"got {ds['image_size']}")
    if ds["crop"] == "crop" and ds["resize"] < ds["image_size"]:
        raise RecipeError(f"{source}: dataset.resize ({ds['resize']}) must be >= dataset.image_size "
                          f"({ds['image_size']}) for a random crop")
    from infocam.models.backbones import LITE0_STAGES

    if recipe["backbone"]["trainable_from"] not in LITE0_STAGES + ("head",):
        raise RecipeError(f"{source}: backbone.trainable_from = {recipe['backbone']['trainable_from']!r} is not a "
                          f"stage of EfficientNet-Lite0 ({', '.join(LITE0_STAGES + ('head',))})")
    t = recipe["train"]
    if t["epochs"] < 1 or t["batch_size"] < 1 or t["lr"] <= 0:
        raise RecipeError(f"{source}: train.epochs, train.batch_size and train.lr must be positive")
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if t["batch_size"] % size:
        raise RecipeError(f"{source}: train.batch_size {t['batch_size']} is not divisible by the world size {size} "
                          f"(torchrun --nproc-per-node); use a multiple of {size}")
    if check_device:
        try:
            check_precision(recipe["precision"], resolve_device(recipe["device"]))
        except DeviceError as exc:
            raise RecipeError(f"{source}: {exc}") from None
    return recipe


def recipe_key(recipe: dict) -> str:
    """Hash of everything in a recipe that changes the numbers (all but the output folder)."""
    relevant = {k: v for k, v in recipe.items() if k not in ("output", "name")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


# -- networks and data -----------------------------------------------------------------------------


def mean_std(network: str):
    """Input normalisation the network's ImageNet weights expect."""
    from infocam.models.backbones import NORMALIZATION

    return NORMALIZATION["efficientnet_lite0"] if network == "efficientnet_lite0" else NORMALIZATION["resnet50"]


def build_network(recipe: dict, num_classes: int, *, pretrained: bool | None = None):
    """The recipe's network with a ``num_classes`` head (ImageNet weights unless ``pretrained: none``)."""
    b, a = recipe["backbone"], recipe["adl"]
    use = (b["pretrained"] == "imagenet") if pretrained is None else pretrained
    name = b["name"]
    if name == "efficientnet_lite0":
        from infocam.models.lite0_cam import Lite0CAM

        return Lite0CAM(num_classes, trainable_from=b["trainable_from"], pretrained=use,
                        image_size=recipe["dataset"]["image_size"])
    weights = dict(pretrained=use, weights_path=b["weights_path"], data_root=recipe["dataset"]["root"],
                   download=b["download"])
    if name == "inception_v3":
        from infocam.models.inception import InceptionV3

        return InceptionV3(num_classes, **weights)
    from infocam.models.adl import ADL_GAMMA

    adl = dict(adl=a["enabled"], drop_rate=a["drop_rate"], gamma=a["gamma"] or ADL_GAMMA[name])
    if name == "vgg16_gap":
        from infocam.models.vgg_gap import VGG16GAP

        return VGG16GAP(num_classes, **adl, **weights)
    from infocam.models.resnet_cam import ResNet50CAM

    return ResNet50CAM(num_classes, **adl, **weights)


def transforms_for(recipe: dict):
    """(train, eval) transforms of the recipe: resize + random crop + flip; resize to image_size."""
    from infocam.data import transforms as T

    ds = recipe["dataset"]
    norm = mean_std(recipe["backbone"]["name"])
    return (T.train_transform(ds["image_size"], ds["resize"], norm, kind=ds["crop"]),
            T.eval_transform(ds["image_size"], norm))


def build_datasets(recipe: dict):
    """(train, test, num_classes, source) of the recipe's dataset; checks the folder and every file first."""
    from infocam.data.images import cub_dataset, tiny_imagenet_dataset

    ds = recipe["dataset"]
    train_tf, eval_tf = transforms_for(recipe)
    if ds["name"] == "cub":
        from infocam.data.cub import first_classes, load_cub

        cub = load_cub(ds["root"])
        if ds["classes"]:
            cub = first_classes(cub, int(ds["classes"]))
        train = cub_dataset(cub, np.flatnonzero(cub.is_train), train_tf)
        test = cub_dataset(cub, np.flatnonzero(~cub.is_train), eval_tf)
        return train, test, cub.num_classes, cub.source
    from infocam.data.tiny_imagenet import load_tiny_imagenet

    tr, te = load_tiny_imagenet(ds["root"], "train"), load_tiny_imagenet(ds["root"], "val")
    if ds["classes"]:
        raise RecipeError("dataset.classes (a class subset) is supported for cub only")
    return (tiny_imagenet_dataset(tr, train_tf), tiny_imagenet_dataset(te, eval_tf), tr.num_classes,
            f"{tr.source}; {te.source}")


def fit_kwargs(recipe: dict) -> dict:
    """Keyword arguments of :func:`infocam.train.fit` for the recipe's training settings."""
    t = recipe["train"]
    return dict(epochs=int(t["epochs"]), batch_size=int(t["batch_size"]), lr=float(t["lr"]),
                momentum=float(t["momentum"]), nesterov=bool(t["nesterov"]), weight_decay=float(t["weight_decay"]),
                optimizer=t["optimizer"], head_lr_mult=float(t["head_lr_mult"]),
                schedule=None if t["schedule"] == "none" else t["schedule"], step_size=int(t["step_size"]),
                gamma=float(t["gamma"]), seed=int(t["seed"]), num_workers=int(t["num_workers"]),
                drop_last=bool(t["drop_last"]),
                precision=recipe["precision"])


# -- dry run and run -------------------------------------------------------------------------------


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
    """Build the recipe's network and push one batch of a generated image folder through forward + backward.

    Uses the ImageNet weights when they are present, random weights (and says so) when not; the
    recipe's optimiser, parameter groups, transforms and precision are the real ones.
    """
    from torch.nn import functional as F

    from infocam.data.images import ImageDataset
    from infocam.train import fit

    num_classes = int(recipe["dataset"]["classes"] or DATASET_CLASSES[recipe["dataset"]["name"]])
    try:
        model, weights = build_network(recipe, num_classes), recipe["backbone"]["pretrained"]
    except DataError as exc:
        if "not found" not in str(exc):
            raise
        model, weights = build_network(recipe, num_classes, pretrained=False), f"random ({exc})"
    train_tf, _ = transforms_for(recipe)
    with tempfile.TemporaryDirectory(prefix="infocam-dry-run-") as tmp:
        paths, labels, boxes = _fixture_folder(Path(tmp), batch_size, num_classes)
        data = ImageDataset(paths, labels, boxes, train_tf)
        kwargs = {**fit_kwargs(recipe), "epochs": 1, "batch_size": batch_size, "num_workers": 0}
        losses = fit(model, data, None, F.cross_entropy, device=device or recipe["device"], desc="dry run", **kwargs)
        x = data[0][0][None]
    with torch.no_grad():
        maps = model.features(x.to(next(model.parameters()).device))
    return {"recipe": recipe["name"], "network": type(model).__name__, "weights": weights,
            "parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "loss": losses[0], "image": list(x.shape[1:]), "maps": list(maps.shape[1:])}


@torch.no_grad()
def localisation(model, test_ds, dev, *, precision: str = "fp32", batch_size: int = 64, num_workers: int = 0,
                 window: int = 3) -> dict:
    """Top-1 accuracy and CAM / infoCAM localisation of a trained network on a test Dataset with boxes.

    One pass gives the logits and the maps of the ground-truth class: CAM (``variant="none"``) and
    infoCAM (``"mean-others"``, ``window``×``window``, centred). The test split is halved within each
    class (:func:`infocam.data.splits.selection_report_halves`): τ is chosen on the selection half and GT-known / Top-1 Loc, MaxBoxAcc and
    MaxBoxAccV2 are reported on the other (:func:`infocam.wsol.evaluate`, reference rules), with the
    paper's original protocol (τ = 0.2) on the same half beside them.
    """
    from infocam import wsol
    from infocam.cam import class_maps
    from infocam.device import autocast

    model.eval().to(dev)
    loader = torch.utils.data.DataLoader(test_ds, batch_size=batch_size, num_workers=num_workers,
                                         pin_memory=dev.type == "cuda")
    maps = {"cam": [], "infocam": []}
    correct, boxes, labels = [], [], []
    for x, y, box in loader:
        x, y = x.to(dev, non_blocking=True), y.to(dev)
        with autocast(dev, precision):
            feats = model.features(x)
        feats = feats.float()
        logits = model.fc(feats.mean(dim=(2, 3)))
        maps["cam"].append(class_maps(feats, model.fc.weight, y, variant="none", window=1).cpu())
        maps["infocam"].append(class_maps(feats, model.fc.weight, y, logits, variant="mean-others",
                                          window=window).cpu())
        correct.append((logits.argmax(1) == y).cpu())
        boxes.append(box)
        labels.append(y.cpu())
    correct, labels = torch.cat(correct).numpy(), torch.cat(labels).numpy()
    boxes = np.trunc(torch.cat(boxes).numpy())  # the reference's integer pixel boxes
    size = tuple(x.shape[-2:])
    select, report = selection_report_halves(labels)
    out = {"test_top1": float(correct.mean()), "report_top1": float(correct[report].mean()),
           "selection_images": len(select), "report_images": len(report), "infocam_window": window}
    for name, chunks in maps.items():
        m = torch.cat(chunks).numpy()
        r = wsol.evaluate(m[select], boxes[select], m[report], boxes[report], correct[report], size)
        r.pop("curve", None)
        o = wsol.evaluate(None, None, m[report], boxes[report], correct[report], size, protocol="original")
        out[name] = {**r, "original_gt_known_loc": o["gt_known_loc"], "original_top1_loc": o["top1_loc"]}
    return out


def run(recipe: dict, *, resume: bool = True, log=print) -> Path:
    """Train a validated recipe; returns the path of its ``results.json`` (written by rank 0)."""
    from torch.nn import functional as F

    from infocam.runs import provenance
    from infocam.train import fit, init_distributed, save_checkpoint, world
    from infocam.utils import atomic_write_text

    out = Path(recipe["output"]).expanduser().resolve()
    dev = init_distributed(recipe["device"])
    rank, size = world()
    train_ds, test_ds, num_classes, source = build_datasets(recipe)  # checks the folder before any work
    if rank == 0:
        log(source)
    model = build_network(recipe, num_classes)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "recipe.yml", yaml.safe_dump(recipe, sort_keys=False))
    started = time.time()
    epoch_started = [time.time()]

    def on_epoch(epoch, history, net):
        now = time.time()
        line = {"epoch": epoch + 1, "loss": history[-1], "seconds": round(now - epoch_started[0], 2),
                "images_per_s": round(len(train_ds) / max(now - epoch_started[0], 1e-9), 2)}
        epoch_started[0] = now
        if rank == 0:
            with open(out / "log.jsonl", "a") as fh:
                fh.write(json.dumps(line) + "\n")
            log(f"epoch {line['epoch']}/{recipe['train']['epochs']}: loss {line['loss']:.4f}, "
                f"{line['images_per_s']:.1f} images/s")

    kwargs = fit_kwargs(recipe)
    history = fit(model, train_ds, None, F.cross_entropy, device=dev, checkpoint=out / "last.pt", resume=resume,
                  run_key=recipe_key(recipe), on_epoch=on_epoch, desc=recipe["name"], **kwargs)
    train_seconds = time.time() - started
    results = None
    if rank == 0:
        save_checkpoint(out / "model.pt", model.state_dict())
        started = time.time()
        scores = localisation(model, test_ds, dev, precision=recipe["precision"],
                              batch_size=int(recipe["eval"]["batch_size"]), num_workers=kwargs["num_workers"])
        results = {
            "recipe": recipe, "recipe_key": recipe_key(recipe), "data_source": source,
            "num_classes": num_classes, "train_images": len(train_ds), "test_images": len(test_ds),
            "device": describe(dev), "world_size": size, "precision": recipe["precision"],
            "train_loss": history, **scores, "train_seconds": round(train_seconds, 1),
            "eval_seconds": round(time.time() - started, 1), "provenance": provenance(),
        }
        atomic_write_text(out / "results.json", json.dumps(results, indent=2, sort_keys=True))
        log(f"test top-1 {100 * scores['test_top1']:.2f} % on {len(test_ds)} images; Top-1 Loc CAM "
            f"{100 * scores['cam']['top1_loc']:.2f} %, infoCAM {100 * scores['infocam']['top1_loc']:.2f} % "
            f"(report half, τ from the selection half); results: {out / 'results.json'}")
    if size > 1:
        import torch.distributed as dist

        dist.barrier()
    return out / "results.json"


# -- command line ----------------------------------------------------------------------------------


def add_train_command(sub) -> None:
    """The ``infocam train`` sub-command (registered by :mod:`infocam.cli`)."""
    train = sub.add_parser("train", help="train a network from a YAML recipe (checkpoints, log, results.json); "
                           "several GPUs: torchrun --nproc-per-node N -m infocam train ...")
    train.add_argument("recipe", help=f"a recipe file, or a shipped recipe: {', '.join(shipped_recipes())}")
    train.add_argument("-s", "--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one recipe value, e.g. train.epochs=1 or device=cpu; repeatable")
    train.add_argument("--dry-run", action="store_true",
                       help="build the network and run one batch of a generated fixture through forward+backward")
    train.add_argument("--fresh", action="store_true", help="ignore a checkpoint in the output folder (default: resume)")


def train_command(args) -> int:
    """Run ``infocam train``; a bad recipe or checkpoint is one line on stderr and exit code 2."""
    import sys

    from infocam.train import CheckpointError

    try:
        recipe = load_recipe(args.recipe, args.set)
        if args.dry_run:
            print(json.dumps(dry_run(recipe), indent=2))
        else:
            print(f"results: {run(recipe, resume=not args.fresh)}")
    except (RecipeError, CheckpointError) as exc:
        print(f"infocam: error: {exc}", file=sys.stderr)
        return 2
    return 0
