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
    bare = make_cluttered(d.images, d.labels, 50, canvas=60, n_clutter=0, fragment=6, seed=1)
    # the clutter does not move the target: same boxes and labels as without clutter, where the
    # box is the ink's tight box (checked above); the test digits are filled rectangles, so the box is all ink
    assert np.array_equal(s.boxes, bare.boxes) and np.array_equal(s.labels, bare.labels)
    assert (s.images != bare.images).any()
    for img, (x, y, w, h) in zip(s.images, s.boxes):
        assert 0 <= x and x + w <= 60 and 0 <= y and y + h <= 60
        assert img[y : y + h, x : x + w].min() > 0


def test_pools_are_disjoint():
    d = _digits(250)  # every digit has its own intensity 1..250
    s = load_cluttered_mnist(n_train=200, n_val=20, n_test=50, n_clutter=4, fragment=8, seed=0, digits=d)
    values = {k: {int(v) for img in s[k].images for v in np.unique(img) if v} for k in s}
    # targets and clutter of each split come from its own pool: no digit's ink is shared
    assert values["train"] and values["val"] and values["test"]
    assert not values["train"] & values["test"] and not values["train"] & values["val"] and not values["val"] & values["test"]


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
