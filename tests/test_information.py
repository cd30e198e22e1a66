"""Tests of infocam.information: exact entropies, MI, posterior, cross-entropy of finite tables."""

from __future__ import annotations

import numpy as np
import pytest

from infocam import information
from infocam.data.discrete import geometric_priors, random_joint


def test_mutual_information_limits():
    independent = np.outer([0.2, 0.3, 0.5], [0.25, 0.75])
    assert abs(information.mutual_information(independent)) < 1e-12
    identity = np.eye(4) / 4
    assert np.isclose(information.mutual_information(identity), np.log(4))
    assert np.isclose(information.entropy([0.5, 0.5]), np.log(2))
    deterministic = np.array([[0.25, 0.0], [0.0, 0.75]])
    assert information.mutual_information(deterministic) == pytest.approx(information.entropy([0.25, 0.75]))


def test_mutual_information_matches_its_definition():
    joint = random_joint(6, geometric_priors(3, 4.0), seed=2)
    px, py = joint.sum(1), joint.sum(0)
    direct = float((joint * np.log(joint / np.outer(px, py))).sum())
    assert information.mutual_information(joint) == pytest.approx(direct, abs=1e-12)
    # I = H(Y) − H(Y|X), with H(Y|X) = E_x H(p(.|x))
    post = information.posterior(joint)
    h_cond = sum(px[i] * information.entropy(post[i]) for i in range(len(px)))
    assert information.mutual_information(joint) == pytest.approx(information.entropy(py) - h_cond, abs=1e-12)


def test_bayes_posterior_attains_the_bound_and_the_gap_is_the_expected_kl():
    joint = random_joint(8, geometric_priors(3, 5.0), seed=0)
    I, H = information.mutual_information(joint), information.entropy(joint.sum(0))
    bayes = information.posterior(joint)
    assert np.isclose(H - information.cross_entropy(joint, bayes), I)
    assert information.expected_kl(joint, bayes) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = rng.dirichlet(np.ones(3), size=8)
        gap = I - (H - information.cross_entropy(joint, q))
        assert gap > 0 and gap == pytest.approx(information.expected_kl(joint, q), abs=1e-12)


def test_posterior_of_an_empty_row_is_uniform():
    joint = np.array([[0.5, 0.5], [0.0, 0.0]])
    np.testing.assert_allclose(information.posterior(joint), [[0.5, 0.5], [0.5, 0.5]])


def test_bad_distributions_are_refused():
    with pytest.raises(ValueError, match="sum to 1"):
        information.mutual_information(np.ones((2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        information.entropy([1.5, -0.5])
    with pytest.raises(ValueError, match="shape"):
        information.cross_entropy(np.eye(2) / 2, np.full((3, 2), 0.5))
