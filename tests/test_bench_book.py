"""benchmarks/bench_book.py without a real build: what it refuses to delete, its medians and table,
and one cold run end to end with a stand-in for ``make book`` in a temporary repository."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("bench_book", REPO / "benchmarks" / "bench_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cache(tmp_path):
    root = tmp_path / "cache"
    (root / "features").mkdir(parents=True)
    (root / "onnx").mkdir()
    (root / "npm").mkdir()
    (root / "features" / "cub-efficientnet_lite0-224px-stage6-2739-a522342ba088028a.npy").write_bytes(b"x")
    (root / "features" / ".cub-x.npy.abc.tmp").write_bytes(b"x")
    (root / "onnx" / "efficientnet_lite0-224px-maps-f46a9c41122fbfb5-torch2.14.1+cu130.onnx").write_bytes(b"x")
    (root / "onnx" / ".export-abc").mkdir()
    return root


def test_refuses_unsafe_targets(bench, tmp_path):
    root, repo = _cache(tmp_path), tmp_path / "repo"
    targets = bench.cold_targets(root, repo / "_build")
    bench.check_targets(targets, bench.protected(root, repo, env={}), root)  # the package's own names pass
    (root / "features" / "my_notes.txt").write_text("mine")
    with pytest.raises(bench.Refused, match="my_notes.txt"):
        bench.check_targets(targets, bench.protected(root, repo, env={}), root)
    (root / "features" / "my_notes.txt").unlink()
    with pytest.raises(bench.Refused, match="overlaps"):  # the data root inside the cache
        bench.check_targets(targets, bench.protected(root, repo, env={"INFOCAM_DATA": str(root / "onnx" / "d")}), root)
    (repo / "_build").mkdir(parents=True)
    (repo / "_build" / "html").symlink_to(tmp_path)
    with pytest.raises(bench.Refused, match="is a link"):
        bench.check_targets(targets, bench.protected(root, repo, env={}), root)


def _run(wall, cpu, tasks, execute_wall):
    return {"wall_s": wall, "cpu_s": cpu, "execute_times": {
        "jobs": 2, "wall_seconds": execute_wall,
        "tasks": {n: {"started": s, "seconds": w, "cpu_seconds": c, "ok": True} for n, (s, w, c) in tasks.items()}}}


def test_medians_and_table(bench):
    runs = [_run(400.0, 700.0, {"features:cub": (0.0, 60.0, 110.0), "01_theory": (300.0, 20.0, 30.0)}, 320.0),
            _run(420.0, 760.0, {"features:cub": (0.0, 70.0, math.nan), "01_theory": (310.0, 30.0, 40.0)}, 340.0),
            _run(410.0, 730.0, {"features:cub": (0.0, 80.0, 130.0)}, 330.0)]
    rows = bench.medians(runs)
    assert list(rows)[:2] == ["features:cub", "01_theory"]
    assert rows["features:cub"] == {"started": 0.0, "wall_s": 70.0, "cpu_s": 120.0, "runs": 3}  # nan left out
    assert rows["01_theory"]["wall_s"] == 25.0 and rows["01_theory"]["runs"] == 2
    assert rows["make book (total)"] == {"started": None, "wall_s": 410.0, "cpu_s": 730.0, "runs": 3}
    remainder = [r for r in rows if r.startswith("remainder")][0]
    assert rows[remainder]["wall_s"] == 80.0  # median of the runs' remainders (80, 80, 80)
    text = bench.table(rows, 3)
    assert "(in 2 of 3 runs)" in text and "410.0" in text
    assert math.isnan(bench.nan_median([math.nan]))


def test_one_cold_run_with_a_stand_in_build(bench, tmp_path, monkeypatch, capsys):
    root, repo = _cache(tmp_path), tmp_path / "repo"
    build = repo / "_build"
    (build / "html").mkdir(parents=True)
    (build / "data").mkdir()
    times = {"jobs": 2, "wall_seconds": 0.1, "ok": True, "not_run": [],
             "tasks": {"01_theory": {"started": 0.0, "seconds": 0.1, "cpu_seconds": 0.05, "ok": True}}}
    script = ("import json, pathlib, sys; "
              f"assert not pathlib.Path({str(root / 'features')!r}).exists(); "
              f"pathlib.Path({str(build / 'execute-times.json')!r}).write_text(json.dumps({times!r}))")
    monkeypatch.setenv("INFOCAM_CACHE", str(root))
    monkeypatch.delenv("INFOCAM_DATA", raising=False)
    monkeypatch.setattr(bench, "REPO", repo)
    monkeypatch.setattr(bench, "BUILD", build)
    monkeypatch.setattr(bench, "TIMES_FILE", build / "execute-times.json")
    monkeypatch.setattr(bench, "COMMAND", (sys.executable, "-c", script))
    assert bench.main(["--runs", "1", "--dry-run"]) == 0
    assert (root / "features").is_dir() and "would delete" in capsys.readouterr().out
    assert bench.main(["--runs", "1", "--load-every", "0.05", "--json", str(tmp_path / "out.json")]) == 0
    assert not (build / "html").exists() and (build / "data").is_dir() and (root / "npm").is_dir()
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["median"]["01_theory"]["wall_s"] == 0.1 and record["runs"][0]["load"]
    assert "make book (total)" in capsys.readouterr().out
