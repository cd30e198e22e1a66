"""Classification losses compared in the book (all take logits ``f`` of shape (N, K)).

* :func:`softmax_cross_entropy` — the usual −log softmax_y(f).
* :func:`pc_softmax_cross_entropy` — −log PC_y(f), PC_y = e^{f_y} / Σ_y' p(y') e^{f_y'} (the paper).
* :func:`logit_adjusted_loss` — softmax CE on f + τ log p (Menon et al., 2021).
* :func:`balanced_softmax_loss` — softmax CE on f + log p (Ren et al., 2020).
* :func:`class_weighted_cross_entropy` — softmax CE with per-class weights (inverse frequency by default).

PC-softmax, logit-adjusted (τ = 1) and Balanced Softmax differ only by the constant log p(y) per
sample, so their gradients with respect to the logits are identical. For all of them the
prediction is argmax_y f_y(x) (:func:`predict`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOSSES = ("softmax", "pc_softmax", "logit_adjusted", "balanced_softmax", "class_weighted")


def check_priors(priors, num_classes: int | None = None) -> torch.Tensor:
    """Validate a label prior vector: finite, strictly positive, summing to 1, right length."""
    if isinstance(priors, CheckedPriors):  # checked once already: only the length can still be wrong
        if num_classes is not None and len(priors.p) != num_classes:
            raise ValueError(f"priors has {len(priors.p)} entries but the logits have {num_classes} classes")
        return priors.p
    p = torch.as_tensor(priors, dtype=torch.float64)
    if p.ndim != 1:
        raise ValueError(f"priors must be a 1-D vector, got shape {tuple(p.shape)}")
    if num_classes is not None and len(p) != num_classes:
        raise ValueError(f"priors has {len(p)} entries but the logits have {num_classes} classes")
    if not torch.isfinite(p).all():
        raise ValueError("priors contain NaN or inf")
    if (p <= 0).any():
        zero = torch.nonzero(p <= 0).flatten().tolist()
        raise ValueError(
            f"priors must be > 0 for every class (classes {zero} are not): a class absent from "
            "the training labels has no PC-softmax correction; drop it or add samples"
        )
    if not math.isclose(float(p.sum()), 1.0, abs_tol=1e-6):
        raise ValueError(f"priors must sum to 1, they sum to {float(p.sum()):.6g}")
    return p


def check_targets(targets, num_classes: int, what: str = "labels") -> torch.Tensor:
    """Integer class labels in 0..K−1 (the message of :mod:`infocam.estimators`, not a CUDA assert)."""
    t = torch.as_tensor(targets)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{what} must be integers 0..{num_classes - 1}, got dtype {t.dtype}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"{what} must lie in 0..{num_classes - 1} (num_classes = {num_classes}); "
                         f"found {int(t.min())}..{int(t.max())}")
    return t.long()


def label_priors(labels, num_classes: int) -> torch.Tensor:
    """Empirical label frequencies p(y) of a training set, checked for empty classes."""
    counts = torch.bincount(check_targets(labels, num_classes).flatten(), minlength=num_classes)
    return check_priors(counts.double() / counts.sum(), num_classes)


class CheckedPriors:
    """Label priors checked once, with log p(y) and class weights cached per dtype and device.

    :func:`get_loss` wraps its priors in one: a loss called at every training step then neither
    re-validates the same vector nor recomputes its logarithm (the cached tensors are the ones a
    per-call computation gives, so the numbers are unchanged). Accepted wherever priors are.
    """

    def __init__(self, priors):
        self.p = check_priors(priors)
        self._cache: dict = {}

    def cached(self, key, make):
        """``make()`` once per ``key`` (e.g. ``("log", dtype, device)``)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


def _log_priors(priors, logits: torch.Tensor) -> torch.Tensor:
    p = check_priors(priors, logits.shape[-1])
    make = lambda: p.log().to(logits.dtype).to(logits.device)  # noqa: E731
    return priors.cached(("log", logits.dtype, logits.device), make) if isinstance(priors, CheckedPriors) else make()


def _float(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (bf16/fp16 autocast) in float32: the losses are computed in float32 (others unchanged)."""
    return logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits


def _targets(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return check_targets(targets, logits.shape[-1], "targets")


def softmax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean −log softmax_y(f)."""
    logits = _float(logits)
    return F.cross_entropy(logits, _targets(logits, targets))


def log_pc_softmax(logits: torch.Tensor, priors) -> torch.Tensor:
    """log PC_y(f) = f_y − logsumexp_y'(f_y' + log p(y')) for every class (N, K).

    Each entry estimates the pointwise mutual information log p(y|x)/p(y).
    """
    logits = _float(logits)
    log_p = _log_priors(priors, logits)
    return logits - torch.logsumexp(logits + log_p, dim=-1, keepdim=True)


def pc_softmax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, priors) -> torch.Tensor:
    """Mean −log PC_y(f): the probability-corrected softmax loss of the paper."""
    return -log_pc_softmax(logits, priors).gather(-1, _targets(logits, targets)[:, None]).mean()


def logit_adjusted_loss(logits: torch.Tensor, targets: torch.Tensor, priors, tau: float = 1.0) -> torch.Tensor:
    """Softmax CE on f + τ log p(y) (Menon et al., 2021)."""
    logits = _float(logits)
    return F.cross_entropy(logits + tau * _log_priors(priors, logits), _targets(logits, targets))


def balanced_softmax_loss(logits: torch.Tensor, targets: torch.Tensor, priors) -> torch.Tensor:
    """Balanced Softmax (Ren et al., 2020): −log [p(y) e^{f_y} / Σ_y' p(y') e^{f_y'}]."""
    logits = _float(logits)
    return F.cross_entropy(logits + _log_priors(priors, logits), _targets(logits, targets))


def class_weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, priors, power: float = 1.0) -> torch.Tensor:
    """Softmax CE with class weights ∝ p(y)^(−power), normalised so that Σ_y p(y) w_y = 1."""
    logits = _float(logits)
    p = check_priors(priors, logits.shape[-1])

    def make():
        w = p.pow(-power)
        return (w / (p * w).sum()).to(logits.dtype).to(logits.device)

    w = priors.cached(("weights", power, logits.dtype, logits.device), make) if isinstance(priors, CheckedPriors) else make()
    return F.cross_entropy(logits, _targets(logits, targets), weight=w, reduction="sum") / len(targets)


def get_loss(name: str, priors=None):
    """``loss(logits, targets)`` for a name in :data:`LOSSES`; prior-based losses need ``priors``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
    if name == "softmax":
        return softmax_cross_entropy
    if priors is None:
        raise ValueError(f"loss {name!r} needs the training label priors")
    priors = CheckedPriors(priors)
    fn = {
        "pc_softmax": pc_softmax_cross_entropy,
        "logit_adjusted": logit_adjusted_loss,
        "balanced_softmax": balanced_softmax_loss,
        "class_weighted": class_weighted_cross_entropy,
    }[name]
    return lambda logits, targets: fn(logits, targets, priors)


def predict(logits: torch.Tensor) -> torch.Tensor:
    """Predicted class: argmax_y f_y(x), the same for every loss above."""
    return logits.argmax(dim=-1)
