"""A wide set of bad inputs (issue 10): each gets one clear error before heavy work, or a clean result.

Parameters of the real chapters (their constraints), data layouts, corrupt files, loss labels,
run folders, interruptions (a real SIGTERM / SIGINT to a running ``infocam run``) and concurrent
runs. Runs use a tiny generated chapter in a temporary book, not the real chapters.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch
import yaml

from infocam import cli, losses, runs
from infocam.data.cub import find_cub, load_cub, resolve_cub
from infocam.data.mnist import load_mnist
from infocam.paths import DataError, cache_dir, resolve_data_root
from tests.test_cub import make_tiny_cub
from tests.test_data_mnist import _write_mnist

REPO = Path(__file__).resolve().parents[1]

# -- a tiny chapter in a temporary book -----------------------------------------------------------

TOY_CODE = """import os, time
from infocam import runs
from infocam.paths import DataError
runs.record(kernel_pid=os.getpid())
if fail == "data":
    raise DataError("the toy data is broken: fix it")
assert fail != "assert", "a claim of the toy chapter failed"
time.sleep(sleep)
runs.section("main", ran=True)
runs.section("extra", ran=extra, why="extra=False")
runs.record(data_source="toy", value=seed * 2)
"""


def make_book(root: Path) -> Path:
    """``root/book`` with one chapter ``01_toy`` (parameters seed, sleep, fail, extra) and its profiles."""
    book = root / "book"
    (book / "params").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('seed = 0\nsleep = 0.0\nfail = ""\nextra = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(TOY_CODE)]
    nbformat.write(nb, book / "01_toy.ipynb")
    profiles = {
        "smoke": {}, "default": {"seed": 0, "sleep": 0.0, "fail": "", "extra": False}, "paper": {"seed": 1},
        "constraints": {"seed": {"type": "integer", "minimum": 0}, "sleep": {"type": "number", "minimum": 0},
                        "fail": {"enum": ["", "data", "assert"]}, "extra": {"type": "boolean"}},
    }
    (book / "params" / "01_toy.yml").write_text(yaml.safe_dump(profiles))
    return book


@pytest.fixture
def book(tmp_path):
    return make_book(tmp_path)


def infocam_cli(book: Path, runs_dir: Path, *params: str) -> subprocess.Popen:
    """``python -m infocam run toy`` on the toy book as a subprocess."""
    args = [sys.executable, "-m", "infocam", "run", "toy", "--book-dir", str(book), "--runs-dir", str(runs_dir)]
    for p in params:
        args += ["-p", p]
    env = dict(os.environ, PYTHONPATH=str(REPO), INFOCAM_PROGRESS="0")
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_sigint_as_in_a_terminal)


def _sigint_as_in_a_terminal():
    """Child side: SIGINT back to its default, as a terminal gives it. A test session started in the
    background (``cmd &`` without job control) ignores SIGINT, and a child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kernel_pid(runs_dir: Path, timeout: float = 90) -> int:
    """Wait until the toy chapter's kernel has recorded its pid (the run is under way)."""
    end = time.time() + timeout
    while time.time() < end:
        for m in runs_dir.glob("01_toy/.*.tmp/metrics.json"):
            try:
                return json.loads(m.read_text())["kernel_pid"]
            except (ValueError, KeyError, OSError):
                pass
        time.sleep(0.1)
    raise AssertionError("the toy chapter did not start")


def _gone(pid: int, timeout: float = 10) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


# -- 1. parameter values of the real chapters, refused before anything runs -------------------------

BAD_VALUES = [
    ("01_theory", {"seed": -1}, "seed=-1.*allowed: integer ≥ 0"),
    ("01_theory", {"num_classes": 1}, "num_classes=1.*allowed: integer ≥ 2"),
    ("01_theory", {"num_classes": 10**6}, "num_classes=1000000 .*greater than the maximum of 100.*integer ≥ 2, ≤ 100"),
    ("01_theory", {"num_x": 10**7}, "num_x=10000000 .*≤ 1000"),
    ("01_theory", {"concentration": 0.0}, "concentration=0.0.*allowed: number > 0"),
    ("01_theory", {"imbalance": 0.5}, "imbalance=0.5.*allowed: number ≥ 1"),
    ("01_theory", {"lr": -0.1}, "lr=-0.1"),
    ("02_synthetic_mi", {"seeds": 0}, "seeds=0.*allowed: integer ≥ 1"),
    ("02_synthetic_mi", {"dims": []}, "dims=\\[\\].*at least 1 item"),
    ("02_synthetic_mi", {"dims": [1, 0]}, "dims\\[1\\]: 0 is less than the minimum of 1"),
    ("02_synthetic_mi", {"dims": [1, 2.5]}, "dims\\[1\\]: 2.5 is not of type 'integer'"),
    ("02_synthetic_mi", {"class_counts": [1, 4]}, "class_counts\\[0\\]"),
    ("02_synthetic_mi", {"sweep_scales": [-1.0]}, "sweep_scales\\[0\\]"),
    ("02_synthetic_mi", {"infonce_batch": 1}, "infonce_batch=1"),
    ("03_imbalanced", {"losses": ["softmax", "pc_softmax", "focal"]}, "losses\\[2\\]: 'focal' is not one of softmax"),
    ("03_imbalanced", {"losses": ["softmax", "logit_adjusted"]}, "lacks 'pc_softmax'"),
    ("03_imbalanced", {"losses": ["softmax", "pc_softmax", "softmax"]}, "non-unique|no repeats"),
    ("03_imbalanced", {"mnist_source": "kaggle"}, "mnist_source='kaggle'.*one of auto, full, embedded"),
    ("03_imbalanced", {"backbone": "vgg16"}, "backbone='vgg16'.*efficientnet_lite0"),
    ("03_imbalanced", {"cub_classes": 1}, "cub_classes=1.*0 \\(all classes\\) or an integer ≥ 2"),
    ("03_imbalanced", {"cub_classes": -3}, "cub_classes=-3"),
    ("03_imbalanced", {"momentum": 1.0}, "momentum=1.0.*< 1"),
    ("03_imbalanced", {"image_size": 16}, "image_size=16"),
    ("03_imbalanced", {"cub_root": "/no/such/cub"}, "cub_root='/no/such/cub'.*does not exist"),
    ("04_infocam", {"canvas": 20}, "canvas=20.*integer ≥ 28"),
    ("04_infocam", {"fragment": 29}, "fragment=29.*≤ 28"),
    ("04_infocam", {"widths": [8, 16, 32]}, "widths=.*exactly 4 items"),
    ("04_infocam", {"threshold_step": 0.0}, "threshold_step=0.0"),
    ("04_infocam", {"photos": ["lena"]}, "photos\\[0\\]"),
    ("04_infocam", {"claim_tol": -1.0}, "claim_tol=-1.0"),
    ("04_infocam", {"cub_image_size": 100}, "cub_image_size=100.*multiple of 32"),
    ("04_infocam", {"drop_rate": 1.5}, "drop_rate=1.5"),
]


@pytest.mark.parametrize("chapter, override, message", BAD_VALUES, ids=[f"{c}-{next(iter(o))}" for c, o, _ in BAD_VALUES])
def test_bad_value_is_refused_with_one_line(chapter, override, message):
    with pytest.raises(runs.ParameterError, match=message) as info:
        runs.resolve_parameters(chapter, "smoke", override)
    assert "\n" not in str(info.value) and f"chapter {chapter}" in str(info.value)


@pytest.mark.parametrize("chapter", [c for c in runs.chapters() if "data_root" in runs.parameters_cell(runs.BOOK / f"{c}.ipynb")])
def test_data_root_that_does_not_exist_is_an_error_in_every_chapter(chapter):
    with pytest.raises(runs.ParameterError, match="data_root='/does/not/exist'.*does not exist"):
        runs.resolve_parameters(chapter, "smoke", {"data_root": "/does/not/exist"})


def test_data_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(runs.ParameterError, match="is a file, not a folder"):
        runs.resolve_parameters("03_imbalanced", "smoke", {"data_root": str(tmp_path / "f")})


def test_relative_data_root_is_made_absolute_against_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    params = runs.resolve_parameters("03_imbalanced", "smoke", {"data_root": "data", "cub_root": "none"})
    assert params["data_root"] == str(tmp_path / "data") and params["cub_root"] == "none"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [1.0, float("-inf")]])
def test_nan_and_inf_are_refused(value):
    name = "sweep_scales" if isinstance(value, list) else "lr"
    with pytest.raises(runs.ParameterError, match="finite"):
        runs.resolve_parameters("02_synthetic_mi", "smoke", {name: value})


@pytest.fixture
def cpu_only(monkeypatch):
    """This machine as one without CUDA or MPS, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_device_names_are_checked(cpu_only):
    with pytest.raises(runs.ParameterError, match="device='gpu'.*'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"):
        runs.check_values("01_theory", {"device": "gpu"})
    for ok in ("auto", "cpu"):
        runs.check_values("01_theory", {"device": ok})
    for missing in ("cuda", "cuda:1", "mps"):
        with pytest.raises(runs.ParameterError, match=f"device='{missing}' .*not allowed .*available: cpu"):
            runs.check_values("01_theory", {"device": missing})


def test_cuda_without_cuda_is_refused_before_the_kernel_starts(cpu_only, tmp_path, capsys):
    code = cli.main(["run", "theory", "-p", "device=cuda", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "device='cuda' of chapter 01_theory is not allowed (device 'cuda' asked for CUDA, but this machine has none" in err
    assert not (tmp_path / "runs").exists()  # nothing started: no run folder, no kernel


def test_cli_prints_the_value_error_as_one_line(capsys):
    code = cli.main(["run", "03_imbalanced", "--profile", "smoke", "-p", "seeds=0", "--runs-dir", "/nonexistent/never-created"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("infocam: error: parameter seeds=0 of chapter 03_imbalanced") and "integer ≥ 1" in err
    assert not Path("/nonexistent/never-created").exists()


def test_prepare_checks_values_too(tmp_path):
    with pytest.raises(runs.ParameterError, match="seeds=0"):
        runs.prepare("03_imbalanced", "smoke", tmp_path / "out", {"seeds": 0})
    assert not (tmp_path / "out").exists()


# -- 2. data layouts ----------------------------------------------------------------------------------


def test_mnist_idx_files_in_mnist_instead_of_raw(tmp_path):
    raw = _write_mnist(tmp_path)
    for f in raw.iterdir():
        f.rename(tmp_path / "MNIST" / f.name)
    raw.rmdir()
    for source in ("auto", "full"):
        with pytest.raises(DataError, match=r"directly in .*MNIST: move them into .*MNIST/raw"):
            load_mnist(source, data_root=tmp_path)


def test_mnist_idx_files_directly_in_the_data_root(tmp_path):
    raw = _write_mnist(tmp_path)
    for f in raw.iterdir():
        f.rename(tmp_path / f.name)
    with pytest.raises(DataError, match="move them into"):
        load_mnist("auto", data_root=tmp_path)


def test_mnist_folder_in_lower_case(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "MNIST").rename(tmp_path / "mnist")
    with pytest.raises(DataError, match="rename it to .*MNIST"):
        load_mnist("auto", data_root=tmp_path)


def test_mnist_folder_without_raw(tmp_path):
    (tmp_path / "MNIST" / "processed").mkdir(parents=True)
    with pytest.raises(DataError, match="has no raw/ folder.*MNIST/raw/"):
        load_mnist("auto", data_root=tmp_path)


def test_mnist_raw_missing_one_file(tmp_path):
    raw = _write_mnist(tmp_path)
    (raw / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte\\[.gz\\] is missing"):
        load_mnist("auto", data_root=tmp_path)


def test_mnist_auto_without_a_folder_says_why_it_fell_back(tmp_path, monkeypatch):
    assert "auto: no MNIST/ folder under the data root" in load_mnist("auto", data_root=tmp_path).source
    monkeypatch.delenv("INFOCAM_DATA", raising=False)
    assert "auto: no data root set" in load_mnist("auto").source


def test_mnist_gz_that_is_not_gzip(tmp_path):
    raw = _write_mnist(tmp_path, gz=True)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz is not a valid gzip file"):
        load_mnist("full", "test", data_root=tmp_path)


def test_mnist_idx_with_a_wrong_magic_number(tmp_path):
    raw = _write_mnist(tmp_path)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte is not an unsigned-byte IDX file"):
        load_mnist("full", data_root=tmp_path)


@pytest.mark.parametrize("name", ["images.txt", "image_class_labels.txt", "train_test_split.txt",
                                  "bounding_boxes.txt", "classes.txt"])
def test_cub_folder_missing_one_metadata_file_names_it(tmp_path, name):
    folder = make_tiny_cub(tmp_path, num_classes=2, n_train=2, n_test=2)
    (folder / name).unlink()
    for find in (lambda: find_cub(tmp_path), lambda: resolve_cub("", tmp_path), lambda: load_cub(data_root=tmp_path)):
        with pytest.raises(DataError, match=f"{name} is missing"):
            find()


def test_cub_folder_without_images(tmp_path):
    folder = make_tiny_cub(tmp_path, num_classes=2, n_train=2, n_test=2)
    (folder / "images").rename(folder / "pictures")
    with pytest.raises(DataError, match="has no images/ folder"):
        find_cub(tmp_path)


def test_cub_folder_unpacked_twice(tmp_path):
    inner = make_tiny_cub(tmp_path / "CUB_200_2011", num_classes=2, n_train=2, n_test=2)
    assert inner == tmp_path / "CUB_200_2011" / "CUB_200_2011"
    with pytest.raises(DataError, match="holds another CUB_200_2011/ inside it"):
        find_cub(tmp_path)


def test_cub_folder_in_lower_case(tmp_path):
    folder = make_tiny_cub(tmp_path, num_classes=2, n_train=2, n_test=2)
    folder.rename(tmp_path / "cub_200_2011")
    with pytest.raises(DataError, match="rename it to .*CUB_200_2011"):
        find_cub(tmp_path)


def test_cub_root_that_is_a_file(tmp_path):
    (tmp_path / "cub.tgz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError, match="is a file, not a folder"):
        resolve_cub(str(tmp_path / "cub.tgz"))


def test_cub_none_and_no_cub_folder_are_clean_skips(tmp_path):
    assert resolve_cub("none", "/any/thing") is None
    assert resolve_cub("", tmp_path) is None  # a data root without CUB: nothing to do, no error


def test_truncated_jpeg_is_named(tmp_path):
    folder = make_tiny_cub(tmp_path, num_classes=2, n_train=2, n_test=2)
    image = folder / "images" / "005.Bird_1" / "img_003.jpg"
    image.write_bytes(image.read_bytes()[: len(image.read_bytes()) // 2])
    with pytest.raises(DataError, match=r"images.txt:\d+: .*img_003.jpg is cut short \(no JPEG end marker\)"):
        load_cub(folder)


def test_empty_image_file_is_named(tmp_path):
    folder = make_tiny_cub(tmp_path, num_classes=2, n_train=2, n_test=2)
    (folder / "images" / "003.Bird_0" / "img_000.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="img_000.jpg is not a readable image"):
        load_cub(folder)


def test_data_root_that_is_a_file_is_a_data_error(tmp_path, monkeypatch):
    (tmp_path / "root").write_text("not a folder")
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path / "root"))
    with pytest.raises(DataError, match="is not a folder"):
        resolve_data_root()
    with pytest.raises(DataError, match="is not a folder"):
        find_cub()


def test_cache_path_that_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("x")
    monkeypatch.setenv("INFOCAM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="cache folder .* cannot be created.*INFOCAM_CACHE"):
        cache_dir()


# -- 3. loss labels -------------------------------------------------------------------------------------

LOGITS = torch.zeros(3, 4)
PRIORS = [0.25] * 4


@pytest.mark.parametrize("name", losses.LOSSES)
@pytest.mark.parametrize("targets, message", [
    (torch.tensor([0, 1, 4]), r"targets must lie in 0..3 \(num_classes = 4\); found 0..4"),
    (torch.tensor([0, -1, 2]), r"targets must lie in 0..3 .*found -1..2"),
    (torch.tensor([0.0, 1.0, 2.0]), "targets must be integers 0..3"),
])
def test_loss_labels_out_of_range(name, targets, message):
    with pytest.raises(ValueError, match=message):
        losses.get_loss(name, PRIORS)(LOGITS, targets)


def test_label_priors_refuse_labels_beyond_num_classes():
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        losses.label_priors([0, 1, 3], 3)
    with pytest.raises(ValueError, match="found -1..1"):
        losses.label_priors([0, 1, -1], 3)


# -- 4. run folders, interruptions, concurrency ---------------------------------------------------------


def test_runs_dir_that_is_a_file(book, tmp_path, capsys):
    (tmp_path / "runs").write_text("x")
    code = cli.main(["run", "toy", "--book-dir", str(book), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "is not a folder (a file is in the way)" in err


def test_runs_dir_below_a_file(book, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(runs.RunError, match="is not a folder"):
        runs.run_chapter("toy", "smoke", runs_dir=tmp_path / "f" / "runs", book_dir=book)


def _fake_tmp(chapter_dir: Path, name: str, owner: dict | None) -> Path:
    tmp = chapter_dir / f".{name}.tmp"
    tmp.mkdir(parents=True)
    (tmp / "01_toy.ipynb").write_text("{}")
    if owner is not None:
        (tmp / runs.OWNER).write_text(json.dumps(owner))
    return tmp


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temp_folders_of_dead_runs_are_swept(tmp_path):
    d = tmp_path / "01_toy"
    host = socket.gethostname()
    dead = _fake_tmp(d, "20260101-000000", {"pid": _dead_pid(), "host": host, "start": None})
    legacy = _fake_tmp(d, "20260101-000001", None)
    reused = _fake_tmp(d, "20260101-000002", {"pid": os.getpid(), "host": host, "start": "not-my-start-time"})
    alive = _fake_tmp(d, "20260101-000003", runs._owner())
    elsewhere = _fake_tmp(d, "20260101-000004", {"pid": 1, "host": host + "-other", "start": None})
    swept = runs.sweep_stale(d)
    assert sorted(p.name for p in swept) == ["20260101-000000.failed", "20260101-000001.failed"] + (
        ["20260101-000002.failed"] if runs._start_time(os.getpid()) else [])
    assert not dead.exists() and not legacy.exists()
    assert "interrupted" in (d / "20260101-000000.failed" / runs.ERROR_FILE).read_text()
    assert (d / "20260101-000000.failed" / "01_toy.ipynb").exists()  # the half-run notebook is kept
    assert alive.exists() and elsewhere.exists()
    assert reused.exists() != bool(runs._start_time(os.getpid()))


def test_run_names_are_unique_within_one_second(tmp_path, monkeypatch):
    d = tmp_path / "01_toy"
    d.mkdir()
    (d / "20260101-000000").mkdir()  # a finished run
    (d / "20260101-000000-2.failed").mkdir()  # a failed one
    monkeypatch.setattr(runs, "_stamp", lambda: "20260101-000000")  # every run starts in the same second
    names = [runs._reserve(d)[0] for _ in range(3)]
    assert names == ["20260101-000000-3", "20260101-000000-4", "20260101-000000-5"]
    (d / "20260101-000000-3" / "x").mkdir(parents=True)  # taken meanwhile: the finished run moves aside
    assert runs._place(d / ".20260101-000000-3.tmp", d, "20260101-000000-3").name == "20260101-000000-3-2"


def test_section_needs_a_reason_when_skipped():
    with pytest.raises(ValueError, match="say why"):
        runs.section("cub", ran=False)


@pytest.mark.slow  # starts a Jupyter kernel
def test_run_records_sections_and_writes_nothing_half(book, tmp_path):
    out = runs.run_chapter("toy", "smoke", {"seed": 3}, runs_dir=tmp_path / "runs", book_dir=book)
    results = json.loads((out / "results.json").read_text())
    assert results["sections"] == {"main": {"ran": True, "why": ""}, "extra": {"ran": False, "why": "extra=False"}}
    assert results["metrics"]["value"] == 6
    assert sorted(p.name for p in out.iterdir()) == ["01_toy.ipynb", runs.KERNEL_LOG, "results.json"]
    assert [p.name for p in (tmp_path / "runs" / "01_toy").iterdir()] == [out.name]


@pytest.mark.slow  # starts a Jupyter kernel
def test_successful_run_prints_its_result_not_the_kernels_log(book, tmp_path):
    proc = infocam_cli(book, tmp_path / "runs", "seed=2")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert err == "" and out.startswith("results: ") and out.count("\n") == 1
    (run,) = (tmp_path / "runs" / "01_toy").iterdir()
    assert "IPKernelApp" in (run / runs.KERNEL_LOG).read_text()  # kept for when the kernel itself fails


@pytest.mark.slow  # starts a Jupyter kernel
def test_package_error_inside_a_chapter_is_one_line(book, tmp_path, capsys):
    code = cli.main(["run", "toy", "--book-dir", str(book), "--runs-dir", str(tmp_path / "runs"), "-p", "fail=data"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "chapter 01_toy stopped: DataError: the toy data is broken: fix it (executed notebook kept at" in err
    failed = next((tmp_path / "runs" / "01_toy").glob("*.failed"))
    assert (failed / "01_toy.ipynb").exists() and "DataError" in (failed / runs.ERROR_FILE).read_text()


@pytest.mark.slow  # starts a Jupyter kernel
def test_other_errors_keep_the_traceback_and_say_where_the_notebook_is(book, tmp_path, capsys):
    code = cli.main(["run", "toy", "--book-dir", str(book), "--runs-dir", str(tmp_path / "runs"), "-p", "fail=assert"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err.splitlines()[-1]
    assert "AssertionError" in err and "a claim of the toy chapter failed" in err
    assert err.splitlines()[-1].startswith("infocam: error: chapter 01_toy stopped: AssertionError")


@pytest.mark.slow  # starts a Jupyter kernel
@pytest.mark.parametrize("when", ["results.json", runs.OWNER])
def test_full_disk_is_one_line_and_leaves_nothing_half_written(book, tmp_path, monkeypatch, capsys, when):
    write = runs.atomic_write_text

    def full(path, text):
        if Path(path).name == when:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write(path, text)

    monkeypatch.setattr(runs, "atomic_write_text", full)
    code = cli.main(["run", "toy", "--book-dir", str(book), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "No space left on device" in err and "free some space" in err
    left = [p.name for p in (tmp_path / "runs" / "01_toy").iterdir()]
    assert left == [] if when == runs.OWNER else len(left) == 1 and left[0].endswith(".failed")


def test_full_disk_in_the_cli_is_one_line(monkeypatch, capsys):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "/somewhere/file")

    monkeypatch.setattr(runs, "resolve_chapter", full)
    assert cli.main(["run", "theory"]) == 1
    err = capsys.readouterr().err
    assert err == "infocam: error: No space left on device: /somewhere/file; free some space and try again\n"


@pytest.mark.slow  # starts a Jupyter kernel
@pytest.mark.parametrize("sig, code, why", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_signal_to_a_running_infocam_run_stops_the_kernel_and_marks_the_run_failed(book, tmp_path, sig, code, why):
    proc = infocam_cli(book, tmp_path / "runs", "sleep=120")
    try:
        kernel = _kernel_pid(tmp_path / "runs")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "infocam: interrupted" in err and "partial run kept in" in err
    assert _gone(kernel), "the kernel outlived the interrupted run"
    folders = list((tmp_path / "runs" / "01_toy").iterdir())
    assert len(folders) == 1 and folders[0].name.endswith(".failed")
    assert why in (folders[0] / runs.ERROR_FILE).read_text()
    assert not (folders[0] / runs.OWNER).exists() and not (folders[0] / "results.json").exists()


@pytest.mark.slow  # starts a Jupyter kernel
def test_sigkilled_run_is_swept_by_the_next_run(book, tmp_path):
    proc = infocam_cli(book, tmp_path / "runs", "sleep=120")
    try:
        kernel = _kernel_pid(tmp_path / "runs")
        proc.kill()  # SIGKILL: no handler runs, the temporary folder stays behind
        proc.wait(timeout=30)
    finally:
        proc.kill()
    os.kill(kernel, signal.SIGKILL)  # the orphaned kernel (a real SIGKILL leaves it to time out)
    assert len(list((tmp_path / "runs" / "01_toy").glob(".*.tmp"))) == 1
    out = runs.run_chapter("toy", "smoke", runs_dir=tmp_path / "runs", book_dir=book)
    names = sorted(p.name for p in (tmp_path / "runs" / "01_toy").iterdir())
    assert len(names) == 2 and out.name in names and any(n.endswith(".failed") for n in names)


@pytest.mark.slow  # starts a Jupyter kernel
def test_concurrent_runs_of_one_chapter_both_finish(book, tmp_path):
    procs = [infocam_cli(book, tmp_path / "runs", f"seed={s}") for s in (1, 2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = sorted((tmp_path / "runs" / "01_toy").iterdir())
    assert len(folders) == 2 and not any(f.name.startswith(".") or f.name.endswith(".failed") for f in folders)
    values = sorted(json.loads((f / "results.json").read_text())["metrics"]["value"] for f in folders)
    assert values == [2, 4]
