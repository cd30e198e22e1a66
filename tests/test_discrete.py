"""Tests of infocam.data.discrete: the random finite joint distributions of chapter 1."""

from __future__ import annotations

import numpy as np
import pytest

from infocam.data.discrete import geometric_priors, random_joint


def test_geometric_priors():
    p = geometric_priors(5, 4.0)
    assert np.isclose(p.sum(), 1) and np.isclose(p[0] / p[-1], 4.0)
    assert np.allclose(geometric_priors(3, 1.0), 1 / 3)
    with pytest.raises(ValueError, match=">= 1"):
        geometric_priors(3, 0.5)


def test_random_joint_shares_class_conditionals():
    a = random_joint(10, [0.5, 0.5], seed=1)
    b = random_joint(10, [0.9, 0.1], seed=1)
    assert np.allclose(a / a.sum(0), b / b.sum(0))
    assert np.allclose(b.sum(0), [0.9, 0.1])


def test_random_joint_is_a_distribution_and_repeats_by_seed():
    joint = random_joint(7, geometric_priors(4, 8.0), concentration=0.5, seed=3)
    assert joint.shape == (7, 4) and np.all(joint >= 0) and np.isclose(joint.sum(), 1)
    np.testing.assert_array_equal(joint, random_joint(7, geometric_priors(4, 8.0), concentration=0.5, seed=3))
    assert not np.allclose(joint, random_joint(7, geometric_priors(4, 8.0), concentration=0.5, seed=4))
