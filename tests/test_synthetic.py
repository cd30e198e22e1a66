"""Tests of infocam.data.synthetic: exact MI by quadrature against adaptive quadrature and Monte Carlo."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from infocam.data import synthetic


def quad_mi(positions, priors):
    """I(T;Y) of a 1-D unit-variance mixture by scipy's adaptive quadrature (independent reference)."""
    positions, priors = np.asarray(positions, float), np.asarray(priors, float)

    def mix(t):
        return (priors * stats.norm.pdf(t, positions)).sum()

    total = 0.0
    for k, (mu, p) in enumerate(zip(positions, priors)):
        f = lambda t: stats.norm.pdf(t, mu) * math.log(stats.norm.pdf(t, mu) / mix(t))  # noqa: E731
        total += p * integrate.quad(f, mu - 12, mu + 12, points=list(positions), limit=500, epsabs=1e-11)[0]
    return total


@pytest.mark.parametrize("d,imbalanced", [(1, False), (2, True), (10, False), (10, True)])
def test_paper_task_exact_mi_matches_adaptive_quadrature(d, imbalanced):
    task = synthetic.paper_task(d, imbalanced)
    positions = np.asarray(synthetic.PAPER_OFFSETS) * math.sqrt(d)  # the 1-D reduction of the chapter
    assert task.exact_mi() == pytest.approx(quad_mi(positions, task.priors), abs=1e-6)


@pytest.mark.parametrize("d,imbalanced", [(1, True), (5, False)])
def test_exact_mi_matches_monte_carlo_in_full_dimension(d, imbalanced):
    # Monte Carlo uses the d-dimensional densities, so it also checks the projection argument.
    task = synthetic.paper_task(d, imbalanced)
    mc, se = synthetic.monte_carlo_mi(task, 100_000, seed=3)
    assert abs(task.exact_mi() - mc) < 4 * se + 1e-3


def test_known_limits():
    assert synthetic.paper_task(3, scale=0.0).exact_mi() == pytest.approx(0.0, abs=1e-9)
    far = synthetic.paper_task(2, imbalanced=True, scale=20.0)
    assert far.exact_mi() == pytest.approx(far.label_entropy, abs=1e-6)
    assert far.label_entropy == pytest.approx(-(np.arange(1, 6) / 15 * np.log(np.arange(1, 6) / 15)).sum())
    # larger d pulls the classes apart: MI increases with d
    values = [synthetic.paper_task(d).exact_mi() for d in synthetic.PAPER_DIMS]
    assert values == sorted(values) and values[-1] < math.log(5)


def test_non_collinear_task_uses_monte_carlo():
    task = synthetic.simplex_task(4, distance=3.0)
    assert task.line() is None
    mc, se = synthetic.monte_carlo_mi(task, 50_000, seed=1)
    assert task.exact_mi(mc_samples=50_000) == pytest.approx(mc, abs=5 * se + 0.01)
    # the 2-class simplex is a line: quadrature and the 1-D formula agree
    two = synthetic.simplex_task(2, distance=3.0)
    assert two.line() is not None and two.exact_mi() == pytest.approx(quad_mi([-1.5, 1.5], [0.5, 0.5]), abs=1e-6)


def test_line_task_positions_and_mi():
    task = synthetic.line_task(4, spacing=2.0, dim=3)
    u, pos = task.line()
    np.testing.assert_allclose(np.sort(pos), [-3, -1, 1, 3], atol=1e-12)
    assert task.exact_mi() == pytest.approx(quad_mi([-3, -1, 1, 3], [0.25] * 4), abs=1e-6)


def test_sample_counts_shapes_and_reproducibility():
    task = synthetic.paper_task(2, imbalanced=True)
    counts = synthetic.paper_counts(10_000, imbalanced=True)
    assert counts.tolist() == [5000, 10000, 15000, 20000, 25000]  # the paper's imbalanced training set
    assert synthetic.paper_counts(2000).tolist() == [2000] * 5
    X, y = task.sample([3, 1, 4, 1, 5], seed=7)
    assert X.shape == (14, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y, minlength=5).tolist() == [3, 1, 4, 1, 5]
    assert (y[:3] != 0).any() or (y != np.sort(y)).any()  # shuffled, not grouped by class
    X2, y2 = task.sample([3, 1, 4, 1, 5], seed=7)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert task.counts(150).tolist() == [10, 20, 30, 40, 50]
    # class means are where they should be
    Xb, yb = synthetic.paper_task(1).sample([4000] * 5, seed=0)
    np.testing.assert_allclose([Xb[yb == k].mean() for k in range(5)], synthetic.PAPER_OFFSETS, atol=0.06)


def test_posterior_is_bayes_rule():
    task = synthetic.paper_task(2, imbalanced=True)
    X = np.array([[0.3, -0.2], [3.0, 4.0]])
    dens = np.array([stats.multivariate_normal.pdf(X, m) for m in task.means]).T * task.priors
    np.testing.assert_allclose(task.log_posterior(X), np.log(dens / dens.sum(1, keepdims=True)), atol=1e-10)


@pytest.mark.parametrize(
    "priors,match",
    [([0.5, 0.5, 0.1], "sum to 1"), ([1.0, 0.0], "> 0"), ([np.nan, 1.0], "NaN"), ([1.0], "entries")],
)
def test_bad_priors(priors, match):
    K = max(len(priors), 2)
    with pytest.raises(ValueError, match=match):
        synthetic.GaussianMixtureTask(np.zeros((K, 1)) + np.arange(K)[:, None], priors)


def test_bad_arguments():
    with pytest.raises(ValueError, match="counts"):
        synthetic.paper_task(1).sample([1, 2, 3])
    with pytest.raises(ValueError, match="dim"):
        synthetic.paper_task(0)
    with pytest.raises(ValueError, match="means"):
        synthetic.GaussianMixtureTask([[0.0], [np.inf]])
