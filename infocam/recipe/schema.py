"""What a recipe may say: its keys, their defaults and allowed values, checked before any work.

A recipe is a YAML mapping; every key has a default (:data:`DEFAULTS`) and a JSON Schema of its
allowed values (:data:`SCHEMA`, dotted names), checked by :mod:`infocam.config` — the machinery
that checks chapter parameters — so an unknown key gets a did-you-mean, a value out of range the
allowed range, NaN and infinity are refused, and a few rules across keys (ADL only on the paper's
two backbones, a crop no larger than the resize, ...) follow. Every problem is one
:class:`RecipeError` line, raised before anything is read or built. :func:`training_key` names what a
checkpoint must match to be resumed: the keys that change the numbers, nothing else.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

from infocam import config
from infocam.models.backbones import LITE0_STAGES

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
NETWORKS = ("vgg16_gap", "resnet50", "inception_v3", "efficientnet_lite0")

DEFAULTS = {
    "name": None,
    "data_root": None,
    "dataset": {"name": "cub", "image_size": 224, "resize": 256, "crop": "crop", "test_transform": "resize",
                "classes": None},
    "backbone": {"name": "vgg16_gap", "pretrained": "imagenet", "weights_path": None, "download": False,
                 "trainable_from": "stage7"},
    "adl": {"enabled": False, "drop_rate": 0.75, "gamma": None},
    "train": {"epochs": 200, "batch_size": 32, "reference_batch": None, "lr_rule": "linear", "optimizer": "sgd",
              "lr": 0.001, "momentum": 0.9, "nesterov": True, "weight_decay": 1.0e-4, "head_lr_mult": 10.0,
              "head_layers": None, "schedule": "step", "step_size": 60, "gamma": 0.1, "seed": 0,
              "num_workers": None, "drop_last": True, "sync_bn": False, "channels_last": "auto",
              "deterministic": False},
    "eval": {"batch_size": 64, "epoch": "last"},
    "device": "auto",
    "precision": "auto",
    "output": None,
}

_INT = {"type": "integer"}
_NUM = {"type": "number"}
SCHEMA = {
    "name": {"type": ["string", "null"], "description": "a name (letters, digits, - and _) or null"},
    "data_root": {"type": ["string", "null"], "path": "dir",
                  "description": "null (use $INFOCAM_DATA) or the existing folder holding CUB_200_2011/, "
                                 "tiny-imagenet-200/ and weights/"},
    "dataset.name": {"registry": "datasets"},
    "dataset.image_size": {**_INT, "minimum": 16, "maximum": 1024},
    "dataset.resize": {**_INT, "minimum": 16, "maximum": 2048},
    "dataset.crop": {"enum": ["crop", "resized_crop"]},
    "dataset.test_transform": {"enum": ["resize", "resize_center_crop"]},
    "dataset.classes": {"type": ["integer", "null"], "minimum": 1,
                        "description": "null (every class) or an integer ≥ 1 (the first classes)"},
    "backbone.name": {"registry": "networks"},
    "backbone.pretrained": {"enum": ["imagenet", "none"]},
    "backbone.weights_path": {"type": ["string", "null"], "description": "null or the path of a weights file"},
    "backbone.download": {"type": "boolean"},
    "backbone.trainable_from": {"enum": [*LITE0_STAGES, "head"]},
    "adl.enabled": {"type": "boolean"},
    "adl.drop_rate": {**_NUM, "minimum": 0, "maximum": 1},
    "adl.gamma": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1,
                  "description": "null (the paper's: 0.8 VGG, 0.9 ResNet) or a number in (0, 1]"},
    "train.epochs": {**_INT, "minimum": 1, "maximum": 100_000},
    "train.batch_size": {**_INT, "minimum": 1, "maximum": 65_536},
    "train.reference_batch": {"type": ["integer", "null"], "minimum": 1,
                              "description": "null (the global batch of one process) or an integer ≥ 1"},
    "train.lr_rule": {"enum": ["linear", "refuse"]},
    "train.optimizer": {"enum": ["sgd", "adam"]},
    "train.lr": {**_NUM, "exclusiveMinimum": 0, "maximum": 10},
    "train.momentum": {**_NUM, "minimum": 0, "exclusiveMaximum": 1},
    "train.nesterov": {"type": "boolean"},
    "train.weight_decay": {**_NUM, "minimum": 0, "maximum": 1},
    "train.head_lr_mult": {**_NUM, "exclusiveMinimum": 0, "maximum": 1000},
    "train.head_layers": {"type": ["array", "null"], "items": {"type": "string"}, "minItems": 1,
                          "description": "null (the network's new layers) or a list of submodule names"},
    "train.schedule": {"enum": ["step", "cosine", "none"]},
    "train.step_size": {**_INT, "minimum": 1},
    "train.gamma": {**_NUM, "exclusiveMinimum": 0, "maximum": 1},
    "train.seed": {**_INT, "minimum": 0, "maximum": 2**32 - 1},
    "train.num_workers": {"type": ["integer", "null"], "minimum": 0, "maximum": 64,
                          "description": "null (from the host's cores and the ranks on it) or an integer 0..64"},
    "train.drop_last": {"type": "boolean"},
    "train.sync_bn": {"type": "boolean"},
    "train.channels_last": {"enum": ["auto", True, False]},
    "train.deterministic": {"type": "boolean"},
    "eval.batch_size": {**_INT, "minimum": 1, "maximum": 65_536},
    "eval.epoch": {"enum": ["last", "best_on_test"]},
    "device": {"type": "string", "device": True},
    "precision": {"enum": ["auto", "fp32", "bf16", "fp16"]},
    "output": {"type": ["string", "null"], "description": "null (runs/train/<name>) or a folder"},
}

# Names people commonly use for a recipe key, for the did-you-mean of an unknown key.
ALIASES = {"learning_rate": "lr", "wd": "weight_decay", "bs": "batch_size", "num_epochs": "epochs",
           "lr_mult": "head_lr_mult", "model": "backbone", "network": "backbone", "arch": "backbone",
           "workers": "num_workers", "scheduler": "schedule", "amp": "precision", "out": "output",
           "output_dir": "output", "data": "dataset", "root": "data_root", "size": "image_size"}
# Keys that moved: old dotted name -> the message
MOVED = {"dataset.root": "dataset.root is now the top-level data_root: the folder holding CUB_200_2011/, "
                         "tiny-imagenet-200/ and weights/ (as INFOCAM_DATA)"}
# Keys that do not change the numbers a run produces: a checkpoint resumes across changes of these.
NOT_TRAINING = ("name", "output", "data_root", "device", "eval", "backbone.weights_path", "backbone.download",
                "train.num_workers", "train.channels_last", "train.deterministic", "precision")


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the file, the key or value, and the fix."""


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
    if path.is_dir():
        raise RecipeError(f"recipe {str(name_or_path)!r} is a folder; give a recipe file (.yml) or a shipped "
                          f"recipe ({', '.join(shipped)})")
    near = config.closest(str(name_or_path), shipped)
    hint = f"; did you mean {near!r}?" if near else ""
    raise RecipeError(f"recipe {str(name_or_path)!r} is neither a file nor a shipped recipe ({', '.join(shipped)}){hint}")


def _merge(defaults: dict, given: dict, where: str, source: str) -> dict:
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        dotted = f"{where}{key}"
        if dotted in MOVED:
            raise RecipeError(f"{source}: {MOVED[dotted]}")
        if key not in defaults:
            raise RecipeError(f"{source}: unknown key {dotted!r}{config.did_you_mean(str(key), defaults, ALIASES)}")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise RecipeError(f"{source}: {dotted!r} must be a mapping of {', '.join(defaults[key])}")
            out[key] = _merge(defaults[key], value, dotted + ".", source)
        else:
            out[key] = value
    return out


def flatten(recipe: dict, where: str = "") -> dict:
    """``{"train": {"lr": 0.01}}`` → ``{"train.lr": 0.01}``."""
    out = {}
    for key, value in recipe.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{where}{key}."))
        else:
            out[f"{where}{key}"] = value
    return out


def _nest(dotted: str, value) -> dict:
    out: dict = value
    for k in reversed(dotted.split(".")):
        out = {k: out}
    return out


def _deep_update(base: dict, extra: dict) -> dict:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


def parse_override(text: str) -> tuple[str, object]:
    """``"train.epochs=1"`` → ``("train.epochs", 1)`` (the value read as YAML), as ``infocam run -p``."""
    return config.parse_override(text, RecipeError, "-s/--set")


def _read(name_or_path) -> tuple[dict, str]:
    if isinstance(name_or_path, dict):
        given, source = copy.deepcopy(name_or_path), "recipe"
    else:
        path = resolve_recipe_path(name_or_path)
        source = str(path)
        try:
            given = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise RecipeError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipeError(f"cannot read recipe {path}: {exc}") from None
        if given is None:
            raise RecipeError(f"{path} is empty: a recipe is a YAML mapping of {', '.join(DEFAULTS)}; start from "
                              f"a shipped one, e.g. {RECIPES_DIR / 'resnet50-cub.yml'}")
        if not isinstance(given, dict):
            raise RecipeError(f"{path} must be a YAML mapping of {', '.join(DEFAULTS)}, not a "
                              f"{type(given).__name__}")
        given.setdefault("name", path.stem)
    if not given:
        raise RecipeError(f"{source} is empty: a recipe is a mapping of {', '.join(DEFAULTS)}")
    return given, source


def load_recipe(name_or_path, overrides: list[str] | dict | None = None, *, check_device: bool = True) -> dict:
    """Read, complete and check a recipe (a file, a shipped name, or a dict); ``overrides`` as ``key=value``.

    Every value is checked against :data:`SCHEMA` and the rules across keys; the first problem is
    one :class:`RecipeError`. ``check_device=False`` accepts a device this machine lacks (for
    reading a recipe meant for another machine).
    """
    given, source = _read(name_or_path)
    if isinstance(overrides, dict):
        _deep_update(given, copy.deepcopy(overrides))
    else:
        for item in overrides or []:
            _deep_update(given, _nest(*parse_override(item)))
    recipe = _merge(DEFAULTS, given, "", source)
    for dotted, value in flatten(recipe).items():
        schema = SCHEMA[dotted]
        if dotted == "device" and not check_device:
            schema = {"type": "string"}
        wrong = config.problem(dotted, value, schema)
        if wrong is not None:
            raise RecipeError(f"{source}: {dotted} = {value!r} is not allowed{wrong}")
    recipe["name"] = recipe["name"] or "recipe"
    recipe["output"] = recipe["output"] or f"runs/train/{recipe['name']}"
    _check_rules(recipe, source, check_device)
    return recipe


def _check_rules(recipe: dict, source: str, check_device: bool) -> None:
    """Rules across keys; one RecipeError naming the keys."""
    net, ds, t = recipe["backbone"]["name"], recipe["dataset"], recipe["train"]
    if recipe["adl"]["enabled"] and net not in ("vgg16_gap", "resnet50"):
        raise RecipeError(f"{source}: adl.enabled needs backbone vgg16_gap or resnet50 (the paper's ADL positions), "
                          f"not {net}")
    if net == "efficientnet_lite0" and ds["image_size"] % 32:
        raise RecipeError(f"{source}: dataset.image_size of efficientnet_lite0 must be a multiple of 32, "
                          f"got {ds['image_size']}")
    if (ds["crop"] == "crop" or ds["test_transform"] == "resize_center_crop") and ds["resize"] < ds["image_size"]:
        raise RecipeError(f"{source}: dataset.resize ({ds['resize']}) must be >= dataset.image_size "
                          f"({ds['image_size']}) to crop from it")
    from infocam.recipe.factories import DATASETS

    if ds["classes"] is not None and not DATASETS[ds["name"]].class_subsets:
        raise RecipeError(f"{source}: dataset.classes (a class subset) is not supported for {ds['name']}; remove it")
    if recipe["train"]["nesterov"] and (t["optimizer"] != "sgd" or t["momentum"] <= 0):
        raise RecipeError(f"{source}: train.nesterov needs train.optimizer sgd with train.momentum > 0 "
                          f"(got {t['optimizer']}, momentum {t['momentum']})")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if t["lr_rule"] == "refuse" and t["reference_batch"] and t["batch_size"] * world != t["reference_batch"]:
        raise RecipeError(f"{source}: the global batch {t['batch_size']} × {world} process(es) = "
                          f"{t['batch_size'] * world} differs from train.reference_batch {t['reference_batch']} "
                          "and train.lr_rule is refuse; set train.batch_size to reference_batch / processes, or "
                          "train.lr_rule: linear to scale the learning rate")
    if check_device:
        from infocam.device import DeviceError, check_precision, resolve_device

        try:
            check_precision(precision_for(recipe, resolve_device(recipe["device"])), resolve_device(recipe["device"]))
        except DeviceError as exc:
            raise RecipeError(f"{source}: {exc}") from None


def precision_for(recipe: dict, dev) -> str:
    """``precision: auto`` → bf16 autocast on CUDA (what an H100 is built for), fp32 elsewhere."""
    if recipe["precision"] != "auto":
        return recipe["precision"]
    return "bf16" if dev.type == "cuda" else "fp32"


def global_batch(recipe: dict, world_size: int) -> int:
    """The global batch: ``train.batch_size`` per process × processes (torchvision's reference semantics)."""
    return int(recipe["train"]["batch_size"]) * world_size


def effective_lr(recipe: dict, world_size: int) -> float:
    """``train.lr`` for this global batch: × global / ``reference_batch`` under ``lr_rule: linear``.

    The linear scaling rule (Goyal et al. 2017): the recipe's lr is the one its authors used at
    ``reference_batch`` (null: the batch of one process, so one process never rescales);
    ``lr_rule: refuse`` stops at load time instead when the global batch differs.
    """
    t = recipe["train"]
    reference = t["reference_batch"] or t["batch_size"]
    return float(t["lr"]) * global_batch(recipe, world_size) / reference if t["lr_rule"] == "linear" else float(t["lr"])


def training_key(recipe: dict, world_size: int, precision: str) -> dict:
    """The recipe keys that change the numbers, flattened, plus the world size and the resolved precision.

    The learning rate actually used follows from these (:func:`effective_lr`), so it is not a key of its own.
    """
    flat = flatten(recipe)
    keep = {k: v for k, v in flat.items() if not any(k == n or k.startswith(n + ".") for n in NOT_TRAINING)}
    return {**keep, "world_size": world_size, "precision": precision}
