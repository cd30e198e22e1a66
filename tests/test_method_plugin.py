"""A localisation method added in one file reaches every table: chapters 4 and 5 (smoke), ``infocam
train --dry-run`` and the summary page, with no other edit (issue: one localisation pipeline)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from infocam import summary
from infocam.localisation.methods import METHODS_ENV
from infocam.runs import REPO

PLUGIN = """
    from dataclasses import dataclass

    import torch

    from infocam.localisation import Method, register


    @register
    @dataclass(frozen=True)
    class Uniform(Method):
        \"\"\"A map that is the same everywhere: the weakest possible localiser.\"\"\"

        @classmethod
        def instances(cls, windows=(1, 3), faithful_window=None):
            return [cls("uniform", "uniform map (test method)")]

        def maps(self, features, weight, class_idx, logits):
            return torch.ones(len(features), *features.shape[2:])
"""


@pytest.fixture
def plugin_env(tmp_path):
    (tmp_path / "uniform_method.py").write_text(textwrap.dedent(PLUGIN))
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "PYTHONPATH": path, METHODS_ENV: "uniform_method", "INFOCAM_PROGRESS": "0"}


def _run(args, env):
    out = subprocess.run([sys.executable, "-m", "infocam", *args], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def test_dry_run_lists_the_added_method(plugin_env):
    out = _run(["train", "lite0-cub-cpu", "--dry-run", "-s", "device=cpu"], plugin_env)
    assert '"uniform"' in out.stdout or "'uniform'" in out.stdout


# Chapter 4 at its smoke profile; chapter 5 on less than its smoke profile (4 bird classes, one rung,
# 100 Tiny-ImageNet images, a coarse threshold grid): each still scores every method of the catalogue on
# every dataset through the one localisation pipeline the plugin joins.
CHAPTERS = {"04_infocam": [],
            "05_trained_wsol": ["-p", "ladder=[head]", "-p", "cub_classes=4", "-p", "tiny_limit=100", "-p",
                                "ladder_check_size=0", "-p", "probe_epochs=1", "-p", "threshold_step=0.1"]}


@pytest.mark.slow  # runs chapters 4 and 5 in Jupyter kernels
def test_chapters_and_summary_score_the_added_method(plugin_env, tmp_path):
    runs_dir = tmp_path / "runs"
    procs = {}  # both chapters at once, as the book build runs them
    try:
        for chapter, overrides in CHAPTERS.items():
            procs[chapter] = subprocess.Popen(
                [sys.executable, "-m", "infocam", "run", chapter, "--profile", "smoke", "--runs-dir", str(runs_dir),
                 *overrides], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=plugin_env, cwd=REPO)
        for chapter, proc in procs.items():
            out, err = proc.communicate(timeout=900)
            assert proc.returncode == 0, f"{chapter}: " + out[-3000:] + err[-3000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    metrics = {}
    for chapter in CHAPTERS:
        (results,) = (runs_dir / chapter).glob("*/results.json")
        metrics[chapter] = json.loads(results.read_text())["metrics"]
    for chapter, dataset in (("04_infocam", "cluttered_mnist"), ("05_trained_wsol", "cub"), ("05_trained_wsol", "tiny_imagenet")):
        methods = metrics[chapter]["localisation"][dataset]["methods"]
        assert methods["uniform"]["label"] == "uniform map (test method)" and methods["uniform"]["role"] == "other"
        assert {"cam", "centre"} <= set(methods)
    table = summary.localisation_methods(metrics)
    assert (table["id"] == "uniform").sum() >= 3
