"""Synthetic classification tasks whose mutual information I(X;Y) is known.

Used in chapter 2 (synthetic MI). A task is a joint distribution p(x, y) = p(y) p(x|y) that can
be sampled and whose posterior p(y|x) is known in closed form, so that I(X;Y) can be computed
(:meth:`Task.exact_mi`) and cross-checked by Monte Carlo (:func:`monte_carlo_mi`). New tasks plug
in by subclassing :class:`Task`.

The paper's task (Qin, Kim & Gedeon 2019, §5.1): K = 5 classes with class-conditionals
N(c_k·1, I), c = (0, +2, −2, +4, −4), 1 the all-ones vector in R^d, d ∈ {1, 2, 5, 10}; priors
balanced or 1:2:3:4:5. All means lie on the line through 0 along u = 1/√d, so projecting x on u
gives a 1-D mixture with means c_k √d and unit variance while the orthogonal part is N(0, I) for
every class, independent of Y; I(X;Y) is therefore a 1-D integral (:func:`line_mixture_mi`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp

PAPER_OFFSETS = (0.0, 2.0, -2.0, 4.0, -4.0)
PAPER_DIMS = (1, 2, 5, 10)
PAPER_IMBALANCE = (1, 2, 3, 4, 5)


def _check_priors(priors, num_classes: int) -> np.ndarray:
    p = np.asarray(priors, dtype=np.float64)
    if p.shape != (num_classes,):
        raise ValueError(f"priors must have {num_classes} entries, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("priors contain NaN or inf")
    if np.any(p <= 0):
        raise ValueError(f"priors must be > 0 for every class (classes {np.flatnonzero(p <= 0).tolist()} are not)")
    if not math.isclose(p.sum(), 1.0, abs_tol=1e-9):
        raise ValueError(f"priors must sum to 1, they sum to {p.sum():.9g}")
    return p


class Task(ABC):
    """A joint distribution of (x ∈ R^d, y ∈ {0..K−1}) with a known posterior.

    Subclasses set ``priors`` (K,) and ``dim`` and implement :meth:`sample_class` and
    :meth:`log_posterior`; :meth:`exact_mi` defaults to a large Monte-Carlo estimate and should be
    overridden where a closed form or quadrature exists.
    """

    priors: np.ndarray
    dim: int

    @property
    def num_classes(self) -> int:
        return len(self.priors)

    @property
    def label_entropy(self) -> float:
        """H(Y) in nats: the ceiling of I(X;Y)."""
        return float(-(self.priors * np.log(self.priors)).sum())

    @abstractmethod
    def sample_class(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of x from p(x | y = k), shape (n, dim)."""

    @abstractmethod
    def log_posterior(self, X: np.ndarray) -> np.ndarray:
        """log p(y | x) for every class, shape (N, K)."""

    def exact_mi(self, mc_samples: int = 1_000_000) -> float:
        """I(X;Y) in nats (Monte Carlo with ``mc_samples`` draws unless a subclass knows better)."""
        return monte_carlo_mi(self, mc_samples, seed=0)[0]

    def counts(self, n: int) -> np.ndarray:
        """Per-class sample counts for ``n`` samples in proportion to the priors (largest remainder)."""
        if n < self.num_classes:
            raise ValueError(f"need at least one sample per class: n = {n} < K = {self.num_classes}")
        raw = self.priors * n
        out = np.floor(raw).astype(int)
        out[np.argsort(out - raw)[: n - out.sum()]] += 1
        return np.maximum(out, 1)

    def sample(self, counts: Sequence[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Exactly ``counts[k]`` samples of class k, shuffled: X (N, dim) float32, y (N,) int64."""
        counts = np.asarray(counts, dtype=int)
        if counts.shape != (self.num_classes,) or np.any(counts < 0):
            raise ValueError(f"counts must be {self.num_classes} non-negative integers, got {counts.tolist()}")
        rng = np.random.default_rng(seed)
        X = np.concatenate([self.sample_class(k, int(c), rng) for k, c in enumerate(counts)])
        y = np.repeat(np.arange(self.num_classes), counts)
        order = rng.permutation(len(y))
        return X[order].astype(np.float32), y[order].astype(np.int64)


class GaussianMixtureTask(Task):
    """Class-conditionals N(μ_k, I) with means ``means`` (K, d) and label priors ``priors``."""

    def __init__(self, means, priors=None):
        means = np.asarray(means, dtype=np.float64)
        if means.ndim != 2 or len(means) < 2:
            raise ValueError(f"means must be a (K >= 2, d) array, got shape {means.shape}")
        if not np.all(np.isfinite(means)):
            raise ValueError("means contain NaN or inf")
        self.means = means
        self.dim = means.shape[1]
        K = len(means)
        self.priors = _check_priors(np.full(K, 1.0 / K) if priors is None else priors, K)

    def sample_class(self, k, n, rng):
        return self.means[k] + rng.standard_normal((n, self.dim))

    def log_posterior(self, X):
        X = np.asarray(X, dtype=np.float64)
        # −|x − μ_k|²/2 up to the term −|x|²/2, which is the same for every class
        log_joint = np.log(self.priors) + X @ self.means.T - 0.5 * (self.means**2).sum(1)
        return log_joint - logsumexp(log_joint, axis=1, keepdims=True)

    def line(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(unit direction u, positions (μ_k − c)·u) when all means lie on one line, else None.

        With c the centroid of the means, x = c + t u + x_⊥ where x_⊥ has the same distribution in
        every class, so p(y|x) = p(y|t) and I(X;Y) is the MI of the 1-D mixture of the positions.
        """
        centred = self.means - self.means.mean(axis=0)
        norms = np.linalg.norm(centred, axis=1)
        if norms.max() == 0:
            return np.eye(self.dim)[0], np.zeros(self.num_classes)
        u = centred[norms.argmax()] / norms.max()
        pos = centred @ u
        if np.abs(centred - pos[:, None] * u).max() > 1e-9 * max(1.0, norms.max()):
            return None
        return u, pos

    def exact_mi(self, mc_samples: int = 1_000_000) -> float:
        """I(X;Y): 1-D quadrature when the means are collinear, else Monte Carlo."""
        line = self.line()
        if line is None:
            return super().exact_mi(mc_samples)
        return line_mixture_mi(line[1], self.priors)


QUADRATURE_STEP = 2e-3  # trapezoid grid of line_mixture_mi: error below 1e-6 nats (tested)
QUADRATURE_HALF_WIDTH = 12.0


def line_mixture_mi(positions, priors) -> float:
    """I(T;Y) in nats for T | Y=k ~ N(positions[k], 1) by the trapezoid rule.

    I = Σ_k p_k ∫ φ(z) log[φ(z) / Σ_j p_j φ(z + μ_k − μ_j)] dz
      = −Σ_k p_k ∫ φ(z) logsumexp_j(log p_j − z Δ_kj − Δ_kj²/2) dz,  Δ_kj = μ_k − μ_j.
    The integrand is smooth, grows linearly and is damped by φ; on the grid
    (:data:`QUADRATURE_STEP` on ±:data:`QUADRATURE_HALF_WIDTH`) the error is below 1e-6 nats (checked against adaptive quadrature in the tests);
    classes too far from class k to matter (below e^-50 of its own term) are left out of its sum.
    """
    mu = np.asarray(positions, dtype=np.float64)
    p = _check_priors(priors, len(mu))
    step, half_width = QUADRATURE_STEP, QUADRATURE_HALF_WIDTH
    z = np.arange(-half_width, half_width + step / 2, step)
    w = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi) * step
    w[[0, -1]] *= 0.5
    total = 0.0
    log_p = np.log(p)
    for k in range(len(mu)):
        delta = mu[k] - mu  # (K,)
        # classes whose term stays below e^-50 of class k's own term on the whole grid are dropped
        near = log_p - log_p[k] - np.abs(delta) * (np.abs(delta) / 2 - half_width) > -50
        a = log_p[near] - 0.5 * delta[near] ** 2 - np.multiply.outer(z, delta[near])  # (grid, K')
        top = a.max(axis=1)
        inner = top + np.log(np.exp(a - top[:, None]).sum(axis=1))
        total -= p[k] * float(w @ inner)
    return max(total, 0.0)


def monte_carlo_mi(task: Task, n: int, seed: int = 0) -> tuple[float, float]:
    """Monte-Carlo I(X;Y) = E[log p(y|x) − log p(y)] from ``n`` samples: (estimate, standard error)."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    rng = np.random.default_rng(seed)
    pmi = []
    for i, chunk in enumerate(np.diff(np.r_[0:n:100_000, n])):  # bounded memory for large K and d
        X, y = task.sample(rng.multinomial(chunk, task.priors), seed=seed + 1 + i)
        pmi.append(task.log_posterior(X)[np.arange(len(y)), y] - np.log(task.priors[y]))
    pmi = np.concatenate(pmi)
    return float(pmi.mean()), float(pmi.std(ddof=1) / math.sqrt(len(pmi)))


def diagonal_task(offsets: Sequence[float], dim: int = 1, priors=None) -> GaussianMixtureTask:
    """Means ``offsets[k] · 1`` in R^dim (1 the all-ones vector), unit covariance."""
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    return GaussianMixtureTask(np.outer(np.asarray(offsets, dtype=np.float64), np.ones(dim)), priors)


def paper_task(dim: int, imbalanced: bool = False, scale: float = 1.0) -> GaussianMixtureTask:
    """The paper's 5-class task in R^dim; ``scale`` multiplies the offsets (0, ±2, ±4)."""
    w = np.asarray(PAPER_IMBALANCE, dtype=np.float64) if imbalanced else np.ones(5)
    return diagonal_task(scale * np.asarray(PAPER_OFFSETS), dim, w / w.sum())


def paper_counts(per_class: int, imbalanced: bool = False) -> np.ndarray:
    """Training (or test) counts: ``per_class`` each, or per_class/2 × (1, 2, 3, 4, 5) when imbalanced.

    ``per_class = 10_000`` gives the paper's training sets (balanced 10k each; imbalanced
    5k/10k/15k/20k/25k); the test sets are 1/5 of those.
    """
    if per_class < 2:
        raise ValueError(f"per_class must be >= 2, got {per_class}")
    if not imbalanced:
        return np.full(5, per_class)
    return np.array([max(1, round(per_class * w / 2)) for w in PAPER_IMBALANCE])


def line_task(num_classes: int, spacing: float, dim: int = 1) -> GaussianMixtureTask:
    """K balanced classes with means equally spaced (``spacing`` apart) on the diagonal, centred at 0."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    positions = spacing * (np.arange(num_classes) - (num_classes - 1) / 2)
    return diagonal_task(positions / math.sqrt(dim), dim)


def simplex_task(num_classes: int, distance: float) -> GaussianMixtureTask:
    """K balanced classes with means (distance/√2)·e_k in R^K: every pair of means ``distance`` apart.

    The means are not collinear, so :meth:`Task.exact_mi` is a Monte-Carlo value (standard error
    ~1e-3 nats); the Bayes logits are linear in x, which keeps the classifier's job easy for any K.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return GaussianMixtureTask(distance / math.sqrt(2) * np.eye(num_classes))
