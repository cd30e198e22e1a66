"""Training throughput of the chapter-3 LeNet on CPU, three data paths measured in one process.

(a) the original script's path: a per-sample ``Dataset`` returning PIL images through
    ``transforms.ToTensor()`` + ``Normalize`` and a shuffling ``DataLoader``;
(b) the project's loop, :func:`infocam.train.fit` (in-memory tensors, index per batch);
(c) the compute bound: forward + backward + step on batches built beforehand.

Same data (the 1,650-image imbalanced embedded-MNIST training set), model, loss (PC-softmax),
SGD lr 0.01 momentum 0.5, batch 64. Prints images/s (median of repeats) and ratios to (c).
Usage: python benchmarks/bench_lenet.py [--epochs 2] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("INFOCAM_PROGRESS", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in chapter 3: no spinning on a busy machine

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from infocam.data import load_mnist
from infocam.data.imbalance import mnist_imbalanced
from infocam.losses import get_loss, label_priors
from infocam.models.lenet import LeNet, mnist_tensor
from infocam.train import fit


class PILDigits(Dataset):
    """Per-sample dataset like torchvision's MNIST: uint8 array -> PIL image -> transform."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


def run_dataloader(images, labels, loss_fn, epochs, seed):
    run_bare(DataLoader(PILDigits(images, labels), batch_size=64, shuffle=True), loss_fn, epochs, seed)


def run_fit(X, y, loss_fn, epochs, seed):
    torch.manual_seed(seed)
    fit(LeNet(), X, y, loss_fn, epochs=epochs, batch_size=64, lr=0.01, momentum=0.5, seed=seed)


def run_bare(batches, loss_fn, epochs, seed):
    """The plain SGD loop over any iterable of (x, y) batches: pre-built tensors or a DataLoader."""
    torch.manual_seed(seed)
    model = LeNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
    model.train()
    for _ in range(epochs):
        for x, y in batches:
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = mnist_imbalanced(load_mnist("embedded"))
    X, y = mnist_tensor(split.X_train), torch.as_tensor(split.y_train)
    loss_fn = get_loss("pc_softmax", label_priors(y, 10))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    batches = [(X[perm[i : i + 64]], y[perm[i : i + 64]]) for i in range(0, len(y), 64)]
    paths = {
        "(a) Dataset + PIL + DataLoader": lambda s: run_dataloader(split.X_train, split.y_train, loss_fn, args.epochs, s),
        "(b) infocam.train.fit": lambda s: run_fit(X, y, loss_fn, args.epochs, s),
        "(c) bare fwd+bwd+step (bound)": lambda s: run_bare(batches, loss_fn, args.epochs, s),
    }
    n_images = len(y) * args.epochs
    times = {name: [] for name in paths}
    for rep in range(args.repeats):  # interleave the paths so machine load hits all of them alike
        for name, fn in paths.items():
            start = time.perf_counter()
            fn(rep)
            times[name].append(time.perf_counter() - start)
    bound = n_images / statistics.median(times["(c) bare fwd+bwd+step (bound)"])
    print(f"LeNet, {len(y)} images x {args.epochs} epochs, batch 64, {args.threads} threads, "
          f"median of {args.repeats} repeats")
    print(f"{'path':34s} {'images/s':>10s} {'vs (c)':>8s}")
    for name, ts in times.items():
        rate = n_images / statistics.median(ts)
        print(f"{name:34s} {rate:10.0f} {rate / bound:8.2f}")


if __name__ == "__main__":
    main()
