"""Linear probe: a softmax or PC-softmax logits layer trained on frozen, cached backbone features.

The paper fine-tunes only the logits layer of an ImageNet Inception-V3 on CUB-200-2011; with a
frozen backbone that is exactly a linear classifier on the pooled features, so the features are
extracted once (:func:`infocam.features.extract_features`) and every head trains in
seconds. Used in chapter 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from infocam.estimators import pc_softmax_reading
from infocam.heads import train_linear_head
from infocam.losses import label_priors, predict
from infocam.train import per_class_accuracy, predict_logits


@dataclass(frozen=True)
class ProbeResult:
    """Test metrics of one trained head."""

    loss: str
    accuracy: float
    mean_class_accuracy: float
    per_class: np.ndarray
    mi_estimate: float  # PC-softmax MI reading (nats) of the training label distribution
    pred: np.ndarray


def standardize(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    """Scale features by the training mean and sd (per dimension); returns float tensors."""
    mean, sd = train.mean(0), train.std(0) + 1e-6
    return [torch.as_tensor((a - mean) / sd, dtype=torch.float32) for a in (train, *others)]


def train_probe(X: torch.Tensor, y: torch.Tensor, num_classes: int, loss: str = "softmax", *,
                epochs: int = 30, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4,
                seed: int = 0, device: torch.device | str = "cpu") -> tuple[nn.Linear, torch.Tensor]:
    """Chapter 3's probe: :func:`infocam.heads.train_linear_head` (Adam) with ``loss``; returns (head, priors)."""
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"features must be (N, C) with N labels, got {tuple(X.shape)} and {len(y)} labels")
    priors = label_priors(y, num_classes)
    head = train_linear_head(X, y, num_classes, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
                             weight_decay=weight_decay, seed=seed, device=device, desc=f"probe {loss}")
    return head, priors


def evaluate_probe(head: nn.Linear, X: torch.Tensor, y, priors, loss: str = "softmax") -> ProbeResult:
    """Accuracy, mean per-class accuracy and the PC-softmax MI reading of a trained head.

    The MI reading is :func:`infocam.estimators.pc_softmax_reading` with the training priors
    (held-out labels reweighted to them). ``X`` may live on any device; results are on the CPU.
    """
    device = next(head.parameters()).device
    logits = predict_logits(head, torch.as_tensor(X).to(device)).cpu()
    y = torch.as_tensor(y).long()
    pred = predict(logits).numpy()
    per_class = per_class_accuracy(pred, y.numpy(), logits.shape[1])
    mi = pc_softmax_reading(logits, y, priors)
    return ProbeResult(loss, float((pred == y.numpy()).mean()), float(np.nanmean(per_class)), per_class, mi, pred)
