"""What a checked recipe builds: its network, its transforms and datasets, and the settings of :func:`infocam.train.fit`.

The data root (``data_root``, else ``$INFOCAM_DATA``) is one folder with one meaning, as in the
chapters: it holds ``CUB_200_2011/``, ``tiny-imagenet-200/`` and ``weights/`` (the ImageNet
weights); the datasets and the weights are found there by :mod:`infocam.data.cub`,
:mod:`infocam.data.tiny_imagenet` and :mod:`infocam.models.pretrained`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from infocam.recipe.schema import effective_lr


def mean_std(network: str):
    """Input normalisation the network's ImageNet weights expect."""
    from infocam.models.backbones import NORMALIZATION

    return NORMALIZATION["efficientnet_lite0"] if network == "efficientnet_lite0" else NORMALIZATION["resnet50"]


def build_network(recipe: dict, num_classes: int, *, pretrained: bool | None = None):
    """The recipe's network with a ``num_classes`` head (ImageNet weights unless ``pretrained: none``).

    New layers start from torch's RNG: seed it first (:func:`infocam.utils.seed_everything`) for a
    repeatable run, as :func:`infocam.recipe.runner.run` does.
    """
    b, a = recipe["backbone"], recipe["adl"]
    use = (b["pretrained"] == "imagenet") if pretrained is None else pretrained
    name = b["name"]
    if name == "efficientnet_lite0":
        from infocam.models.lite0_cam import Lite0CAM

        return Lite0CAM(num_classes, trainable_from=b["trainable_from"], pretrained=use,
                        image_size=recipe["dataset"]["image_size"])
    weights = dict(pretrained=use, weights_path=b["weights_path"], data_root=recipe["data_root"],
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
    """(train, test) transforms: resize + random crop + flip; the test image resized whole to image_size
    (``test_transform: resize``, wsolevaluation's) or resized and centre-cropped (``resize_center_crop``,
    the authors' scripts)."""
    from infocam.data import transforms as T

    ds = recipe["dataset"]
    norm = mean_std(recipe["backbone"]["name"])
    train = T.train_transform(ds["image_size"], ds["resize"], norm, kind=ds["crop"])
    if ds["test_transform"] == "resize_center_crop":
        test = T.Compose([T.Resize((ds["resize"], ds["resize"])), T.CenterCrop(ds["image_size"]), T.Normalize(*norm)])
    else:
        test = T.eval_transform(ds["image_size"], norm)
    return train, test


class DatasetKind(NamedTuple):
    """How a recipe's ``dataset.name`` is read: ``build(recipe, train_tf, test_tf)`` → (train, test,
    num_classes, source), its class count (for a dry run without the data), whether ``dataset.classes``
    (the first classes only) applies."""

    build: Callable
    num_classes: int
    class_subsets: bool


def _cub(recipe: dict, train_tf, test_tf):
    from infocam.data.cub import first_classes, load_cub
    from infocam.data.images import cub_dataset

    cub = load_cub(None, data_root=recipe["data_root"])
    if recipe["dataset"]["classes"]:
        cub = first_classes(cub, int(recipe["dataset"]["classes"]))
    train = cub_dataset(cub, np.flatnonzero(cub.is_train), train_tf)
    test = cub_dataset(cub, np.flatnonzero(~cub.is_train), test_tf)
    return train, test, cub.num_classes, cub.source


def _tiny_imagenet(recipe: dict, train_tf, test_tf):
    from infocam.data.images import tiny_imagenet_dataset
    from infocam.data.tiny_imagenet import load_tiny_imagenet

    tr = load_tiny_imagenet(None, "train", data_root=recipe["data_root"])
    te = load_tiny_imagenet(None, "val", data_root=recipe["data_root"])
    return (tiny_imagenet_dataset(tr, train_tf), tiny_imagenet_dataset(te, test_tf), tr.num_classes,
            f"{tr.source}; {te.source}")


# The datasets a recipe may name (the schema's ``registry: datasets``): a new one is its loader in
# infocam/data/ and one line here.
DATASETS = {"cub": DatasetKind(_cub, 200, True), "tiny_imagenet": DatasetKind(_tiny_imagenet, 200, False)}


def build_datasets(recipe: dict):
    """(train, test, num_classes, source) of the recipe's dataset under the data root; checks the folder first."""
    train_tf, test_tf = transforms_for(recipe)
    return DATASETS[recipe["dataset"]["name"]].build(recipe, train_tf, test_tf)


def fit_kwargs(recipe: dict, world_size: int = 1) -> dict:
    """Keyword arguments of :func:`infocam.train.fit` for the recipe's training settings.

    ``batch_size`` is per process; the learning rate is :func:`~infocam.recipe.schema.effective_lr`
    for the global batch of ``world_size`` processes.
    """
    t = recipe["train"]
    return dict(epochs=int(t["epochs"]), batch_size=int(t["batch_size"]), lr=effective_lr(recipe, world_size),
                momentum=float(t["momentum"]), nesterov=bool(t["nesterov"]), weight_decay=float(t["weight_decay"]),
                optimizer=t["optimizer"], head_lr_mult=float(t["head_lr_mult"]),
                head=list(t["head_layers"]) if t["head_layers"] else None,
                schedule=None if t["schedule"] == "none" else t["schedule"], step_size=int(t["step_size"]),
                gamma=float(t["gamma"]), seed=int(t["seed"]), drop_last=bool(t["drop_last"]),
                sync_bn=bool(t["sync_bn"]))
