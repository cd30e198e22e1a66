"""benchmarks/gpu_check.py on the CPU with tiny sizes: the GPU check's code runs, and its JSON says what it did."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the whole benchmark script, alone and under torchrun

REPO = Path(__file__).resolve().parent.parent


def test_gpu_check_runs_on_cpu_with_tiny_sizes(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INFOCAM_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny",
                           "--only", "64px", "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["device"].startswith("cpu") and summary["world_size"] == 1
    rows = summary["throughput"]
    assert [r["precision"] for r in rows] == ["fp32", "bf16"]
    assert all(r["images_per_s"] > 0 and r["loss_finite"] and r["timed_steps"] == 2 for r in rows)
    assert any("fp16 autocast needs CUDA" in s for s in summary["skipped"])
    e2e = summary["end_to_end"]
    assert e2e["ok"] and (e2e["first_exit"], e2e["resume_exit"]) == (143, 0)  # SIGTERM, then resume
    assert e2e["checkpoint_at_stop"]["epoch"] < 3 and len(e2e["train_loss"]) == 3
    assert e2e["dataset"] == "cub" and {"cam", "centre"} <= set(e2e["localisation"])


def test_gpu_check_under_torchrun_with_two_gloo_processes(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INFOCAM_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny", "--only", "64px",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["world_size"] == 2 and all(r["global_batch"] == 8 for r in summary["throughput"])
    e2e = summary["end_to_end"]
    assert e2e["ok"] and e2e["world_size"] == 2 and e2e["global_batch"] == 8
    assert proc.stderr.count("SIGTERM: stopped") == 1  # rank 0 alone says it
