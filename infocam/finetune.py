"""EfficientNet-Lite0 fine-tuned in part: the rungs between a frozen backbone and a trained one.

The trunk up to a cut (``infocam.features.CHAPTER5_CUT``) is frozen and its activations cached; the
stages from ``trainable_from`` on, the 1280-channel head conv and a new linear head train on them
(:func:`finetune_lite0`), with the paper's recipe in small: SGD with Nesterov momentum, weight decay
1e-4, 10× learning rate on the new head, cosine schedule. :func:`advance` runs cached activations
through frozen stages up to the trainable part; :func:`frozen_top` is the same part untrained
(chapter 4's frozen features); :func:`restricted_head` keeps the ImageNet head's rows of a dataset's
classes. Used in chapter 5.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _lite0(image_size: int):
    from infocam.models.backbones import efficientnet_lite0

    return efficientnet_lite0(pretrained=True, image_size=image_size)


@torch.no_grad()
def advance(acts, cut: str, trainable_from: str, image_size: int = 224, batch_size: int = 256) -> np.ndarray:
    """Run cached trunk activations (after stage ``cut``) through the frozen pretrained stages up to
    ``trainable_from``: the input of the part that trains. Float16 like the cache."""
    from infocam.models.backbones import LITE0_STAGES, Lite0Top, lite0_cut_before

    target = lite0_cut_before(trainable_from)
    if target == cut:
        return np.asarray(acts)
    if LITE0_STAGES.index(target) < LITE0_STAGES.index(cut):
        raise ValueError(f"activations cached after {cut} cannot feed training from {trainable_from}: "
                         f"cache them after {target} (or earlier)")
    model = _lite0(image_size).eval()
    rest = Lite0Top(model, LITE0_STAGES[LITE0_STAGES.index(cut) + 1]).stages
    keep = len(rest.blocks) - len(Lite0Top(model, trainable_from).stages.blocks)
    out = []
    for start in range(0, len(acts), batch_size):
        x = torch.from_numpy(np.asarray(acts[start : start + batch_size], dtype=np.float32))
        for block, rate in zip(rest.blocks[:keep], rest._rates[:keep]):
            x = block(x, drop_connect_rate=rate)
        out.append(x.half().numpy())
    return np.concatenate(out)


def finetune_lite0(acts, labels, num_classes: int, *, trainable_from: str = "head", epochs: int = 6,
                   batch_size: int = 64, lr: float = 0.01, head_lr_mult: float = 10.0, weight_decay: float = 1e-4,
                   seed: int = 0, device="cpu", image_size: int = 224, on_epoch=None, init=None,
                   precision: str = "fp32") -> nn.Module:
    """Fine-tune Lite0 from ``trainable_from`` on the activations that feed it; returns the trained top.

    ``acts`` (N, C, h, w) are the frozen part's outputs (``split_lite0``'s cut, see :func:`advance`);
    the pretrained stages from ``trainable_from`` and the 1280-channel head conv start from their
    ImageNet weights, the linear head ``_fc`` (1280 → ``num_classes``) from scratch, or from the rows
    ``init`` = (weight (K, 1280), bias (K,)), at ``head_lr_mult`` × ``lr`` (SGD, Nesterov momentum 0.9,
    cosine schedule), forward and backward passes in ``precision`` (:mod:`infocam.device`; the weights
    stay float32). The top's ``features(a)`` are the final (N, 1280, h, w) maps, ``_fc`` the head a CAM reads.
    """
    from infocam.models.backbones import split_lite0
    from infocam.train import fit

    torch.manual_seed(seed)
    _, top = split_lite0(_lite0(image_size), trainable_from)
    top._fc = start_head(nn.Linear(top._fc.in_features, num_classes), init)
    X = torch.as_tensor(np.asarray(acts, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels)).long()
    fit(top, X, y, F.cross_entropy, epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9, nesterov=True,
        weight_decay=weight_decay, optimizer="sgd", head="_fc", head_lr_mult=head_lr_mult, schedule="cosine",
        seed=seed, device=device, precision=precision, desc=f"fine-tune from {trainable_from}, seed {seed}",
        on_epoch=on_epoch)
    return top.cpu().eval()


def start_head(head: nn.Linear, init=None) -> nn.Linear:
    """``head`` with its weight and bias set to ``init`` = (weight (K, C), bias (K,)), or as it is for None
    (copying draws no random numbers, so a seeded run is the same either way)."""
    if init is not None:
        if tuple(init[0].shape) != tuple(head.weight.shape) or tuple(init[1].shape) != tuple(head.bias.shape):
            raise ValueError(f"init must be (weight {tuple(head.weight.shape)}, bias {tuple(head.bias.shape)}), "
                             f"got {tuple(init[0].shape)} and {tuple(init[1].shape)}")
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(init[0]))
            head.bias.copy_(torch.as_tensor(init[1]))
    return head


def restricted_head(wnids, image_size: int = 224) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the pretrained Lite0's 1,000-way head for a dataset's ImageNet classes: (K, 1280), (K,).

    The class order comes from :func:`infocam.imagenet.wnid_indices`; the restricted head
    classifies the dataset (argmax over its K classes) with no training. Used in chapter 5.
    """
    from infocam.imagenet import wnid_indices

    fc = _lite0(image_size)._fc
    rows = torch.tensor(wnid_indices(wnids))
    return fc.weight.detach()[rows].clone(), fc.bias.detach()[rows].clone()


def snapshot(model: nn.Module) -> dict:
    """A CPU copy of a model's state (to keep every epoch's weights for model selection)."""
    return {k: v.detach().cpu().clone() for k, v in copy.deepcopy(model.state_dict()).items()}


@torch.no_grad()
def pooled_features(transform, acts, index=None, batch_size: int = 256) -> torch.Tensor:
    """Global-average-pooled final features (N, 1280) of cached activations through ``transform``."""
    index = np.arange(len(acts)) if index is None else np.asarray(index)
    return torch.cat([transform(torch.from_numpy(np.asarray(acts[index[i : i + batch_size]], dtype=np.float32)))
                      .mean((2, 3)) for i in range(0, len(index), batch_size)])


def frozen_top(trainable_from: str = "head", image_size: int = 224) -> nn.Module:
    """The pretrained (not fine-tuned) part of Lite0 after the cut: chapter 4's frozen features."""
    from infocam.models.backbones import split_lite0

    _, top = split_lite0(_lite0(image_size), trainable_from)
    for p in top.parameters():
        p.requires_grad_(False)
    return top.eval()


def train_whole_lite0(paths, labels, num_classes: int, *, epochs: int = 3, batch_size: int = 64, lr: float = 0.01,
                      head_lr_mult: float = 10.0, weight_decay: float = 1e-4, seed: int = 0, device="cpu",
                      image_size: int = 224, num_workers: int = 0, init=None,
                      precision: str = "fp32") -> tuple[nn.Module, float]:
    """The whole Lite0 trained end to end on images (the training ladder's last rung), with the same
    budget rule as :func:`finetune_lite0`: SGD, Nesterov momentum 0.9, ``head_lr_mult`` × ``lr`` on the new
    head (from scratch, or from the rows ``init`` = (weight, bias)), cosine schedule, ``epochs`` epochs;
    each image resized whole to ``image_size`` (as the cached features are), no augmentation, passes in
    ``precision``. Returns the network (``features`` → (N, 1280, h, w), head ``fc``) and the measured
    seconds per epoch. Used in chapter 5 (``ladder`` with ``"all"``)."""
    import time

    from infocam.models.lite0_cam import Lite0CAM
    from infocam.train import fit
    from infocam.utils import seed_everything

    seed_everything(seed)
    model = Lite0CAM(num_classes, trainable_from="stage1", pretrained=True, image_size=image_size)
    start_head(model.fc, init)
    data = image_dataset(paths, labels, image_size)
    started = time.time()
    fit(model, data, None, F.cross_entropy, epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9, nesterov=True,
        weight_decay=weight_decay, optimizer="sgd", head="fc", head_lr_mult=head_lr_mult, schedule="cosine", seed=seed,
        device=device, precision=precision, num_workers=num_workers, desc=f"whole network, seed {seed}")
    return model.cpu().eval(), (time.time() - started) / epochs


def image_dataset(paths, labels, image_size: int = 224):
    """The images at ``paths`` resized whole to ``image_size`` and normalised for Lite0 (no boxes)."""
    from infocam.data import transforms as T
    from infocam.data.images import ImageDataset
    from infocam.models.backbones import NORMALIZATION

    return ImageDataset(list(paths), np.asarray(labels), None, T.eval_transform(image_size, NORMALIZATION["efficientnet_lite0"]))


__all__ = ["advance", "finetune_lite0", "image_dataset", "train_whole_lite0", "frozen_top", "pooled_features", "restricted_head", "snapshot", "start_head"]
