"""Tests of infocam.utils: the one seeding helper, atomic writes and the lock between processes."""

from __future__ import annotations

import os
import random
import threading
import time

import numpy as np
import pytest
import torch

from infocam.utils import atomic_write_text, exclusive_lock, seed_everything


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_repeats_python_numpy_and_torch():
    seed_everything(7)
    a = _draws()
    seed_everything(7)
    assert _draws() == a
    seed_everything(8)
    assert all(x != y for x, y in zip(_draws(), a))


def test_seed_everything_accepts_large_seeds():
    seed_everything(2**40 + 3)
    a = _draws()
    seed_everything(2**40 + 3)
    assert _draws() == a


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_seed_list_is_the_one_rule_for_a_chapters_seeds():
    from infocam.utils import seed_list

    assert seed_list(3, 4) == [3, 4, 5, 6] and seed_list(0, 1) == [0]
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="seeds must be a positive integer"):
            seed_list(0, bad)


def test_exclusive_lock_makes_the_second_holder_wait(tmp_path, capsys):
    lock, order, held = tmp_path / "x.lock", [], threading.Event()

    def first():
        with exclusive_lock(lock):
            held.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    with exclusive_lock(lock, waiting="waiting for the other one"):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]
    assert "waiting for the other one" in capsys.readouterr().out
    with exclusive_lock(lock, waiting="never printed"):  # free again: no wait, no message
        pass
    assert capsys.readouterr().out == ""


def test_malloc_env_fills_in_what_is_not_set():
    from infocam.utils import MALLOC_ENV, with_malloc_env

    assert with_malloc_env({}) == MALLOC_ENV
    mine = {"MALLOC_TRIM_THRESHOLD_": "0", "PATH": "/bin"}
    env = with_malloc_env(mine)
    assert env["MALLOC_TRIM_THRESHOLD_"] == "0" and env["PATH"] == "/bin"  # a user's own setting wins
    assert env["MALLOC_MMAP_THRESHOLD_"] == MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]
