"""Benchmark of the MI estimators on the paper's balanced synthetic task (chapter 2).

For each input dimension d, fits every estimator at the chapter's default budget (read from
book/params/02_synthetic_mi.yml) on several seeds
and prints the bias against the exact MI (1-D quadrature) and the wall time of fit + estimate.
Times are medians over seeds, measured in this process with one torch thread; the last column is
the ratio to the softmax classifier measured alongside (the reference).

    .venv/bin/python benchmarks/bench_mi.py [--seeds 3] [--dims 1 2 5 10]

Target: |bias| of the softmax estimate <= 0.03 nats at every d (the original code's shipped
checkpoints sit 0.02-0.07 nats low).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

from infocam import estimators
from infocam.data import synthetic

PROFILE = Path(__file__).resolve().parents[1] / "book" / "params" / "02_synthetic_mi.yml"


def default_budget() -> tuple[dict, int]:
    """Estimator settings and training samples per class of the chapter's ``default`` profile."""
    p = yaml.safe_load(PROFILE.read_text())["default"]
    clf = dict(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"])
    critic = dict(steps=p["critic_steps"], batch_size=p["critic_batch"], lr=p["critic_lr"])
    budget = {"softmax": clf, "pc_softmax": clf, "mine": critic, "infonce": critic, "nwj": critic, "knn": {}}
    return budget, p["train_per_class"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dims", type=int, nargs="+", default=list(synthetic.PAPER_DIMS))
    args = parser.parse_args()
    os.environ.setdefault("INFOCAM_PROGRESS", "0")
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
    torch.set_num_threads(1)

    BUDGET, TRAIN_PER_CLASS = default_budget()
    counts = synthetic.paper_counts(TRAIN_PER_CLASS)
    bias = {(n, d): [] for n in estimators.ESTIMATORS for d in args.dims}
    secs = {n: [] for n in estimators.ESTIMATORS}
    exact = {}
    started = time.perf_counter()
    for d in args.dims:
        task = synthetic.paper_task(d)
        exact[d] = task.exact_mi()
        for s in range(args.seeds):
            train, test = task.sample(counts, seed=2 * s), task.sample(counts // 5, seed=2 * s + 1)
            for name in estimators.ESTIMATORS:
                r = estimators.estimate_mi(name, train, test, 5, seed=s, **BUDGET[name])
                bias[(name, d)].append(r["estimate"] - exact[d])
                secs[name].append(r["seconds"])

    print(f"paper task, balanced, {TRAIN_PER_CLASS} training / {TRAIN_PER_CLASS // 5} test samples per class, "
          f"{args.seeds} seeds; bias = mean(estimate) - exact (nats), ± sd over seeds\n")
    header = f"{'estimator':<11}" + "".join(f"{'d=' + str(d):>17}" for d in args.dims) + f"{'time/fit (s)':>14}{'vs softmax':>12}"
    print(header)
    print("-" * len(header))
    ref = statistics.median(secs["softmax"])
    for name in estimators.ESTIMATORS:
        cells = "".join(f"{np.mean(bias[(name, d)]):>+10.4f} ±{np.std(bias[(name, d)], ddof=1) if args.seeds > 1 else 0:.3f}"
                        for d in args.dims)
        t = statistics.median(secs[name])
        print(f"{name:<11}{cells}{t:>14.3f}{t / ref:>11.2f}x")
    print("\nexact MI:", ", ".join(f"d={d}: {v:.4f}" for d, v in exact.items()))
    worst = max(abs(np.mean(bias[("softmax", d)])) for d in args.dims)
    print(f"softmax max |bias| over d: {worst:.4f} nats (target <= 0.03) -> {'OK' if worst <= 0.03 else 'MISSED'}")
    print(f"total wall time: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
