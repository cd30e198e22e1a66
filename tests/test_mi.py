"""Tests of infocam.mi: exact discrete MI and the sample-based estimators on tasks with a known answer."""

import math

import numpy as np
import pytest
import torch
from sklearn.feature_selection import mutual_info_classif

from infocam import mi
from infocam.data import synthetic
from infocam.models.mlp import MLP, ConcatCritic

FAST = {
    "softmax": dict(epochs=8, batch_size=250, lr=3e-3),
    "pc_softmax": dict(epochs=8, batch_size=250, lr=3e-3),
    "mine": dict(steps=150, batch_size=128),
    "infonce": dict(steps=150, batch_size=128),
    "nwj": dict(steps=150, batch_size=128),
    "knn": {},
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread is faster than two contended ones (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def split(task, per_class, seed=0, shuffle=False):
    counts = task.counts(per_class * task.num_classes)
    train = task.sample(counts, seed=2 * seed)
    test = task.sample(np.maximum(counts // 2, 2), seed=2 * seed + 1)
    if shuffle:
        rng = np.random.default_rng(seed)
        train, test = (train[0], rng.permutation(train[1])), (test[0], rng.permutation(test[1]))
    return train, test


# -- exact discrete functions (chapter 1) ------------------------------------------------------


def test_exact_discrete_mi():
    joint = np.array([[0.25, 0.0], [0.0, 0.75]])
    assert mi.mutual_information(joint) == pytest.approx(mi.entropy([0.25, 0.75]))
    assert mi.mutual_information(np.outer([0.3, 0.7], [0.6, 0.4])) == pytest.approx(0.0, abs=1e-12)


# -- estimators ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", mi.ESTIMATORS)
def test_independent_x_and_y_give_zero(name):
    task = synthetic.paper_task(2)  # labels shuffled: X and Y independent, I = 0
    train, test = split(task, 300, shuffle=True)
    value = mi.make_estimator(name, 5, seed=0, **FAST[name]).fit(*train).estimate(*test)
    assert abs(value) < 0.06


@pytest.mark.parametrize("name", mi.ESTIMATORS)
def test_well_separated_classes_give_label_entropy(name):
    task = synthetic.paper_task(2, scale=4.0)  # exact MI = H(Y) = log 5 to 1e-6
    assert task.exact_mi() == pytest.approx(math.log(5), abs=1e-5)
    train, test = split(task, 300)
    value = mi.make_estimator(name, 5, seed=0, **FAST[name]).fit(*train).estimate(*test)
    assert value == pytest.approx(math.log(5), abs=0.12)


def test_imbalance_biases_softmax_by_log_k_minus_h_but_not_pc_softmax():
    task = synthetic.paper_task(2, imbalanced=True, scale=4.0)  # I = H(Y) < log K
    train, test = split(task, 300)
    soft = mi.make_estimator("softmax", 5, **FAST["softmax"]).fit(*train).estimate(*test)
    pc = mi.make_estimator("pc_softmax", 5, **FAST["pc_softmax"]).fit(*train).estimate(*test)
    H = task.label_entropy
    assert soft == pytest.approx(math.log(5), abs=0.03)  # = I + log K − H(Y)
    assert pc == pytest.approx(H, abs=0.03)
    assert soft <= math.log(5)


def test_balanced_pc_softmax_equals_softmax():
    train, test = split(synthetic.paper_task(1), 200)
    a = mi.make_estimator("softmax", 5, **FAST["softmax"]).fit(*train)
    b = mi.make_estimator("pc_softmax", 5, **FAST["pc_softmax"]).fit(*train)
    assert a.estimate(*test) == pytest.approx(b.estimate(*test), abs=1e-3)


def test_infonce_never_exceeds_log_batch():
    task = synthetic.line_task(32, spacing=6.0)  # I ≈ log 32 > log 8
    counts = np.full(32, 40)
    est = mi.make_estimator("infonce", 32, steps=100, batch_size=8).fit(*task.sample(counts, 0))
    assert est.estimate(*task.sample(counts, 1)) <= math.log(8) + 1e-9


def test_knn_matches_scikit_learn_for_one_feature():
    task = synthetic.paper_task(1, imbalanced=True)
    X, y = task.sample(synthetic.paper_counts(200, True), seed=4)
    ours = mi.ross_knn_mi(X, y, k=3)
    theirs = mutual_info_classif(X, y, discrete_features=False, n_neighbors=3, random_state=0)[0]
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert ours == pytest.approx(task.exact_mi(), abs=0.08)


def test_seeded_estimates_repeat():
    train, test = split(synthetic.paper_task(2), 100)
    for name in ("softmax", "mine"):
        a = mi.estimate_mi(name, train, test, 5, seed=3, **FAST[name])
        b = mi.estimate_mi(name, train, test, 5, seed=3, **FAST[name])
        assert a["estimate"] == b["estimate"] and a["seconds"] > 0


def test_concat_critic_scores_equal_one_hot_concatenation():
    torch.manual_seed(0)
    critic = ConcatCritic(3, 4, hidden=(8, 8))
    x = torch.randn(5, 3)
    S = critic.scores(x)
    for k in range(4):
        torch.testing.assert_close(S[:, k], critic(x, torch.full((5,), k)))
    assert MLP(3, 5)(x).shape == (5, 5)


# -- bad input: one clear ValueError before training --------------------------------------------


@pytest.fixture
def data():
    X, y = synthetic.paper_task(2).sample([20] * 5, seed=0)
    return X, y


def _no_training(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("training started before the input was checked")

    monkeypatch.setattr(mi.ClassifierEstimator, "_fit", boom)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda X, y: (X[:-1], y), "samples but y has"),
        (lambda X, y: (X, np.where(y == 4, 5, y)), r"labels must lie in 0\.\.4"),
        (lambda X, y: (X, np.where(y == 0, -1, y)), r"labels must lie in 0\.\.4"),
        (lambda X, y: (X[y != 3], y[y != 3]), r"classes \[3\] have no sample"),
        (lambda X, y: (np.where(np.arange(len(X))[:, None] == 2, np.nan, X), y), "NaN or inf"),
        (lambda X, y: (np.where(np.arange(len(X))[:, None] == 2, np.inf, X), y), "NaN or inf"),
        (lambda X, y: (X, y + 0.5), "integers"),
    ],
)
def test_bad_training_input(monkeypatch, data, mutate, match):
    _no_training(monkeypatch)
    with pytest.raises(ValueError, match=match):
        mi.make_estimator("pc_softmax", 5).fit(*mutate(*data))


@pytest.mark.parametrize(
    "priors,match", [([0.3, 0.3, 0.3, 0.05, 0.1], "sum to 1"), ([0.5, 0.5, 0.0, 0.0, 0.0], "> 0"), ([0.5, 0.5], "classes")]
)
def test_bad_priors(monkeypatch, priors, match):
    _no_training(monkeypatch)
    with pytest.raises(ValueError, match=match):
        mi.make_estimator("pc_softmax", 5, priors=priors)


def test_bad_test_split_and_order(data):
    X, y = data
    with pytest.raises(ValueError, match="before estimate"):
        mi.make_estimator("knn", 5).estimate(X, y)
    est = mi.make_estimator("knn", 5).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.estimate(X[:, :1], y)
    with pytest.raises(ValueError, match="NaN"):
        est.estimate(np.full_like(X, np.nan), y)
    with pytest.raises(ValueError, match="unknown estimator"):
        mi.make_estimator("mutual", 5)
    with pytest.raises(ValueError, match="num_classes"):
        mi.make_estimator("softmax", 1)
