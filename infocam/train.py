"""Training loops on in-memory tensors (every dataset in the book fits in memory).

The data path is a random permutation and tensor indexing per batch: no per-sample Dataset,
no PIL, no worker processes, so the loop runs at the speed of forward + backward + step.
Gradients are zeroed every step (the original MI code never did).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from infocam.utils import progress, seed_everything


def iterate_minibatches(n: int, batch_size: int, generator: torch.Generator, shuffle: bool = True):
    """Index tensors of a shuffled pass over ``range(n)`` (the last batch may be smaller)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def fit(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.01,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    optimizer: str = "sgd",
    seed: int = 0,
    desc: str = "training",
) -> list[float]:
    """Train ``model`` in place on tensors ``X`` (N, ...) and labels ``y`` (N,); mean loss per epoch.

    ``optimizer`` is ``"sgd"`` (with ``momentum``) or ``"adam"``. Seeds torch/NumPy from ``seed``
    so two runs with the same seed agree on the same machine.
    """
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1 (got {epochs}, {batch_size})")
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose 'sgd' or 'adam'")
    y = y.long()
    history = []
    model.train()
    for _ in progress(range(epochs), desc=desc):
        total, count = 0.0, 0
        for idx in iterate_minibatches(len(X), batch_size, gen):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        history.append(total / count)
    model.eval()
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, X: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` in eval mode over ``X``, in batches."""
    model.eval()
    return torch.cat([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])


def per_class_accuracy(pred, y, num_classes: int) -> np.ndarray:
    """Accuracy of each class (NaN for a class absent from ``y``)."""
    pred, y = np.asarray(pred), np.asarray(y)
    out = np.full(num_classes, np.nan)
    for k in range(num_classes):
        mask = y == k
        if mask.any():
            out[k] = float((pred[mask] == k).mean())
    return out
