"""Tests of the paper's imbalance rule (infocam.data.imbalance)."""

import numpy as np
import pytest

from infocam.data.imbalance import keep_first_per_class, mnist_imbalanced, parity_counts
from infocam.data.mnist import Digits


def _digits(per_class, grouped=True, seed=0):
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(per_class)]).astype(np.int64)
    if not grouped:
        labels = np.random.default_rng(seed).permutation(labels)
    images = np.zeros((len(labels), 28, 28), np.uint8)
    images[:, 0, :8] = np.arange(len(labels))[:, None] % 256  # a fingerprint of the position
    images[:, 1, 0] = np.arange(len(labels)) // 256
    return Digits(images, labels, "test digits")


def _positions(images):
    return images[:, 0, 0].astype(int) + 256 * images[:, 1, 0].astype(int)


def test_parity_counts():
    assert parity_counts(5, 1, 7).tolist() == [1, 7, 1, 7, 1]
    with pytest.raises(ValueError):
        parity_counts(3, -1, 2)


def test_keep_first_per_class_keeps_file_order_and_caps_at_availability():
    labels = np.array([1, 0, 1, 1, 0, 2, 1, 0])
    kept = keep_first_per_class(labels, [2, 3, 5])
    assert kept.tolist() == [0, 1, 2, 3, 4, 5]  # class 1 keeps its first three, class 2 all it has (1)


def test_keep_first_per_class_refuses_an_empty_class():
    with pytest.raises(ValueError, match="class 2 has no training digits"):
        keep_first_per_class(np.array([0, 1, 0, 1]), [1, 1, 1], what="training digits")
    with pytest.raises(ValueError, match="class 1 has no"):
        keep_first_per_class(np.array([0, 1, 0, 1]), [1, 0])


def test_embedded_rule_at_one_tenth_scale():
    per_class = [1000, 1100, 990, 1000, 980, 900, 1000, 1050, 970, 1010]
    split = mnist_imbalanced(_digits(per_class))
    assert split.train_counts.tolist() == [30, 300] * 5
    assert len(split.y_train) == 1650
    assert np.allclose(split.priors[::2], 1 / 55) and np.allclose(split.priors[1::2], 2 / 11)
    pool_test = [n - int(np.floor(0.8 * n)) for n in per_class]
    assert split.test_counts.tolist() == [min(c, 30 if k % 2 == 0 else 300) for k, c in enumerate(pool_test)]
    # train = first samples of each class; test starts at the first 20 % boundary
    pos = _positions(split.X_train[split.y_train == 0])
    assert pos.tolist() == list(range(30))
    first_test_of_1 = _positions(split.X_test[split.y_test == 1])[0]
    assert first_test_of_1 == per_class[0] + int(np.floor(0.8 * per_class[1]))
    assert "1/10 scale" in split.rule


def test_balanced_control_keeps_equal_counts():
    split = mnist_imbalanced(_digits([1000] * 10), balanced=True)
    assert split.train_counts.tolist() == [300] * 10
    assert np.allclose(split.priors, 0.1)


def test_paper_rule_on_training_file_indices():
    digits = _digits([6000] * 10, grouped=False)
    split = mnist_imbalanced(digits)
    assert split.train_counts.tolist() == [300, 3000] * 5 and len(split.y_train) == 16_500
    assert _positions(split.X_train).max() < 40_000
    test_pos = _positions(split.X_test)
    assert test_pos.min() >= 40_000 and test_pos.max() < 50_000
    assert _positions(split.X_train[split.y_train == 0]).tolist() == np.flatnonzero(digits.labels == 0)[:300].tolist()
    train_pool = digits.labels[:40_000]
    for k in (0, 1):
        assert (split.y_train == k).sum() == min((train_pool == k).sum(), 300 if k == 0 else 3000)
    test_pool = digits.labels[40_000:50_000]
    assert split.test_counts[0] == min((test_pool == 0).sum(), 300)
    assert split.test_counts[1] == (test_pool == 1).sum()  # ~1,000 odd digits in the pool, all kept
    assert "indices 0-39,999" in split.rule


def test_index_rule_needs_the_full_training_file():
    with pytest.raises(ValueError, match="60,000"):
        mnist_imbalanced(_digits([100] * 10), rule="index")
    with pytest.raises(ValueError, match="unknown rule"):
        mnist_imbalanced(_digits([100] * 10), rule="random")


def test_too_few_digits_for_a_class_is_a_clear_error():
    per_class = [1000] * 10
    per_class[4] = 1  # floor(0.8) = 0 training digits of class 4
    with pytest.raises(ValueError, match="class 4 has no training digits"):
        mnist_imbalanced(_digits(per_class))
