"""The paper's LeNet for MNIST: conv 1→20 5×5, pool, conv 20→50 5×5, pool, fc 800→500, fc 500→10.

As in the PyTorch MNIST example the paper's script builds on: ReLU after each pooled conv and the
first fully connected layer; the last layer outputs logits f(x). Used in chapter 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet(nn.Module):
    """LeNet-5 variant of Qin et al. (input (N, 1, 28, 28), output (N, num_classes) logits)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pool, then ReLU: the same values and gradients as ReLU then pool (ReLU is monotone, and both
        # route a gradient to the same first maximum), with ReLU on a quarter of the elements
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def mnist_tensor(images) -> torch.Tensor:
    """uint8 digits (N, 28, 28) -> float (N, 1, 28, 28) normalised with MNIST mean 0.1307, sd 0.3081."""
    x = torch.as_tensor(images, dtype=torch.float32).div_(255.0)
    return ((x - 0.1307) / 0.3081).unsqueeze(1)
