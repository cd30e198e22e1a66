"""Training recipes: one YAML file per long run, checked before anything trains, run by ``infocam train``.

A recipe names the data root, the dataset, the backbone (± ADL), the optimiser and schedule, the
device, the precision and the output folder::

    name: resnet50-cub
    data_root: null            # $INFOCAM_DATA: the folder holding CUB_200_2011/, tiny-imagenet-200/, weights/
    dataset: {name: cub, image_size: 224, resize: 256}
    backbone: {name: resnet50, pretrained: imagenet}
    adl: {enabled: false}
    train: {epochs: 200, batch_size: 128, lr: 0.01, head_lr_mult: 10, head_layers: [features.4, fc]}
    precision: auto            # bf16 autocast on CUDA, fp32 on CPU
    output: runs/train/resnet50-cub

Three rooms: :mod:`~infocam.recipe.schema` (keys, defaults, allowed values, :func:`load_recipe`),
:mod:`~infocam.recipe.factories` (network, transforms, datasets, ``fit`` settings),
:mod:`~infocam.recipe.runner` (the run, the dry run, the scoring) and :mod:`~infocam.recipe.command`
(the ``infocam train`` command). The paper's recipes ship in ``infocam/recipes/``
(:func:`shipped_recipes`). Used by ``infocam train`` and chapter 5.
"""

from infocam.recipe.factories import DATASETS, build_datasets, build_network, fit_kwargs, mean_std, transforms_for
from infocam.recipe.schema import (DEFAULTS, NETWORKS, RECIPES_DIR, SCHEMA, RecipeError,
                                   effective_lr, global_batch, load_recipe, parse_override, precision_for,
                                   resolve_recipe_path, shipped_recipes, training_key)
from infocam.recipe.runner import (FolderBusy, TrainingError, dry_run, localisation, output_lock, recipe_key, run,
                                runtime_settings)
from infocam.recipe.command import add_train_command, train_command

__all__ = ["DATASETS", "DEFAULTS", "FolderBusy", "NETWORKS", "RECIPES_DIR", "RecipeError",
           "SCHEMA", "TrainingError", "add_train_command", "build_datasets", "build_network", "dry_run",
           "effective_lr", "fit_kwargs", "global_batch", "load_recipe", "localisation", "mean_std", "output_lock",
           "parse_override", "precision_for", "recipe_key", "resolve_recipe_path", "run", "runtime_settings",
           "shipped_recipes", "train_command", "training_key", "transforms_for"]
