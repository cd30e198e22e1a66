"""Executing the book's chapters concurrently, into the execution cache the book build reads.

``jupyter-book build`` (``execute_notebooks: cache``) runs the chapters one after another through
jupyter-cache, and no chapter keeps two cores busy all the time (kernel start-up, data loading,
one-thread estimators, plotting). ``infocam execute`` (``make book`` runs it before the build)
runs the same work as a small graph on ``jobs`` worker processes:

* the frozen-backbone feature passes (``infocam features``), one task per dataset, so the CUB
  pass is done before the chapters that read it start, and the Tiny-ImageNet pass (chapter 5
  only) overlaps other chapters;
* every chapter executed exactly as myst-nb's cache mode does it (``jupyter_cache``'s
  ``single_nb_execution``, the chapter's folder as working directory, the configured timeout, no
  errors allowed, ``INFOCAM_CHAPTER`` set so that ``infocam.runs.record`` writes its metrics), and
  the executed notebook stored in the cache under the hash myst-nb looks up. The build then finds
  every chapter in the cache and only renders it.

A chapter that is already cached (same code cells) is not run again; a chapter whose notebook
metadata sets its own ``mystnb.execution_mode`` (the summary page, which must run after every
chapter) is left to the build. Each chapter's kernel gets ``cores ÷ workers`` threads
(:func:`kernel_threads`: one per kernel with two workers on two cores): two 2-thread kernels on two
cores spent up to twice the CPU seconds of two 1-thread kernels (measured on chapter 5's stage-7
training step: 570 against 290 CPU ms). A chapter whose numbers must not depend on the thread
count pins it itself (chapters 2 and 3 train on one thread everywhere); elsewhere a re-run with
more threads can differ from the book in the last digits (floating-point sums in another order).
The feature passes run in the worker itself on as many ONNX Runtime threads (their cached values do
not depend on the thread count).

A failing chapter stops the scheduling: its traceback is printed, the running tasks finish, and
the command exits with status 1 (the build is not started).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from infocam.utils import atomic_write_text, with_malloc_env

# Which feature caches a chapter reads (``infocam features`` fills them; a pass is planned when a
# chapter that is not cached reads it). A chapter waits for these passes before it starts, except
# the ones in READ_LATE; a chapter not named here waits for every feature task, so a new chapter is
# never started before its data exists.
FEATURE_TASKS = ("features:cub", "features:tiny")
CHAPTER_NEEDS = {
    "01_theory": (),
    "02_synthetic_mi": (),
    "03_imbalanced": ("features:cub",),
    "04_infocam": ("features:cub",),
    "05_trained_wsol": ("features:cub", "features:tiny"),
}
# Passes a chapter reads only after minutes of other work: it starts without waiting for them (chapter
# 5 trains on the birds before it reads the Tiny-ImageNet maps), and if the pass is still running when
# the chapter gets there, the feature cache's lock makes it wait instead of extracting a second time.
READ_LATE = {"05_trained_wsol": ("features:tiny",)}
# Start order among tasks whose inputs are ready (only the order changes, never a result). On 2 workers:
# the CUB pass and chapter 2 first; on the CUB pass's worker then the Tiny-ImageNet pass and chapter 3;
# chapter 5 (the longest) on the other worker once chapter 2 is done (it reads the Tiny maps last, see
# READ_LATE); chapter 4 after chapter 3, and the short chapter 1 last, on whichever worker is free first.
PRIORITY = ("features:cub", "02_synthetic_mi", "features:tiny", "03_imbalanced", "05_trained_wsol",
            "04_infocam", "01_theory")


# -- a small task graph on a process pool ---------------------------------------------------------


@dataclass
class Task:
    """One unit of work: ``fn(*args)`` runs in a worker process once every task in ``needs`` is done."""

    name: str
    fn: Callable
    args: tuple = ()
    needs: tuple[str, ...] = ()
    priority: int = 0


@dataclass
class Outcome:
    name: str
    ok: bool
    seconds: float
    started: float
    value: object = None
    error: str = ""
    cpu: float = float("nan")  # CPU seconds of the task's process and its kernel (nan where unknown)


def run_graph(tasks: list[Task], jobs: int = 2, on_done: Callable[[Outcome], None] | None = None,
              executor=None) -> dict[str, Outcome]:
    """Run ``tasks`` on ``jobs`` workers, each as soon as its ``needs`` are done (lowest
    ``priority`` first among the ready ones). After a failure nothing new starts; the running
    tasks finish. Returns name -> :class:`Outcome` of every task that ran (``value`` is what
    ``fn`` returned, ``error`` its traceback)."""
    by_name = {t.name: t for t in tasks}
    if len(by_name) != len(tasks):
        raise ValueError("task names must be unique")
    for t in tasks:
        unknown = [n for n in t.needs if n not in by_name]
        if unknown:
            raise ValueError(f"task {t.name!r} needs unknown task(s) {unknown}")
    _check_acyclic(by_name)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    pending = sorted(tasks, key=lambda t: (t.priority, t.name))
    done: dict[str, Outcome] = {}
    running = {}
    failed = False
    own = executor is None
    pool = executor or ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    t0 = time.time()
    try:
        while pending or running:
            if not failed:
                for t in list(pending):
                    if len(running) >= jobs:
                        break
                    if all(n in done and done[n].ok for n in t.needs):
                        pending.remove(t)
                        running[pool.submit(_timed, t.fn, t.args)] = (t, time.time() - t0)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                t, started = running.pop(fut)
                try:
                    ok, value, error, seconds, cpu = fut.result()
                except Exception as exc:  # the worker itself died
                    ok, value, error, cpu = False, None, f"{type(exc).__name__}: {exc}", float("nan")
                    seconds = time.time() - t0 - started
                out = Outcome(t.name, ok, seconds, started, value, error, cpu)
                done[t.name] = out
                failed = failed or not ok
                if on_done is not None:
                    on_done(out)
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
    return done


def _check_acyclic(by_name: dict[str, Task]) -> None:
    state: dict[str, int] = {}

    def visit(name, trail):
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError(f"task graph has a cycle: {' -> '.join([*trail, name])}")
        state[name] = 1
        for n in by_name[name].needs:
            visit(n, [*trail, name])
        state[name] = 2

    for name in by_name:
        visit(name, [])


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children (a chapter's kernel)."""
    import resource

    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def _timed(fn, args):
    """Worker side: ``(ok, value, traceback, seconds, cpu seconds)``; exceptions become a failed outcome."""
    import traceback

    started, cpu = time.time(), _cpu_seconds()
    try:
        value = fn(*args)
    except BaseException:  # noqa: BLE001 - reported to the parent, which decides
        return False, None, traceback.format_exc(), time.time() - started, _cpu_seconds() - cpu
    return True, value, "", time.time() - started, _cpu_seconds() - cpu


# -- the book's tasks -------------------------------------------------------------------------------


def feature_jobs(names=None) -> dict[str, tuple]:
    """``features:<dataset>`` -> (source, paths, size, cache key, kinds) for each dataset under the data
    root, or only for ``names`` (the other datasets are not read). Tiny-ImageNet: the validation images
    chapter 5's ``default`` profile scores (``tiny_limit`` of them, drawn by its ``seed``)."""
    from infocam import features as F
    from infocam.data.cub import find_cub, load_cub
    from infocam.data.tiny_imagenet import find_tiny_imagenet, load_tiny_imagenet, scored_subset
    from infocam.runs import load_profile

    jobs = {}
    if (names is None or "features:cub" in names) and (root := find_cub()) is not None:
        cub = load_cub(root)
        jobs["features:cub"] = (cub.source, cub.paths, F.CUB_IMAGE_SIZE, F.CUB_CACHE_KEY, ("spatial", F.CHAPTER5_CUT))
    if (names is None or "features:tiny" in names) and (root := find_tiny_imagenet()) is not None:
        tiny = load_tiny_imagenet(root, "val")
        book = load_profile("05_trained_wsol", "default")
        paths = [tiny.paths[i] for i in scored_subset(len(tiny), book["tiny_limit"], book["seed"])]
        jobs["features:tiny"] = (tiny.source, paths, F.TINY_IMAGE_SIZE, F.TINY_CACHE_KEY, ("spatial",))
    return jobs


def warm_features(names=None, threads: int | None = None) -> list[str]:
    """Fill the feature caches of ``names`` (default: all present datasets) on ``threads`` ONNX Runtime
    threads (None: torch's thread count); one report per dataset."""
    from infocam import features as F

    jobs = feature_jobs(names)
    lines = []
    for source, paths, size, key, kinds in jobs.values():
        started = time.time()
        files = F.cache_features(F.BACKBONE, paths, kinds=kinds, size=size, cache_key=key, threads=threads)
        seconds = time.time() - started
        lines.append(f"{source}\n  {F.BACKBONE} {size} px on {F.resolve_runtime()}, {seconds:.0f} s "
                     f"({len(paths) / max(seconds, 1e-9):.0f} images/s, 0 s when cached)")
        lines += [f"  {kind}: {path} ({path.stat().st_size / 2**20:.0f} MiB)" for kind, path in files.items()]
    if not jobs:
        lines.append("no CUB-200-2011 or Tiny-ImageNet folder under the data root: nothing to extract")
    return lines


def read_notebook(path: Path):
    """A notebook as myst-nb reads it for execution (nbformat v4), so its cache hash matches."""
    import nbformat

    return nbformat.reads(Path(path).read_text(encoding="utf8"), as_version=4)


def own_execution_mode(nb) -> str | None:
    """The notebook's own ``mystnb.execution_mode`` (None: it follows the book's cache mode)."""
    return (nb.metadata.get("mystnb") or {}).get("execution_mode")


def execute_chapter(path: str, timeout: int | None, env: dict[str, str]) -> dict:
    """Worker side: execute one notebook as myst-nb's cache mode does; the executed notebook as JSON."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    os.environ.update(env)  # inherited by the kernel
    path = Path(path)
    nb = read_notebook(path)
    result = single_nb_execution(nb, cwd=str(path.parent), timeout=timeout, allow_errors=False,
                                 meta_override=True)
    if result.err is not None:
        raise RuntimeError(f"{path.name} failed:\n{result.exc_string}")
    return {"notebook": nbformat.writes(result.nb), "seconds": result.time}


def cache_executed(cache_path: Path, uri: str, notebook_json: str, seconds: float):
    """Store an executed notebook in the jupyter-cache at ``cache_path`` (what myst-nb does after running it)."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(cache_path))
    nb = nbformat.reads(notebook_json, as_version=4)
    return cache.cache_notebook_bundle(CacheBundleIn(nb, uri, data={"execution_seconds": seconds}),
                                       check_validity=False, overwrite=True)


def is_cached(cache_path: Path, nb) -> bool:
    from jupyter_cache import get_cache

    if not Path(cache_path).exists():
        return False
    try:
        get_cache(str(cache_path)).match_cache_notebook(nb)
    except KeyError:
        return False
    return True


def book_notebooks(book_dir: Path) -> list[Path]:
    """The executable notebooks of the book in table-of-contents order (``_toc.yml`` beside ``book_dir``)."""
    import yaml

    toc_file = Path(book_dir).parent / "_toc.yml"
    root = Path(book_dir).parent
    if toc_file.is_file():
        toc = yaml.safe_load(toc_file.read_text(encoding="utf8"))
        files = [toc["root"]] + [c["file"] for part in [toc] for c in part.get("chapters", [])]
        paths = [root / f"{f}.ipynb" for f in files]
        return [p for p in paths if p.is_file()]
    return sorted(Path(book_dir).glob("*.ipynb"))


def plan(book_dir: Path, cache_path: Path, metrics_dir: str | None,
         timeout: int | None, threads: int = 1) -> tuple[list[Task], list[str]]:
    """The tasks of one build and the notes on what is left out (cached, left to the build).

    A feature pass is planned only when a chapter that is not cached reads it."""
    tasks, notes, reads = [], [], set()
    order = {name: i for i, name in enumerate(PRIORITY)}
    present = list(feature_jobs())
    for path in book_notebooks(book_dir):
        nb = read_notebook(path)
        chapter = path.stem
        if own_execution_mode(nb) is not None:
            notes.append(f"{chapter}: left to the build (execution_mode {own_execution_mode(nb)!r})")
            continue
        if is_cached(cache_path, nb):
            notes.append(f"{chapter}: cached")
            continue
        needs = CHAPTER_NEEDS.get(chapter, FEATURE_TASKS)
        env = {"INFOCAM_CHAPTER": chapter, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        if metrics_dir:
            env["INFOCAM_METRICS_DIR"] = metrics_dir
        reads.update(n for n in needs if n in present)
        tasks.append(Task(chapter, execute_chapter, (str(path), timeout, env),
                          needs=tuple(n for n in needs if n in present and n not in READ_LATE.get(chapter, ())),
                          priority=order.get(chapter, len(order))))
    tasks = [Task(name, warm_features, ([name], threads), priority=order.get(name, len(order)))
             for name in present if name in reads] + tasks
    return tasks, notes


def execute_book(root: Path, cache_path: Path, jobs: int = 2, timeout: int | None = None, log=print,
                 threads: int | None = None) -> int:
    """``infocam execute``: run the book's feature passes and chapters on ``jobs`` workers (each
    chapter's kernel on ``threads`` threads, default :func:`kernel_threads`) and fill the execution
    cache. Writes ``<cache_path>/../execute-times.json``; returns an exit status."""
    threads = kernel_threads(jobs) if threads is None else threads
    os.environ.update(with_malloc_env(os.environ))  # inherited by the workers (spawned) and their kernels
    root = Path(root).resolve()
    cache_path = Path(cache_path).resolve()
    if timeout is None:
        timeout = book_timeout(root)
    tasks, notes = plan(root / "book", cache_path, os.environ.get("INFOCAM_METRICS_DIR"), timeout, threads)
    for note in notes:
        log(note)
    started = time.time()

    def report(out: Outcome):
        end = out.started + out.seconds
        if not out.ok:
            log(f"[{end:6.0f} s] {out.name} FAILED after {out.seconds:.0f} s\n{out.error}")
            return
        if isinstance(out.value, dict) and "notebook" in out.value:
            path = root / "book" / f"{out.name}.ipynb"
            cache_executed(cache_path, str(path), out.value["notebook"], out.value["seconds"])
            out.value = None  # the notebook is in the cache; keep the outcome small
        elif isinstance(out.value, list):
            for line in out.value:
                log(line)
        log(f"[{end:6.0f} s] {out.name}: {out.seconds:.0f} s, {out.cpu:.0f} CPU s (started at {out.started:.0f} s)")

    outcomes = run_graph(tasks, jobs=jobs, on_done=report)
    wall = time.time() - started
    not_run = [t.name for t in tasks if t.name not in outcomes]
    ok = all(o.ok for o in outcomes.values()) and not not_run
    times = {"jobs": jobs, "kernel_threads": threads, "wall_seconds": round(wall, 1), "ok": ok, "not_run": not_run,
             "tasks": {n: {"started": round(o.started, 1), "seconds": round(o.seconds, 1), "cpu_seconds": round(o.cpu, 1),
                           "ok": o.ok}
                       for n, o in sorted(outcomes.items(), key=lambda kv: kv[1].started)}}
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache_path.parent / "execute-times.json", json.dumps(times, indent=1) + "\n")
    log(f"executed {len(outcomes)} task(s) on {jobs} worker(s) in {wall:.0f} s"
        + ("" if ok else f"; failed: {[n for n, o in outcomes.items() if not o.ok]}, not run: {not_run}"))
    return 0 if ok else 1


def book_timeout(root: Path) -> int | None:
    """The per-cell timeout of ``_config.yml`` (``execute.timeout``), as the build uses it."""
    import yaml

    config = Path(root) / "_config.yml"
    if not config.is_file():
        return None
    return (yaml.safe_load(config.read_text(encoding="utf8")) or {}).get("execute", {}).get("timeout")


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def kernel_threads(jobs: int) -> int:
    """Threads per chapter kernel: the cores shared out among the ``jobs`` workers (at least one)."""
    return max(1, _cpus() // max(1, jobs))


def default_jobs() -> int:
    """Two workers per two cores' worth of CPUs (each chapter's kernel gets :func:`kernel_threads` threads)."""
    cpus = _cpus()
    return max(2, cpus // 2 + 1) if cpus >= 2 else 1
