"""Tests of infocam.losses: definitions, the identical-gradient identity, prior validation."""

import math

import pytest
import torch
import torch.nn.functional as F

from infocam import losses

PRIORS = torch.tensor([0.05, 0.15, 0.3, 0.5], dtype=torch.float64)


def _batch(seed=0, n=32, k=4, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g, dtype=torch.float64) * scale, torch.randint(0, k, (n,), generator=g)


def _grad(fn, logits, targets):
    f = logits.clone().requires_grad_(True)
    fn(f, targets).backward()
    return f.grad


def test_pc_softmax_matches_definition():
    f, y = _batch()
    pc = torch.exp(f) / (torch.exp(f) * PRIORS).sum(1, keepdim=True)
    expected = -torch.log(pc.gather(1, y[:, None])).mean()
    assert torch.allclose(losses.pc_softmax_cross_entropy(f, y, PRIORS), expected)


def test_pc_softmax_is_numerically_stable_for_huge_logits():
    f, y = _batch()
    shifted = losses.pc_softmax_cross_entropy(f + 1e4, y, PRIORS)
    assert torch.isfinite(shifted)
    assert torch.allclose(shifted, losses.pc_softmax_cross_entropy(f, y, PRIORS))


def test_pc_softmax_with_uniform_priors_is_softmax_ce_minus_log_k():
    f, y = _batch()
    uniform = torch.full((4,), 0.25, dtype=torch.float64)
    assert torch.allclose(losses.pc_softmax_cross_entropy(f, y, uniform),
                          losses.softmax_cross_entropy(f, y) - math.log(4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pc_softmax_logit_adjusted_and_balanced_softmax_have_identical_gradients(seed):
    f, y = _batch(seed)
    g_pc = _grad(lambda a, b: losses.pc_softmax_cross_entropy(a, b, PRIORS), f, y)
    g_la = _grad(lambda a, b: losses.logit_adjusted_loss(a, b, PRIORS, tau=1.0), f, y)
    g_bs = _grad(lambda a, b: losses.balanced_softmax_loss(a, b, PRIORS), f, y)
    assert torch.allclose(g_pc, g_la, atol=1e-12) and torch.allclose(g_pc, g_bs, atol=1e-12)
    # ... and the identity is not vacuous: plain softmax CE has different gradients.
    g_ce = _grad(losses.softmax_cross_entropy, f, y)
    assert not torch.allclose(g_pc, g_ce, atol=1e-3)
    # The losses themselves differ by the constant mean log p(y_i).
    const = torch.log(PRIORS[y]).mean()
    assert torch.allclose(losses.pc_softmax_cross_entropy(f, y, PRIORS),
                          losses.balanced_softmax_loss(f, y, PRIORS) + const)


def test_logit_adjusted_tau_zero_is_softmax_and_tau_matters():
    f, y = _batch()
    assert torch.allclose(losses.logit_adjusted_loss(f, y, PRIORS, tau=0.0), losses.softmax_cross_entropy(f, y))
    assert not torch.allclose(losses.logit_adjusted_loss(f, y, PRIORS, tau=2.0),
                              losses.logit_adjusted_loss(f, y, PRIORS, tau=1.0))


def test_class_weighted_ce_weights_inverse_frequency():
    f, y = _batch()
    w = 1 / PRIORS
    w = w / (PRIORS * w).sum()
    per_sample = F.cross_entropy(f, y, reduction="none")
    assert torch.allclose(losses.class_weighted_cross_entropy(f, y, PRIORS), (w[y] * per_sample).mean())
    uniform = torch.full((4,), 0.25, dtype=torch.float64)
    assert torch.allclose(losses.class_weighted_cross_entropy(f, y, uniform), losses.softmax_cross_entropy(f, y))


def test_prediction_is_argmax_of_logits_for_every_loss():
    f, _ = _batch()
    assert torch.equal(losses.predict(f), f.argmax(1))


def test_get_loss_covers_all_losses_and_is_callable():
    f, y = _batch()
    for name in losses.LOSSES:
        value = losses.get_loss(name, PRIORS)(f, y)
        assert value.ndim == 0 and torch.isfinite(value)
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get_loss("focal", PRIORS)
    with pytest.raises(ValueError, match="needs the training label priors"):
        losses.get_loss("pc_softmax")


def test_label_priors_counts_frequencies():
    p = losses.label_priors(torch.tensor([0, 1, 1, 2, 2, 2]), 3)
    assert torch.allclose(p, torch.tensor([1 / 6, 2 / 6, 3 / 6], dtype=torch.float64))


@pytest.mark.parametrize(
    "priors, k, message",
    [
        ([0.5, 0.5, 0.0], 3, r"classes \[2\]"),
        ([0.5, 0.5], 3, "has 2 entries but the logits have 3"),
        ([0.5, 0.6, 0.1], 3, "sum to 1"),
        ([float("nan"), 0.5, 0.5], 3, "NaN"),
        ([[0.5, 0.5]], 2, "1-D"),
    ],
)
def test_bad_priors_raise_one_clear_error(priors, k, message):
    with pytest.raises(ValueError, match=message):
        losses.check_priors(priors, k)


def test_empty_class_in_labels_is_refused():
    with pytest.raises(ValueError, match="classes"):
        losses.label_priors(torch.tensor([0, 0, 2]), 3)


def test_prior_length_is_checked_against_logits():
    f, y = _batch()
    with pytest.raises(ValueError, match="logits have 4 classes"):
        losses.pc_softmax_cross_entropy(f, y, [0.5, 0.5])


def test_check_targets_matches_the_estimators_message():
    assert losses.check_targets(torch.tensor([0, 3]), 4).dtype == torch.int64
    assert losses.check_targets(torch.tensor([0, 3], dtype=torch.int32), 4).dtype == torch.int64
    with pytest.raises(ValueError, match=r"labels must lie in 0..3 \(num_classes = 4\); found 0..7"):
        losses.check_targets(torch.tensor([0, 7]), 4)
    with pytest.raises(ValueError, match="labels must be integers 0..3"):
        losses.check_targets(torch.tensor([True, False]), 4)


def test_losses_are_unchanged_by_the_label_check():
    logits, targets = _batch()
    assert torch.equal(losses.softmax_cross_entropy(logits, targets), F.cross_entropy(logits, targets))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_get_loss_with_cached_priors_gives_the_per_call_numbers(dtype):
    """get_loss checks the priors and logs them once; losses and gradients are bit-identical to checking per call."""
    for name in losses.LOSSES[1:]:
        fn = losses.get_loss(name, PRIORS)
        direct = {"pc_softmax": losses.pc_softmax_cross_entropy, "logit_adjusted": losses.logit_adjusted_loss,
                  "balanced_softmax": losses.balanced_softmax_loss,
                  "class_weighted": losses.class_weighted_cross_entropy}[name]
        for seed in range(2):  # the second call reads the cache
            f, y = _batch(seed)
            f = f.to(dtype)
            assert torch.equal(fn(f, y), direct(f, y, PRIORS)), name
            assert torch.equal(_grad(fn, f, y), _grad(lambda a, b: direct(a, b, PRIORS), f, y)), name
    with pytest.raises(ValueError, match="logits have 4 classes"):
        losses.get_loss("pc_softmax", [0.5, 0.5])(*_batch())
    with pytest.raises(ValueError, match="must be > 0"):
        losses.get_loss("pc_softmax", [0.0, 1.0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_give_float32_losses(dtype):
    """Under bf16/fp16 autocast the logits are half precision: every loss is computed on them in float32."""
    f, y = _batch()
    half = f.to(dtype)
    for name in losses.LOSSES:
        fn = losses.get_loss(name, PRIORS)
        value = fn(half, y)
        assert value.dtype == torch.float32, name
        assert torch.equal(value, fn(half.float(), y)), name
    la, bs = losses.get_loss("logit_adjusted", PRIORS), losses.get_loss("balanced_softmax", PRIORS)
    assert torch.equal(_grad(la, half, y), _grad(bs, half, y))
