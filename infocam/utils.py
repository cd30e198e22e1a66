"""Small shared helpers: seeding, progress bars, atomic file writes, a lock between processes, the
chapter processes' malloc settings."""

from __future__ import annotations

import os
import random
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np


# Environment for the processes that run chapters (kernels of `infocam execute` and `infocam run`).
# glibc hands every freed block over 128 KB-32 MB back to the system and faults it in again, zeroed,
# at the next allocation of that size: a training or scoring loop pays system time for every batch.
# Fixed 1 GiB thresholds keep freed memory in the process instead (glibc reads them at process start).
# Measured on chapter 5's stage-7 rung (cached inputs + training, 1 thread): 11.9 -> 1.1 s system time,
# 42 -> 31 s wall, peak memory 1.43 -> 1.61 GB. Where the memory comes from never changes a number.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def with_malloc_env(env) -> dict:
    """``env`` (a mapping of environment variables) with :data:`MALLOC_ENV` added where not set."""
    return {**MALLOC_ENV, **env}


def seed_list(seed: int, seeds: int) -> list[int]:
    """The seeds of a chapter's repeated runs: ``seed, seed + 1, …, seed + seeds − 1`` (the one rule
    every chapter uses, so "seeds 0–4" means the same everywhere)."""
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    return list(range(int(seed), int(seed) + int(seeds)))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) so a run is repeatable on the same machine.

    The one way to seed in the book: every chapter and module calls it before it builds or
    trains a network (``torch.manual_seed`` also seeds CUDA's generators). torch is imported here,
    not with the module, so that pages which only read results (the summary, the front page) start
    without it.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def progress(iterable=None, **kwargs):
    """tqdm progress bar that is on by default and silenced by ``INFOCAM_PROGRESS=0``.

    The book build sets ``INFOCAM_PROGRESS=0`` so the rendered pages stay quiet.
    """
    from tqdm import tqdm

    kwargs.setdefault("disable", os.environ.get("INFOCAM_PROGRESS", "1") == "0")
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)


def _current_umask() -> int:
    """The process umask without changing it (Linux reports it in /proc; setting it to read it back,
    the fallback, briefly changes it for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    A reader never sees a half-written file, and a crash leaves the old file (or none). The file
    gets the permissions an ordinary ``open`` would give (mkstemp's are owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def exclusive_lock(path: str | os.PathLike, *, waiting: str | None = None):
    """Hold an exclusive lock on the file ``path`` (created if missing) for the ``with`` block.

    Processes that compute the same cached file take it so only one computes and the others wait,
    then find the file (e.g. a book chapter reaching the Tiny-ImageNet maps while ``infocam features``
    is still extracting them). ``waiting`` is printed once if the lock is held by another process.
    The lock goes with the process (an advisory ``flock``: a crash never leaves it held); where
    ``fcntl`` does not exist (Windows) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
