import pytest
import torch

from infocam.heads import train_linear_head


def _data():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3  # classes 3 and 4 absent
    return torch.randn(60, 5, generator=g) + 3 * torch.nn.functional.one_hot(y, 5), y


def test_seeded_and_allows_absent_classes():
    X, y = _data()
    a = train_linear_head(X, y, 5, epochs=20, lr=0.05, seed=1)
    b = train_linear_head(X, y, 5, epochs=20, lr=0.05, seed=1)
    c = train_linear_head(X, y, 5, epochs=20, lr=0.05, seed=2)
    torch.testing.assert_close(a.weight, b.weight, atol=0, rtol=0)
    assert not torch.equal(a.weight, c.weight)
    assert a.weight.shape == (5, 5)
    assert (a(X).argmax(1) == y).float().mean() > 0.9


def test_bad_features_refused():
    X, y = _data()
    with pytest.raises(ValueError, match="features"):
        train_linear_head(X[:, :, None], y, 5)


def test_init_rows_and_sgd_schedule():
    X, y = _data()
    W0, b0 = torch.zeros(5, 5), torch.zeros(5)
    W0[torch.arange(5), torch.arange(5)] = 1.0
    untrained = train_linear_head(X, y, 5, init=(W0, b0), optimizer="sgd", epochs=1, lr=1e-9, momentum=0.9,
                                  nesterov=True, schedule="cosine")
    torch.testing.assert_close(untrained.weight, W0, atol=1e-6, rtol=0)
    trained = train_linear_head(X, y, 5, init=(W0, b0), optimizer="sgd", epochs=20, lr=0.1, momentum=0.9,
                                nesterov=True, schedule="cosine")
    assert (trained(X).argmax(1) == y).float().mean() > 0.9


def test_prior_corrected_loss_needs_every_class():
    X, y = _data()
    with pytest.raises(ValueError):
        train_linear_head(X, y, 5, loss="pc_softmax", epochs=1)
