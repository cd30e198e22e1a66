"""ImageNet weight files of torchvision's networks: where they are looked for, and one clear error.

Nothing is downloaded unless asked (``download=True``, on a machine with network): the file
torchvision expects (e.g. ``vgg16-397923af.pth``) is looked for at an explicit path, then at
``<data root>/weights/<file>``, then in torch's hub cache ``torch.hub.get_dir()/checkpoints/<file>``
(``$TORCH_HOME``). Used by the trainable networks of chapter 5 and ``infocam train``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from infocam.paths import DataError, resolve_data_root


def _weights_enum(arch: str):
    from torchvision import models

    table = {"vgg16": models.VGG16_Weights.IMAGENET1K_V1, "resnet50": models.ResNet50_Weights.IMAGENET1K_V1,
             "inception_v3": models.Inception_V3_Weights.IMAGENET1K_V1}
    if arch not in table:
        raise ValueError(f"no ImageNet weights known for {arch!r}; choose one of {tuple(table)}")
    return table[arch]


def weight_file(arch: str) -> str:
    """File name torchvision uses for ``arch``'s ImageNet weights (e.g. ``resnet50-0676ba61.pth``)."""
    return os.path.basename(_weights_enum(arch).url)


def weight_candidates(arch: str, weights_path=None, data_root=None) -> list[Path]:
    """Where the weights of ``arch`` are looked for, in order."""
    name = weight_file(arch)
    out = [Path(weights_path)] if weights_path else []
    root = resolve_data_root(data_root)
    if root is not None:
        out.append(root / "weights" / name)
    out.append(Path(torch.hub.get_dir()) / "checkpoints" / name)
    return out


def imagenet_state_dict(arch: str, weights_path=None, data_root=None, download: bool = False) -> dict:
    """ImageNet state dict of torchvision's ``arch`` from a local file (or torchvision's download)."""
    candidates = weight_candidates(arch, weights_path, data_root)
    if weights_path and not Path(weights_path).is_file():
        raise DataError(f"weights file {weights_path} does not exist; put torchvision's {weight_file(arch)} there "
                        "or leave weights_path empty to search the data root and the torch hub cache")
    for path in candidates:
        if path.is_file():
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise DataError(f"cannot read weights file {path} ({type(exc).__name__}: {exc})") from None
    weights = _weights_enum(arch)
    if download:
        return weights.get_state_dict(progress=False)
    raise DataError(f"ImageNet weights for {arch} not found: put torchvision's {weight_file(arch)} at "
                    f"{' or '.join(str(p) for p in candidates)} (download {weights.url} on a machine with "
                    "network), set download: true where there is network, or use pretrained: none")


def load_into(model: nn.Module, state: dict, arch: str, source: str = "the weights") -> None:
    """``model.load_state_dict(state)`` with one clear error when the weights belong to another network."""
    missing, unexpected = [], []
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = "; ".join(f"{what} e.g. {keys[:2]}" for what, keys in
                           (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
        raise DataError(f"{source} do not fit {arch} ({detail}): they are weights of another architecture; "
                        f"use torchvision's {weight_file(arch)}")
    model.load_state_dict(state)
