"""One linear-head trainer: a logits layer ``nn.Linear(C, K)`` on frozen, pooled backbone features.

Every head in the book is this call with different options: chapter 3's softmax / PC-softmax probes
(Adam, ``loss`` with the training priors), chapters 4–5's frozen-backbone heads (Adam, cross-entropy)
and chapter 5's restricted ImageNet head trained further on Tiny-ImageNet (SGD, Nesterov, cosine,
started from given rows ``init``). The head is seeded before it is built, so a seed fixes the run.
"""

from __future__ import annotations

import torch
from torch import nn

from infocam.losses import get_loss, label_priors
from infocam.train import fit
from infocam.utils import seed_everything


def train_linear_head(X: torch.Tensor, y, num_classes: int, *, loss: str = "softmax", init=None,
                      optimizer: str = "adam", epochs: int = 30, batch_size: int = 64, lr: float = 1e-3,
                      weight_decay: float = 1e-4, momentum: float = 0.0, nesterov: bool = False,
                      schedule: str | None = None, seed: int = 0, device: torch.device | str = "cpu",
                      desc: str = "linear head") -> nn.Linear:
    """Train a linear head on features ``X`` (N, C) with labels ``y`` on ``device``; returns it in eval mode.

    ``loss`` is a name of :func:`infocam.losses.get_loss` (``"softmax"`` is cross-entropy; the
    prior-corrected losses use the label priors of ``y``, so every class must occur in ``y``);
    ``init`` = (weight (K, C), bias (K,)) starts from given rows instead of a random head.
    """
    X = torch.as_tensor(X).float()
    y = torch.as_tensor(y).long()
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"features must be (N, C) with N labels, got {tuple(X.shape)} and {len(y)} labels")
    loss_fn = get_loss(loss) if loss == "softmax" else get_loss(loss, label_priors(y, num_classes))
    seed_everything(seed)
    head = nn.Linear(X.shape[1], num_classes)
    if init is not None:
        with torch.no_grad():
            head.weight.copy_(init[0])
            head.bias.copy_(init[1])
    fit(head, X, y, loss_fn, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, nesterov=nesterov,
        weight_decay=weight_decay, optimizer=optimizer, schedule=schedule, seed=seed, device=device, desc=desc)
    return head.eval()


__all__ = ["train_linear_head"]
