"""Tests of the linear probe (infocam.probe) on synthetic features."""

import numpy as np
import pytest
import torch

from infocam.estimators import pc_softmax_reading
from infocam.losses import log_pc_softmax
from infocam.probe import evaluate_probe, standardize, train_probe


def _features(counts, dim=16, sep=3.0, seed=0):
    means = np.random.default_rng(123).normal(0, sep, (len(counts), dim))  # same classes for every seed
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, k) for k, n in enumerate(counts)])
    return (means[y] + rng.normal(0, 1, (len(y), dim))).astype(np.float32) * 5 + 10, y


def test_standardize_uses_training_statistics():
    a = np.array([[0.0, 10.0], [2.0, 30.0]])
    b = np.array([[1.0, 20.0]])
    ta, tb = standardize(a, b)
    assert torch.allclose(ta.mean(0), torch.zeros(2), atol=1e-6) and torch.allclose(tb, torch.zeros(1, 2), atol=1e-5)


def test_probe_learns_separable_features_and_pc_softmax_reads_mi():
    X, y = _features([20, 200, 20, 200])
    Xt, yt = _features([50, 50, 50, 50], seed=1)
    Xtr, Xte = standardize(X, Xt)
    for loss in ("softmax", "pc_softmax"):
        head, priors = train_probe(Xtr, torch.as_tensor(y), 4, loss, epochs=30, lr=1e-2)
        r = evaluate_probe(head, Xte, yt, priors, loss)
        assert r.accuracy > 0.9 and r.mean_class_accuracy > 0.9, (loss, r)
        assert r.per_class.shape == (4,) and r.pred.shape == (200,)
        # H(Y) of the training priors bounds the MI; a good classifier gets close to it
        h = float(-(priors * priors.log()).sum())
        if loss == "pc_softmax":
            assert 0.5 * h < r.mi_estimate < h + 0.2


def test_probe_refuses_bad_shapes_and_empty_classes():
    X, y = _features([5, 5])
    with pytest.raises(ValueError, match=r"features must be \(N, C\)"):
        train_probe(torch.as_tensor(X)[:, :, None], torch.as_tensor(y), 2)
    with pytest.raises(ValueError, match="classes"):
        train_probe(torch.as_tensor(X), torch.as_tensor(y), 3, "pc_softmax")


def test_probe_reading_is_the_one_pc_softmax_reading():
    X, y = _features([20, 200, 20, 200])
    Xt, yt = _features([50, 50, 50, 50], seed=1)
    Xtr, Xte = standardize(X, Xt)
    head, priors = train_probe(Xtr, torch.as_tensor(y), 4, "pc_softmax", epochs=5, lr=1e-2)
    r = evaluate_probe(head, Xte, yt, priors, "pc_softmax")
    logits = head(Xte).detach()
    assert r.mi_estimate == pc_softmax_reading(logits, yt, priors)
    # held-out labels are balanced, training labels are not: the reading reweights them
    pmi = log_pc_softmax(logits.double(), priors).gather(1, torch.as_tensor(yt)[:, None])
    assert abs(r.mi_estimate - float(pmi.mean())) > 1e-3


def test_same_seed_same_head():
    X, y = _features([30, 60])
    a, _ = train_probe(torch.as_tensor(X), torch.as_tensor(y), 2, epochs=2, seed=5)
    b, _ = train_probe(torch.as_tensor(X), torch.as_tensor(y), 2, epochs=2, seed=5)
    c, _ = train_probe(torch.as_tensor(X), torch.as_tensor(y), 2, epochs=2, seed=6)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
