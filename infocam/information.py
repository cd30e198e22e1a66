"""Exact information quantities of finite joint distributions (numpy, no sampling).

Used in chapter 1: on a finite input space the joint p(x, y) is a table, so entropies,
mutual information, the Bayes posterior and a classifier's population cross-entropy are sums.
The estimators that work from samples are in :mod:`infocam.estimators` (chapter 2).
"""

from __future__ import annotations

import numpy as np


def _as_distribution(p, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    total = p.sum(axis=-1, keepdims=True) if name.startswith("conditional") else p.sum()
    if not np.allclose(total, 1.0, atol=1e-9):
        raise ValueError(f"{name} must sum to 1 (sums to {np.ravel(total)[:3]})")
    return p


def entropy(p) -> float:
    """Shannon entropy H(p) in nats (0 log 0 = 0)."""
    p = _as_distribution(p, "p")
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def mutual_information(joint) -> float:
    """Exact I(X;Y) in nats of a finite joint table ``joint[x, y]``."""
    pxy = _as_distribution(joint, "joint")
    px = pxy.sum(axis=1, keepdims=True)
    py = pxy.sum(axis=0, keepdims=True)
    mask = pxy > 0
    return float((pxy[mask] * np.log(pxy[mask] / (px @ py)[mask])).sum())


def posterior(joint) -> np.ndarray:
    """Bayes posterior p(y|x) of a joint table (rows with p(x) = 0 are left uniform)."""
    pxy = _as_distribution(joint, "joint")
    px = pxy.sum(axis=1, keepdims=True)
    out = np.full_like(pxy, 1.0 / pxy.shape[1])
    np.divide(pxy, px, out=out, where=px > 0)
    return out


def cross_entropy(joint, q) -> float:
    """Population cross-entropy CE(q) = −E_{p(x,y)} log q(y|x) in nats of a classifier table q[x, y]."""
    pxy = _as_distribution(joint, "joint")
    q = _as_distribution(q, "conditional q")
    if q.shape != pxy.shape:
        raise ValueError(f"q has shape {q.shape}, the joint {pxy.shape}")
    mask = pxy > 0
    with np.errstate(divide="ignore"):
        return float(-(pxy[mask] * np.log(q[mask])).sum())


def expected_kl(joint, q) -> float:
    """E_{p(x)} KL(p(·|x) ‖ q(·|x)) in nats: the gap between I(X;Y) and the bound H(Y) − CE(q)."""
    pxy = _as_distribution(joint, "joint")
    q = _as_distribution(q, "conditional q")
    p = posterior(pxy)
    mask = p > 0
    terms = np.zeros_like(p)
    terms[mask] = p[mask] * np.log(p[mask] / q[mask])
    return float((pxy.sum(axis=1) * terms.sum(axis=1)).sum())
