"""Tests of infocam.estimators: the MI readings of logits and the sample-based estimators on tasks with a known answer."""

import math

import numpy as np
import pytest
import torch
from sklearn.feature_selection import mutual_info_classif

from infocam import estimators
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


# -- the MI reading of logits (one implementation, used by chapters 2 and 3) ---------------------


def _bayes_logits(task, X):
    """Logits at the PC-softmax optimum: log p(y|x) − log p(y) (any per-x constant would do)."""
    return torch.as_tensor(task.log_posterior(X) - np.log(task.priors))


def test_readings_of_bayes_logits_estimate_the_exact_mi():
    task = synthetic.paper_task(1, imbalanced=True)
    X, y = task.sample(synthetic.paper_counts(4000, True), seed=0)
    f = _bayes_logits(task, X)
    exact, H = task.exact_mi(), task.label_entropy
    assert estimators.pc_softmax_reading(f, y, task.priors) == pytest.approx(exact, abs=0.02)
    # the softmax optimum f = log p(y|x) read with log K: biased by log K − H(Y)
    soft = torch.as_tensor(task.log_posterior(X))
    assert estimators.softmax_reading(soft, y) == pytest.approx(exact + math.log(5) - H, abs=0.02)
    # reweighting to the priors the sample already has changes nothing
    assert estimators.softmax_reading(soft, y, task.priors) == estimators.softmax_reading(soft, y)


def test_pc_reading_reweights_held_out_labels_to_the_training_priors():
    task = synthetic.paper_task(1, imbalanced=True)
    X, y = task.sample([4000, 4000, 4000, 4000, 4000], seed=1)  # balanced held-out labels
    f = _bayes_logits(task, X)
    pmi = torch.log_softmax(f + torch.as_tensor(np.log(task.priors)), 1).gather(1, torch.as_tensor(y)[:, None]) \
        - torch.as_tensor(np.log(task.priors))[torch.as_tensor(y)][:, None]
    plain = float(pmi.mean())
    weighted = estimators.pc_softmax_reading(f, y, task.priors)
    assert weighted == pytest.approx(task.exact_mi(), abs=0.02)  # I(X;Y) under the training priors
    assert abs(plain - task.exact_mi()) > 0.05  # the unweighted mean refers to no distribution at all
    # matching frequencies: a plain mean, bit for bit
    Xb, yb = task.sample(synthetic.paper_counts(200, True), seed=2)
    fb = _bayes_logits(task, Xb)
    direct = torch.log_softmax(fb + torch.as_tensor(np.log(task.priors)), 1) - torch.as_tensor(np.log(task.priors))
    assert estimators.pc_softmax_reading(fb, yb, task.priors) == float(direct.gather(1, torch.as_tensor(yb)[:, None]).mean())


def test_pc_reading_never_exceeds_label_entropy_and_softmax_reading_never_exceeds_log_k():
    g = torch.Generator().manual_seed(0)
    priors = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    H = float(-(priors * priors.log()).sum())
    for _ in range(20):
        f = torch.randn(300, 4, generator=g, dtype=torch.float64) * 10
        y = torch.randint(4, (300,), generator=g)
        assert estimators.pc_softmax_reading(f, y, priors) <= H + 1e-12
        assert estimators.softmax_reading(f, y) <= math.log(4) + 1e-12


def test_readings_agree_under_balanced_priors_and_refuse_bad_priors():
    g = torch.Generator().manual_seed(1)
    f, y = torch.randn(100, 5, generator=g), torch.randint(5, (100,), generator=g)
    y[:5] = torch.arange(5)
    assert estimators.pc_softmax_reading(f, y, [0.2] * 5) == pytest.approx(estimators.softmax_reading(f, y, [0.2] * 5), abs=1e-12)
    with pytest.raises(ValueError, match="> 0"):
        estimators.pc_softmax_reading(f, y, [0.5, 0.5, 0.0, 0.0, 0.0])


# -- estimators ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", estimators.ESTIMATORS)
def test_independent_x_and_y_give_zero(name):
    task = synthetic.paper_task(2)  # labels shuffled: X and Y independent, I = 0
    train, test = split(task, 300, shuffle=True)
    value = estimators.make_estimator(name, 5, seed=0, **FAST[name]).fit(*train).estimate(*test)
    assert abs(value) < 0.06


@pytest.mark.parametrize("name", estimators.ESTIMATORS)
def test_well_separated_classes_give_label_entropy(name):
    task = synthetic.paper_task(2, scale=4.0)  # exact MI = H(Y) = log 5 to 1e-6
    assert task.exact_mi() == pytest.approx(math.log(5), abs=1e-5)
    train, test = split(task, 300)
    value = estimators.make_estimator(name, 5, seed=0, **FAST[name]).fit(*train).estimate(*test)
    assert value == pytest.approx(math.log(5), abs=0.12)


def test_imbalance_biases_softmax_by_log_k_minus_h_but_not_pc_softmax():
    task = synthetic.paper_task(2, imbalanced=True, scale=4.0)  # I = H(Y) < log K
    train, test = split(task, 300)
    soft = estimators.make_estimator("softmax", 5, **FAST["softmax"]).fit(*train).estimate(*test)
    pc = estimators.make_estimator("pc_softmax", 5, **FAST["pc_softmax"]).fit(*train).estimate(*test)
    H = task.label_entropy
    assert soft == pytest.approx(math.log(5), abs=0.03)  # = I + log K − H(Y)
    assert pc == pytest.approx(H, abs=0.03)
    assert soft <= math.log(5)


def test_balanced_pc_softmax_equals_softmax():
    train, test = split(synthetic.paper_task(1), 200)
    a = estimators.make_estimator("softmax", 5, **FAST["softmax"]).fit(*train)
    b = estimators.make_estimator("pc_softmax", 5, **FAST["pc_softmax"]).fit(*train)
    assert a.estimate(*test) == pytest.approx(b.estimate(*test), abs=1e-3)


def test_infonce_never_exceeds_log_batch():
    task = synthetic.line_task(32, spacing=6.0)  # I ≈ log 32 > log 8
    counts = np.full(32, 40)
    est = estimators.make_estimator("infonce", 32, steps=100, batch_size=8).fit(*task.sample(counts, 0))
    assert est.estimate(*task.sample(counts, 1)) <= math.log(8) + 1e-9


def test_knn_matches_scikit_learn_for_one_feature():
    task = synthetic.paper_task(1, imbalanced=True)
    X, y = task.sample(synthetic.paper_counts(200, True), seed=4)
    ours = estimators.ross_knn_mi(X, y, k=3)
    theirs = mutual_info_classif(X, y, discrete_features=False, n_neighbors=3, random_state=0)[0]
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert ours == pytest.approx(task.exact_mi(), abs=0.08)


def test_seeded_estimates_repeat():
    train, test = split(synthetic.paper_task(2), 100)
    for name in ("softmax", "mine"):
        a = estimators.estimate_mi(name, train, test, 5, seed=3, **FAST[name])
        b = estimators.estimate_mi(name, train, test, 5, seed=3, **FAST[name])
        assert a["estimate"] == b["estimate"] and a["seconds"] > 0
    c = estimators.estimate_mi("softmax", train, test, 5, seed=4, **FAST["softmax"])
    assert c["estimate"] != a["estimate"]  # the seed matters


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

    monkeypatch.setattr(estimators.ClassifierEstimator, "_fit", boom)


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
        estimators.make_estimator("pc_softmax", 5).fit(*mutate(*data))


@pytest.mark.parametrize(
    "priors,match", [([0.3, 0.3, 0.3, 0.05, 0.1], "sum to 1"), ([0.5, 0.5, 0.0, 0.0, 0.0], "> 0"), ([0.5, 0.5], "classes")]
)
def test_bad_priors(monkeypatch, priors, match):
    _no_training(monkeypatch)
    with pytest.raises(ValueError, match=match):
        estimators.make_estimator("pc_softmax", 5, priors=priors)


def test_bad_test_split_and_order(data):
    X, y = data
    with pytest.raises(ValueError, match="before estimate"):
        estimators.make_estimator("knn", 5).estimate(X, y)
    est = estimators.make_estimator("knn", 5).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.estimate(X[:, :1], y)
    with pytest.raises(ValueError, match="NaN"):
        est.estimate(np.full_like(X, np.nan), y)
    with pytest.raises(ValueError, match="unknown estimator"):
        estimators.make_estimator("mutual", 5)
    with pytest.raises(ValueError, match="num_classes"):
        estimators.make_estimator("softmax", 1)


@pytest.mark.parametrize("k", [1, 5])
def test_knn_neighbour_count_is_used(k):
    task = synthetic.paper_task(1)
    X, y = task.sample(synthetic.paper_counts(300), seed=5)
    value = estimators.make_estimator("knn", 5, k=k).fit(X, y).estimate(X, y)
    assert value == pytest.approx(estimators.ross_knn_mi(X, y, k=k), abs=1e-12)
    assert value == pytest.approx(task.exact_mi(), abs=0.1)
