"""Multilayer perceptrons: the paper's classifier and the critics of the neural MI estimators.

Used in chapter 2 (synthetic MI): :class:`MLP` is the paper's d → 100 → 100 → 100 → K ReLU
network; :class:`ConcatCritic` is the critic T(x, y) of MINE, InfoNCE and NWJ with the label
entering as a one-hot vector concatenated to x.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

PAPER_HIDDEN = (100, 100, 100)


def _stack(in_dim: int, hidden: Sequence[int], out_dim: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return layers


class MLP(nn.Sequential):
    """ReLU MLP ``in_dim → hidden… → out_dim`` (defaults to the paper's three layers of 100)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = PAPER_HIDDEN):
        if in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"layer widths must be >= 1 (got {in_dim}, {tuple(hidden)}, {out_dim})")
        super().__init__(*_stack(in_dim, hidden, out_dim))


class ConcatCritic(nn.Module):
    """Scalar critic T(x, y) = MLP([x, onehot(y)]) for a discrete label y ∈ {0..K−1}.

    :meth:`scores` returns T(x_i, k) for every class k at once, (N, K): the first layer's weight
    splits as W [x; e_k] = W_x x + W_e[:, k], so the K concatenated inputs share one product W_x x.
    This is the same function as concatenating the one-hot vector, only cheaper.
    """

    def __init__(self, in_dim: int, num_classes: int, hidden: Sequence[int] = PAPER_HIDDEN):
        super().__init__()
        if not hidden:
            raise ValueError("ConcatCritic needs at least one hidden layer")
        self.num_classes = num_classes
        self.first = nn.Linear(in_dim + num_classes, hidden[0])
        self.rest = nn.Sequential(nn.ReLU(), *_stack(hidden[0], hidden[1:], 1))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """T(x_i, k) for all i and k, shape (N, K)."""
        d = x.shape[-1]
        h_x = x @ self.first.weight[:, :d].T + self.first.bias  # (N, H)
        h = h_x[:, None, :] + self.first.weight[:, d:].T[None, :, :]  # (N, K, H)
        return self.rest(h).squeeze(-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """T(x_i, y_i), shape (N,)."""
        onehot = nn.functional.one_hot(y.long(), self.num_classes).to(x.dtype)
        return self.rest(self.first(torch.cat([x, onehot], dim=-1))).squeeze(-1)
