"""infocam.data.discrete and the exact discrete quantities in infocam.mi."""

from __future__ import annotations

import numpy as np
import pytest

from infocam import mi
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


def test_mutual_information_limits():
    independent = np.outer([0.2, 0.3, 0.5], [0.25, 0.75])
    assert abs(mi.mutual_information(independent)) < 1e-12
    identity = np.eye(4) / 4
    assert np.isclose(mi.mutual_information(identity), np.log(4))
    assert np.isclose(mi.entropy([0.5, 0.5]), np.log(2))


def test_bayes_posterior_attains_the_bound():
    joint = random_joint(8, geometric_priors(3, 5.0), seed=0)
    I, H = mi.mutual_information(joint), mi.entropy(joint.sum(0))
    assert np.isclose(H - mi.cross_entropy(joint, mi.posterior(joint)), I)
    uniform = np.full_like(joint, 1 / 3)
    assert H - mi.cross_entropy(joint, uniform) < I


def test_bad_distributions_are_refused():
    with pytest.raises(ValueError, match="sum to 1"):
        mi.mutual_information(np.ones((2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        mi.entropy([1.5, -0.5])
