"""Cluttered MNIST: determinism, exact boxes, disjoint digit pools, bad input."""

import numpy as np
import pytest

from infocam.data.cluttered import load_cluttered_mnist, make_cluttered, tight_box
from infocam.data.mnist import Digits


def _digits(n=200):
    rng = np.random.default_rng(0)
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):  # a filled rectangle of random size per "digit", distinct intensities
        h, w = rng.integers(8, 20, 2)
        y, x = rng.integers(2, 26 - h), rng.integers(2, 26 - w)
        images[i, y : y + h, x : x + w] = 1 + i % 250
    return Digits(images, np.arange(n) % 10, "synthetic test digits")


def test_deterministic_and_boxes_exact():
    d = _digits()
    a = load_cluttered_mnist(n_train=40, n_val=10, n_test=20, n_clutter=0, seed=3, digits=d)
    b = load_cluttered_mnist(n_train=40, n_val=10, n_test=20, n_clutter=0, seed=3, digits=d)
    c = load_cluttered_mnist(n_train=40, n_val=10, n_test=20, n_clutter=0, seed=4, digits=d)
    for split in ("train", "val", "test"):
        assert np.array_equal(a[split].images, b[split].images)
        assert not np.array_equal(a[split].images, c[split].images)
        for img, box in zip(a[split].images, a[split].boxes):  # without clutter the box is the ink's box
            assert tight_box(img) == tuple(box)


def test_clutter_keeps_target_box_and_label():
    d = _digits()
    s = make_cluttered(d.images, d.labels, 50, canvas=60, n_clutter=6, fragment=6, seed=1)
    assert s.images.shape == (50, 60, 60) and s.images.dtype == np.uint8
    for img, (x, y, w, h), label in zip(s.images, s.boxes, s.labels):
        assert 0 <= x and x + w <= 60 and 0 <= y and y + h <= 60
        inside = img[y : y + h, x : x + w]
        assert inside.max() > 0
        assert (inside == inside.max()).any()
    assert set(s.labels.tolist()) <= set(range(10))


def test_pools_are_disjoint():
    d = _digits(300)
    s = load_cluttered_mnist(n_train=200, n_val=20, n_test=50, n_clutter=0, seed=0, digits=d)
    values = {k: {int(v) for img in s[k].images for v in np.unique(img) if v} for k in s}
    # each digit has its own intensity (mod 250): test intensities mostly unseen in training
    assert len(values["test"] & values["train"]) < len(values["test"])


def test_real_embedded_digits():
    s = load_cluttered_mnist(n_train=20, n_val=5, n_test=5, seed=0)
    assert "mnist" in s["train"].source.lower()
    assert s["train"].images.shape == (20, 56, 56)


def test_bad_input():
    d = _digits()
    with pytest.raises(ValueError, match="canvas"):
        make_cluttered(d.images, d.labels, 5, canvas=20)
    with pytest.raises(ValueError, match="n_train"):
        load_cluttered_mnist(n_train=0, digits=d)
    with pytest.raises(ValueError, match="uint8"):
        make_cluttered(d.images.astype(float), d.labels, 5)
