"""Chapter 5 at a profile, end to end, and where its time goes.

Runs ``infocam run 05_trained_wsol --profile P`` (papermill, into a temporary runs folder) ``--repeats``
times and prints the median wall time of the whole run and of each part the chapter times itself
(``timings_s`` in its results.json): the frozen features (cache read and the frozen stages before
the trained one), training (fine-tuning over the seeds and the frozen probes), the maps and their
scoring on the birds, the Tiny-ImageNet feature read and its maps and scoring. The budget of the
``default`` profile is 4 minutes on 2 cores with a warm feature cache (``infocam features``); the
load average is printed beside, since the machine may be shared.

Usage: INFOCAM_DATA=/path/to/data python benchmarks/bench_chapter5.py [--profile default] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("INFOCAM_PROGRESS", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BUDGET_S = {"default": 240.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=("smoke", "default", "paper"))
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    from infocam import runs

    walls, parts = [], {}
    for _ in range(args.repeats):
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp:
            folder = runs.run_chapter("05_trained_wsol", args.profile, runs_dir=Path(tmp))
            results = json.loads((folder / "results.json").read_text())
        walls.append(results["wall_time_s"])
        for name, seconds in results["metrics"]["timings_s"].items():
            parts.setdefault(name, []).append(seconds)
        print(f"run: {results['wall_time_s']:.1f} s wall (load average at start {load:.1f}); "
              f"data: {results['data_source']}")
    print(f"\nchapter 05_trained_wsol, profile {args.profile}, median of {args.repeats}:")
    for name, values in parts.items():
        print(f"  {name:<55s} {statistics.median(values):7.1f} s")
    wall = statistics.median(walls)
    budget = BUDGET_S.get(args.profile)
    verdict = "" if budget is None else f" (budget {budget:.0f} s: {'within' if wall <= budget else 'OVER'})"
    print(f"  {'whole run (incl. kernel start, imports, figures)':<55s} {wall:7.1f} s{verdict}")


if __name__ == "__main__":
    main()
