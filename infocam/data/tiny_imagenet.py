"""Tiny-ImageNet-200 in its official folder layout (Le & Yang, CS231N 2015).

Layout under the data root, folder ``tiny-imagenet-200``:

* ``wnids.txt`` — the 200 WordNet ids, one a line (their order gives the labels 0..199);
* ``words.txt`` — ``wnid<TAB>names`` for (all of) WordNet;
* ``train/<wnid>/images/<wnid>_<k>.JPEG`` with ``train/<wnid>/<wnid>_boxes.txt``
  (``file x0 y0 x1 y1``);
* ``val/images/val_<i>.JPEG`` with ``val/val_annotations.txt`` (``file wnid x0 y0 x1 y1``).

Boxes in both files are **corners, inclusive** (x0 y0 x1 y1 with x1, y1 the last pixel inside the
box), not x y w h — the original infoCAM code read them as x y w h. The loader returns them as
they are, which is the reference evaluator's convention (:mod:`infocam.wsol`, +1 IoU), and
:func:`as_xywh_misread` gives what the original code's reading made of them. Images are 64×64 and some are greyscale;
the feature pipeline converts every image to RGB. Any bad line is one :class:`DataError` naming
the file and line. Works with any subset in the same layout (fewer training images per class).
Used in chapter 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infocam.paths import DataError, find_dataset, read_utf8

FOLDERS = ("tiny-imagenet-200",)
SPLITS = ("train", "val")
IMAGE_SIZE = 64


@dataclass(frozen=True)
class TinyImageNet:
    """One split of Tiny-ImageNet: image paths, 0-based labels (order of wnids.txt), xyxy boxes."""

    root: Path
    split: str
    paths: list  # N absolute image paths
    labels: np.ndarray  # (N,) int64 in 0..num_classes-1
    boxes: np.ndarray  # (N, 4) float64 x0, y0, x1, y1 inclusive corners, as in the files
    wnids: list  # K class ids in the order of wnids.txt
    class_names: list  # K first names from words.txt
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.wnids)

    def __repr__(self) -> str:
        return f"TinyImageNet({self.source})"


def find_tiny_imagenet(data_root=None) -> Path | None:
    """The ``tiny-imagenet-200`` folder under the data root, or None."""
    folder = find_dataset(FOLDERS, data_root)
    return folder if folder is not None and (folder / "wnids.txt").is_file() else None


def _lines(path: Path):
    if not path.is_file():
        raise DataError(f"{path} is missing: a Tiny-ImageNet folder needs wnids.txt, words.txt, "
                        "train/<wnid>/<wnid>_boxes.txt and val/val_annotations.txt (official layout)")
    for lineno, line in enumerate(read_utf8(path).splitlines(), 1):
        if line.strip():
            yield lineno, line


def _read_wnids(root: Path) -> list[str]:
    wnids, seen = [], {}
    for lineno, line in _lines(root / "wnids.txt"):
        parts = line.split()
        if len(parts) != 1:
            raise DataError(f"{root / 'wnids.txt'}:{lineno}: expected one WordNet id, got {line!r}")
        if parts[0] in seen:
            raise DataError(f"{root / 'wnids.txt'}:{lineno}: {parts[0]} already listed at line {seen[parts[0]]}")
        seen[parts[0]] = lineno
        wnids.append(parts[0])
    if not wnids:
        raise DataError(f"{root / 'wnids.txt'} is empty")
    return wnids


def _read_words(root: Path, wnids: list[str]) -> list[str]:
    wanted, names = set(wnids), {}
    for lineno, line in _lines(root / "words.txt"):
        parts = line.split("\t", 1)
        if len(parts) != 2:
            raise DataError(f"{root / 'words.txt'}:{lineno}: expected 'wnid<TAB>names', got {line!r}")
        if parts[0] in wanted:
            names[parts[0]] = parts[1].split(",")[0].strip()
    missing = [w for w in wnids if w not in names]
    if missing:
        raise DataError(f"{root / 'words.txt'} has no names for {len(missing)} ids of wnids.txt, e.g. {missing[:3]}")
    return [names[w] for w in wnids]


def _box(path: Path, lineno: int, line: str, fields: list[str]) -> list[float]:
    try:
        x0, y0, x1, y1 = (int(f) for f in fields)
    except ValueError:
        raise DataError(f"{path}:{lineno}: box corners must be integers x0 y0 x1 y1, got {line!r}") from None
    if not (0 <= x0 <= x1 and 0 <= y0 <= y1):
        raise DataError(f"{path}:{lineno}: invalid box x0={x0} y0={y0} x1={x1} y1={y1} "
                        "(corners, inclusive: need 0 <= x0 <= x1 and 0 <= y0 <= y1)")
    return [x0, y0, x1, y1]


def _once(seen: dict, name: str, path: Path, lineno: int) -> None:
    """An image listed twice would be scored twice (its box counted double): refuse it, naming both lines."""
    if name in seen:
        raise DataError(f"{path}:{lineno}: image {name} is already listed at line {seen[name]}; "
                        "remove the duplicate row")
    seen[name] = lineno


def _read_val(root: Path, to_label: dict):
    path = root / "val" / "val_annotations.txt"
    paths, labels, boxes, seen = [], [], [], {}
    for lineno, line in _lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise DataError(f"{path}:{lineno}: expected 6 fields 'file wnid x0 y0 x1 y1', got {len(parts)}: {line!r}")
        _once(seen, parts[0], path, lineno)
        if parts[1] not in to_label:
            raise DataError(f"{path}:{lineno}: class {parts[1]} is not in wnids.txt")
        paths.append(root / "val" / "images" / parts[0])
        labels.append(to_label[parts[1]])
        boxes.append(_box(path, lineno, line, parts[2:]))
    return paths, labels, boxes, path


def _read_train(root: Path, wnids: list[str]):
    paths, labels, boxes = [], [], []
    for label, wnid in enumerate(wnids):
        path = root / "train" / wnid / f"{wnid}_boxes.txt"
        seen = {}
        for lineno, line in _lines(path):
            parts = line.split()
            if len(parts) != 5:
                raise DataError(f"{path}:{lineno}: expected 5 fields 'file x0 y0 x1 y1', got {len(parts)}: {line!r}")
            _once(seen, parts[0], path, lineno)
            if not parts[0].startswith(f"{wnid}_"):
                raise DataError(f"{path}:{lineno}: image {parts[0]} does not belong to class {wnid}")
            paths.append(root / "train" / wnid / "images" / parts[0])
            labels.append(label)
            boxes.append(_box(path, lineno, line, parts[1:]))
    return paths, labels, boxes


def load_tiny_imagenet(root=None, split: str = "val", *, data_root=None, check_images: bool = True) -> TinyImageNet:
    """Load and validate one split (``"val"`` or ``"train"``) of a Tiny-ImageNet folder.

    ``root`` is the ``tiny-imagenet-200`` folder or a folder holding it; if None the data root
    is searched. ``check_images`` checks that every listed image file exists and that its box
    lies inside the 64×64 image (file listing only, no decoding).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown Tiny-ImageNet split {split!r}; choose one of {SPLITS}")
    if root in (None, ""):
        root = find_tiny_imagenet(data_root)
        if root is None:
            raise DataError("no Tiny-ImageNet folder found: set INFOCAM_DATA (or data_root) to a folder "
                            f"holding {FOLDERS[0]}/ (official layout with wnids.txt)")
    root = Path(root).expanduser()
    if not (root / "wnids.txt").is_file() and (root / FOLDERS[0] / "wnids.txt").is_file():
        root = root / FOLDERS[0]
    if not root.is_dir():
        raise DataError(f"Tiny-ImageNet folder {str(root)!r} does not exist")
    wnids = _read_wnids(root)
    names = _read_words(root, wnids)
    to_label = {w: k for k, w in enumerate(wnids)}
    if split == "val":
        paths, labels, boxes, listing = _read_val(root, to_label)
    else:
        paths, labels, boxes = _read_train(root, wnids)
        listing = root / "train"
    if not paths:
        raise DataError(f"{listing} lists no images")
    box_arr = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    if check_images:
        _check_files(root, split, paths, box_arr)
    labels = np.array(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=len(wnids))
    per_class = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    return TinyImageNet(
        root=root, split=split, paths=paths, labels=labels, boxes=box_arr, wnids=wnids, class_names=names,
        source=(f"Tiny-ImageNet-200 {split} split at {root}: {len(paths)} images with boxes, "
                f"{len(wnids)} classes ({per_class} per class), 64x64 px"),
    )


def _check_files(root: Path, split: str, paths: list, boxes: np.ndarray) -> None:
    folders = {p.parent for p in paths}
    present = set()
    for folder in folders:
        if folder.is_dir():
            present.update(p.name for p in folder.iterdir())
    for n, p in enumerate(paths):
        if p.name not in present or not p.parent.is_dir():
            where = "val/val_annotations.txt" if split == "val" else f"train/{p.parent.parent.name}/{p.parent.parent.name}_boxes.txt"
            raise DataError(f"{root / where}: image {p.name} is listed but {p} is missing")
    outside = np.flatnonzero((boxes[:, 2] >= IMAGE_SIZE) | (boxes[:, 3] >= IMAGE_SIZE))
    if len(outside):
        raise DataError(f"box of {paths[outside[0]]} ({boxes[outside[0]].tolist()}, inclusive) lies outside "
                        f"the {IMAGE_SIZE}x{IMAGE_SIZE} image")


def as_xywh_misread(boxes: np.ndarray) -> np.ndarray:
    """The original code's reading of the file's corners x0 y0 x1 y1 as x y w h, as xyxy boxes.

    Taken as x, y, w, h they give the box (x0, y0, x0 + x1, y0 + y1), clipped to the last pixel
    (63): always too large, and shifted right and down. Used in chapter 5's protocol comparison.
    """
    b = np.asarray(boxes, dtype=np.float64)
    last = IMAGE_SIZE - 1
    return np.stack([b[:, 0], b[:, 1], np.minimum(b[:, 0] + b[:, 2], last), np.minimum(b[:, 1] + b[:, 3], last)], axis=1)


def scored_subset(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted positions of the validation images a run scores: all ``n`` for ``limit`` 0, else ``limit``
    of them drawn without replacement by ``seed`` (chapter 5's ``tiny_limit``; the book's feature pass
    extracts exactly these, so a chapter never waits for maps it does not score)."""
    if limit < 0:
        raise ValueError(f"tiny_limit must be 0 (all {n} images) or a positive count, got {limit}")
    return np.sort(np.random.default_rng(seed).permutation(n)[: limit or n])


def make_fixture(root: Path, num_classes: int = 4, n_train: int = 3, n_val: int = 5, seed: int = 0,
                 wnids: list[str] | None = None) -> Path:
    """A tiny generated Tiny-ImageNet folder (official layout): a bright square per image on noise,
    its box the square, some images greyscale. Used by the tests and by chapter 5 without real data.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(root) / FOLDERS[0]
    wnids = list(wnids) if wnids else [f"n{1000000 + 7 * k:08d}" for k in range(num_classes)]
    (folder / "val" / "images").mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (folder / "words.txt").write_text("n00000001\tentity\n" + "".join(f"{w}\tthing {k}, object\n" for k, w in enumerate(wnids)))

    def image(path: Path, k: int) -> list[int]:
        x0, y0 = (int(v) for v in rng.integers(0, 32, size=2))
        x1, y1 = x0 + int(rng.integers(12, 32)), y0 + int(rng.integers(12, 32))
        pixels = rng.integers(0, 80, size=(IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.uint8)
        pixels[y0 : y1 + 1, x0 : x1 + 1] = [200, 40 + 50 * (k % 4), 255 - 40 * (k % 5)]
        im = Image.fromarray(pixels)
        (im.convert("L") if rng.random() < 0.3 else im).save(path, quality=95)
        return [x0, y0, x1, y1]

    val_rows = []
    for k, wnid in enumerate(wnids):
        (folder / "train" / wnid / "images").mkdir(parents=True, exist_ok=True)
        rows = []
        for j in range(n_train):
            name = f"{wnid}_{j}.JPEG"
            rows.append("\t".join(map(str, [name, *image(folder / "train" / wnid / "images" / name, k)])))
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(rows) + "\n")
        for j in range(n_val):
            name = f"val_{len(val_rows)}.JPEG"
            val_rows.append("\t".join(map(str, [name, wnid, *image(folder / "val" / "images" / name, k)])))
    (folder / "val" / "val_annotations.txt").write_text("\n".join(val_rows) + "\n")
    return folder


__all__ = ["TinyImageNet", "as_xywh_misread", "find_tiny_imagenet", "load_tiny_imagenet", "make_fixture", "scored_subset"]
