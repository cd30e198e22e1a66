"""infocam.bookbuild: the task graph (needs, jobs, failures) and chapters executed into the cache the
book build reads (the hash myst-nb looks up), on a toy book."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import yaml

from infocam import bookbuild
from infocam.bookbuild import Task, run_graph
from tests.test_bad_input import make_book

# -- the task graph (threads stand in for the worker processes) -------------------------------------

_log: list[tuple[str, str, float]] = []
_lock = threading.Lock()


def _work(name, seconds=0.05, fail=False):
    with _lock:
        _log.append((name, "start", time.time()))
    time.sleep(seconds)
    with _lock:
        _log.append((name, "end", time.time()))
    if fail:
        raise RuntimeError(f"{name} broke")
    return name.upper()


def _graph(tasks, jobs=2):
    _log.clear()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return run_graph(tasks, jobs=jobs, executor=pool)


def _times(name):
    return {kind: t for n, kind, t in _log if n == name}


def test_needs_run_first_and_values_come_back():
    out = _graph([Task("c", _work, ("c",), needs=("a", "b")), Task("a", _work, ("a",)), Task("b", _work, ("b", 0.15))])
    assert {n: o.value for n, o in out.items()} == {"a": "A", "b": "B", "c": "C"}
    assert all(o.ok for o in out.values())
    assert _times("c")["start"] >= max(_times("a")["end"], _times("b")["end"])


def test_at_most_jobs_tasks_run_at_once():
    _graph([Task(n, _work, (n, 0.1)) for n in "abcde"], jobs=2)
    events = sorted((t, +1 if kind == "start" else -1) for _, kind, t in _log)
    running, peak = 0, 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2


def test_priority_orders_the_ready_tasks():
    _graph([Task("late", _work, ("late",), priority=5), Task("early", _work, ("early",), priority=0)], jobs=1)
    assert [n for n, kind, _ in _log if kind == "start"] == ["early", "late"]


def test_a_failure_stops_what_depends_on_it_and_new_starts():
    out = _graph([Task("bad", _work, ("bad", 0.05, True), priority=0), Task("after", _work, ("after",), needs=("bad",)),
                  Task("other", _work, ("other", 0.3), priority=1), Task("queued", _work, ("queued",), priority=2)], jobs=2)
    assert not out["bad"].ok and "RuntimeError: bad broke" in out["bad"].error
    assert out["other"].ok  # was running: finishes
    assert "after" not in out and "queued" not in out


def test_bad_graphs_are_refused():
    with pytest.raises(ValueError, match="unknown task"):
        run_graph([Task("a", _work, ("a",), needs=("z",))])
    with pytest.raises(ValueError, match="cycle"):
        run_graph([Task("a", _work, ("a",), needs=("b",)), Task("b", _work, ("b",), needs=("a",))])
    with pytest.raises(ValueError, match="unique"):
        run_graph([Task("a", _work, ("a",)), Task("a", _work, ("a",))])
    with pytest.raises(ValueError, match="jobs"):
        run_graph([Task("a", _work, ("a",))], jobs=0)


# -- a toy book executed into the cache ---------------------------------------------------------------


def _toy_root(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    book = make_book(root)
    nb = nbformat.read(book / "01_toy.ipynb", as_version=4)
    nbformat.write(nb, book / "02_toy.ipynb")
    summary = nbformat.v4.new_notebook()
    summary.metadata["kernelspec"] = nb.metadata["kernelspec"]
    summary.metadata["mystnb"] = {"execution_mode": "force"}
    summary.cells = [nbformat.v4.new_code_cell("print('summary')")]
    nbformat.write(summary, book / "summary.ipynb")
    (root / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/01_toy", "chapters": [
        {"file": "book/02_toy"}, {"file": "book/summary"}]}))
    (root / "_config.yml").write_text(yaml.safe_dump({"execute": {"execute_notebooks": "cache", "timeout": 120}}))
    return root


@pytest.mark.slow  # runs chapters in Jupyter kernels
def test_chapters_land_in_the_cache_under_the_hash_myst_nb_looks_up(tmp_path, monkeypatch):
    from jupyter_cache import get_cache
    from myst_nb.core.read import standard_nb_read

    root = _toy_root(tmp_path)
    metrics = tmp_path / "metrics"
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path))  # no datasets: no feature pass
    monkeypatch.setenv("INFOCAM_METRICS_DIR", str(metrics))
    cache = root / "_build" / ".jupyter_cache"
    lines = []
    assert bookbuild.execute_book(root, cache, jobs=2, log=lines.append) == 0
    assert any("summary: left to the build" in line for line in lines)
    for name in ("01_toy", "02_toy"):
        nb = standard_nb_read((root / "book" / f"{name}.ipynb").read_text(encoding="utf8"))  # as myst-nb reads it
        record = get_cache(str(cache)).match_cache_notebook(nb)
        assert record.data["execution_seconds"] > 0
        _, merged = get_cache(str(cache)).merge_match_into_notebook(nb)
        assert merged.cells[1].execution_count == 2
        # each kernel knew its chapter: runs.record wrote the chapter's own metrics file
        assert json.loads((metrics / f"{name}.json").read_text())["value"] == 0
    assert not bookbuild.is_cached(cache, bookbuild.read_notebook(root / "book" / "summary.ipynb"))
    times = json.loads((root / "_build" / "execute-times.json").read_text())
    assert times["ok"] and set(times["tasks"]) == {"01_toy", "02_toy"}
    assert all(t["cpu_seconds"] > 0 for t in times["tasks"].values())  # the kernel's CPU time is counted

    lines.clear()  # a second run finds both chapters cached and runs nothing
    assert bookbuild.execute_book(root, cache, jobs=2, log=lines.append) == 0
    assert "01_toy: cached" in lines and "02_toy: cached" in lines
    assert json.loads((root / "_build" / "execute-times.json").read_text())["tasks"] == {}


@pytest.mark.slow  # runs chapters in Jupyter kernels
def test_a_failing_chapter_fails_the_command_and_is_not_cached(tmp_path, monkeypatch):
    root = _toy_root(tmp_path)
    path = root / "book" / "02_toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = nb.cells[0].source.replace('fail = ""', 'fail = "assert"')
    nbformat.write(nb, path)
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path))
    cache = root / "_build" / ".jupyter_cache"
    lines = []
    assert bookbuild.execute_book(root, cache, jobs=1, log=lines.append) == 1
    text = "\n".join(lines)
    assert "02_toy FAILED" in text and "a claim of the toy chapter failed" in text
    assert not bookbuild.is_cached(cache, bookbuild.read_notebook(path))


def test_chapters_wait_for_the_feature_passes_they_read(tmp_path, monkeypatch):
    root = _toy_root(tmp_path)
    for name, new in (("01_toy", "03_imbalanced"), ("02_toy", "01_theory")):
        (root / "book" / f"{name}.ipynb").rename(root / "book" / f"{new}.ipynb")
    (root / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/03_imbalanced", "chapters": [
        {"file": "book/01_theory"}, {"file": "book/summary"}, {"file": "book/99_new"}]}))
    nbformat.write(nbformat.read(root / "book" / "01_theory.ipynb", as_version=4), root / "book" / "99_new.ipynb")
    monkeypatch.setattr(bookbuild, "feature_jobs", lambda: {"features:cub": None, "features:tiny": None})
    tasks, _ = bookbuild.plan(root / "book", root / "_build" / ".jupyter_cache", None, 60)
    needs = {t.name: t.needs for t in tasks}
    assert needs == {"features:cub": (), "features:tiny": (), "03_imbalanced": ("features:cub",), "01_theory": (),
                     "99_new": ("features:cub", "features:tiny")}  # an unknown chapter waits for every pass
    monkeypatch.setattr(bookbuild, "feature_jobs", lambda: {"features:cub": None})
    tasks, _ = bookbuild.plan(root / "book", root / "_build" / ".jupyter_cache", None, 60)
    assert {t.name for t in tasks} == {"features:cub", "03_imbalanced", "01_theory", "99_new"}


def test_a_pass_read_late_is_planned_but_not_waited_for(tmp_path, monkeypatch):
    """Chapter 5 starts after the CUB pass; the Tiny-ImageNet pass it reads later still runs."""
    root = _toy_root(tmp_path)
    (root / "book" / "01_toy.ipynb").rename(root / "book" / "05_trained_wsol.ipynb")
    (root / "book" / "02_toy.ipynb").unlink()
    (root / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/05_trained_wsol"}))
    monkeypatch.setattr(bookbuild, "feature_jobs", lambda: {"features:cub": None, "features:tiny": None})
    tasks, _ = bookbuild.plan(root / "book", root / "_build" / ".jupyter_cache", None, 60)
    assert {t.name: t.needs for t in tasks} == {"features:cub": (), "features:tiny": (),
                                                "05_trained_wsol": ("features:cub",)}


def test_the_tiny_pass_extracts_the_images_chapter_5_scores(tmp_path, monkeypatch):
    from infocam import runs
    from infocam.data.tiny_imagenet import load_tiny_imagenet, make_fixture, scored_subset

    make_fixture(tmp_path, num_classes=4, n_val=5)
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path))
    asked = []
    monkeypatch.setattr(runs, "load_profile", lambda chapter, profile: asked.append((chapter, profile)) or
                        {"tiny_limit": 7, "seed": 3})
    _, paths, *_ = bookbuild.feature_jobs(["features:tiny"])["features:tiny"]
    tiny = load_tiny_imagenet(data_root=tmp_path)
    assert asked == [("05_trained_wsol", "default")]
    assert paths == [tiny.paths[i] for i in scored_subset(20, 7, 3)]


def test_kernels_share_the_cores_out_among_the_workers(monkeypatch):
    monkeypatch.setattr(bookbuild, "_cpus", lambda: 2)
    assert bookbuild.kernel_threads(2) == 1 and bookbuild.kernel_threads(1) == 2
    monkeypatch.setattr(bookbuild, "_cpus", lambda: 16)
    assert bookbuild.kernel_threads(bookbuild.default_jobs()) == 1 and bookbuild.kernel_threads(4) == 4
