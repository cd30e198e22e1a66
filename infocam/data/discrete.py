"""Finite joint distributions p(x, y) with chosen label priors, for exact computations.

Used in chapter 1: with a finite X every quantity (I, H, CE, gradients) is computed exactly.
"""

from __future__ import annotations

import numpy as np


def geometric_priors(num_classes: int, ratio: float) -> np.ndarray:
    """Label priors falling geometrically so that p(y=0) / p(y=K-1) = ``ratio`` (1 = balanced)."""
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    if not ratio >= 1:
        raise ValueError(f"ratio is largest/smallest prior and must be >= 1, got {ratio}")
    w = ratio ** (-np.arange(num_classes) / (num_classes - 1))
    return w / w.sum()


def random_joint(num_x: int, priors, concentration: float = 0.5, seed: int = 0) -> np.ndarray:
    """Joint table ``p[x, y] = p(y) p(x|y)`` with each p(x|y) drawn from Dirichlet(concentration).

    The class-conditionals depend only on ``seed``, so tables built with other ``priors`` share
    them: the balanced and imbalanced versions of a task differ in p(y) alone.
    """
    priors = np.asarray(priors, dtype=np.float64)
    if num_x < 2:
        raise ValueError(f"need at least 2 values of x, got {num_x}")
    if concentration <= 0:
        raise ValueError(f"concentration must be > 0, got {concentration}")
    if np.any(priors <= 0) or not np.isclose(priors.sum(), 1.0):
        raise ValueError("priors must be positive and sum to 1")
    rng = np.random.default_rng(seed)
    p_x_given_y = rng.dirichlet(np.full(num_x, concentration), size=len(priors)).T  # (X, K)
    return p_x_given_y * priors[None, :]
