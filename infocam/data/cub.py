"""CUB-200-2011 in its official folder layout, and the paper's imbalanced split.

The loader reads ``images.txt`` (id path), ``image_class_labels.txt`` (id class),
``train_test_split.txt`` (id is_train), ``bounding_boxes.txt`` (id x y w h, pixels) and
``classes.txt`` (class name), checks that they agree, and opens every image header once to
check that its box lies inside it — all before any training, each problem reported with its
file and line. It works for the full dataset and for any subset in the same layout (ids need not
be contiguous; labels are made 0-based and contiguous over the classes present).

:func:`cub_split` gives the paper's imbalanced split (train: even 0-based labels keep 10
training images, odd labels all of theirs; test: even labels 5 test images, odd labels 15;
3,997 / 1,996 images on the full dataset) and the balanced official split (5,994 / 5,794).
Used in chapters 3 (linear probe) and 5 (WSOL).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from infocam.data.imbalance import keep_first_per_class, parity_counts
from infocam.data.splits import selection_report_halves
from infocam.paths import DataError, read_utf8, resolve_data_root

CUB_FOLDERS = ("CUB_200_2011",)
FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt", "classes.txt")
PAPER_SPLIT = {"train": (10, None), "test": (5, 15)}  # (even, odd); None = all
# A few official boxes overrun their image slightly (image 1218 by 6 % of its width); boxes that
# overrun by at most this fraction of the image side are clipped to the image, larger ones are errors.
BOX_TOLERANCE = 0.10


@dataclass(frozen=True)
class CUB:
    """One CUB-format folder: N images with 0-based labels, official split flags and boxes."""

    root: Path
    image_ids: np.ndarray  # (N,) original ids from images.txt
    paths: list  # N absolute image paths
    labels: np.ndarray  # (N,) int64, 0-based contiguous over the classes present
    class_ids: np.ndarray  # (K,) original class ids (1-based in the official files)
    class_names: list  # K names, e.g. "001.Black_footed_Albatross"
    is_train: np.ndarray  # (N,) bool, official train/test split
    boxes: np.ndarray  # (N, 4) float64 x, y, w, h in pixels of the stored image
    sizes: np.ndarray  # (N, 2) int64 width, height of the stored image
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return f"CUB({self.source})"


def resolve_cub(cub_root="", data_root=None) -> Path | None:
    """The one place a CUB folder is found: the checked folder, or None when there is none to use.

    ``cub_root`` (a chapter parameter) is the CUB folder itself or a folder holding
    ``CUB_200_2011/``; ``"none"`` skips CUB on purpose. Empty: ``<data root>/CUB_200_2011`` if the
    data root has one, else None. A folder that is there but broken (a metadata file or ``images/``
    missing, nested one level too deep) is a DataError naming what is wrong, never a skip; so is an
    explicit ``cub_root`` or data root that does not exist.
    """
    if cub_root == "none":
        return None
    if cub_root not in (None, ""):
        root = Path(cub_root).expanduser()
        if not root.is_dir():
            what = "is a file, not a folder" if root.exists() else "does not exist"
            raise DataError(f"CUB folder {str(root)!r} {what}; point cub_root at the folder holding images.txt")
        if not (root / "images.txt").exists():
            for name in CUB_FOLDERS:  # accept a data root holding the CUB folder
                if (root / name).is_dir():
                    return _check_folder(root / name)
        return _check_folder(root)
    base = resolve_data_root(data_root)
    if base is None:
        return None
    for name in CUB_FOLDERS:
        if (base / name).is_dir():
            return _check_folder(base / name)
    near = [p.name for p in base.iterdir() if p.is_dir() and p.name.lower() in {n.lower() for n in CUB_FOLDERS}]
    if near:
        raise DataError(f"found {base / near[0]}: rename it to {base / CUB_FOLDERS[0]} (the name is case-sensitive)")
    return None


def _check_folder(root: Path) -> Path:
    """``root`` if it holds every metadata file and ``images/``; else a DataError naming what is missing."""
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing and all((root / CUB_FOLDERS[0] / name).is_file() for name in FILES):
        raise DataError(f"{root} holds another {CUB_FOLDERS[0]}/ inside it (unpacked twice?): "
                        f"move the contents of {root / CUB_FOLDERS[0]} up one level")
    if len(missing) == len(FILES):
        raise DataError(f"{root} is not a CUB folder: images.txt is missing and it holds no {CUB_FOLDERS[0]}/; "
                        "point cub_root (or the data root) at the official CUB-200-2011 folder")
    if missing:
        raise DataError(f"CUB folder {root}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                        f"missing; a CUB folder needs "
                        f"{', '.join(FILES)} and images/ (official CUB-200-2011 layout)")
    if not (root / "images").is_dir():
        raise DataError(f"CUB folder {root} has no images/ folder (official CUB-200-2011 layout)")
    return root


def find_cub(data_root=None) -> Path | None:
    """The checked CUB folder under the data root (``CUB_200_2011``), or None if it has none."""
    return resolve_cub("", data_root)


def _read_table(path: Path, ncols: int, kinds: tuple) -> dict:
    """``{id: fields}`` of a whitespace table; DataError with file:line for any bad line."""
    if not path.is_file():
        raise DataError(f"{path} is missing: a CUB folder needs {', '.join(FILES)} (official CUB-200-2011 layout)")
    rows = {}
    for lineno, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=ncols - 1) if kinds[-1] is str else line.split()
        if len(parts) != ncols:
            raise DataError(f"{path}:{lineno}: expected {ncols} fields, got {len(parts)}: {line!r}")
        try:
            values = [kind(p) for kind, p in zip(kinds, parts)]
        except ValueError:
            raise DataError(f"{path}:{lineno}: cannot parse {line!r} as {[k.__name__ for k in kinds]}") from None
        if values[0] in rows:
            raise DataError(f"{path}:{lineno}: id {values[0]} appears twice")
        rows[values[0]] = (lineno, values[1:] if ncols > 2 else values[1])
    if not rows:
        raise DataError(f"{path} is empty")
    return rows


def load_cub(root=None, *, data_root=None, check_images: bool = True) -> CUB:
    """Load and validate a CUB-format folder.

    ``root`` is the CUB folder itself (holding ``images.txt``) or a folder containing
    ``CUB_200_2011``; if None the data root is searched (:func:`resolve_cub`).
    ``check_images`` opens every image header (fast, no decoding) to check that the file exists,
    is an image, is not cut short (JPEG end marker), and contains its box.
    """
    folder = resolve_cub(root, data_root)
    if folder is None:
        raise DataError(
            "no CUB-200-2011 folder found: set INFOCAM_DATA (or data_root) to a folder holding "
            f"one of {CUB_FOLDERS}, or pass the CUB folder itself as cub_root"
        )
    root = folder
    images = _read_table(root / "images.txt", 2, (int, str))
    labels = _read_table(root / "image_class_labels.txt", 2, (int, int))
    split = _read_table(root / "train_test_split.txt", 2, (int, int))
    boxes = _read_table(root / "bounding_boxes.txt", 5, (int, float, float, float, float))
    classes = _read_table(root / "classes.txt", 2, (int, str))

    ids = sorted(images)
    for name, table in (("image_class_labels.txt", labels), ("train_test_split.txt", split), ("bounding_boxes.txt", boxes)):
        missing = sorted(set(ids) - set(table))
        extra = sorted(set(table) - set(ids))
        if missing or extra:
            detail = []
            if missing:
                detail.append(f"ids {missing[:5]}{' ...' if len(missing) > 5 else ''} of images.txt are missing")
            if extra:
                line = table[extra[0]][0]
                detail.append(f"ids {extra[:5]} are not in images.txt (first at line {line})")
            raise DataError(f"{root / name}: ids do not match images.txt: {'; '.join(detail)}")

    for i in ids:
        line, flag = split[i]
        if flag not in (0, 1):
            raise DataError(f"{root / 'train_test_split.txt'}:{line}: is_train must be 0 or 1, got {flag}")
        line, cls = labels[i]
        if cls not in classes:
            raise DataError(f"{root / 'image_class_labels.txt'}:{line}: class {cls} is not in classes.txt")
        line, (x, y, w, h) = boxes[i]
        if not np.isfinite([x, y, w, h]).all():
            raise DataError(f"{root / 'bounding_boxes.txt'}:{line}: box x={x} y={y} w={w} h={h} is not four "
                            "finite numbers (nan or inf); fix or remove the line")
        if not (w > 0 and h > 0):
            raise DataError(f"{root / 'bounding_boxes.txt'}:{line}: invalid box x={x} y={y} w={w} h={h}")

    present = sorted({labels[i][1] for i in ids})
    to_label = {c: k for k, c in enumerate(present)}
    paths = [root / "images" / images[i][1] for i in ids]
    box_arr = np.array([boxes[i][1] for i in ids], dtype=np.float64).reshape(-1, 4)
    clipped = 0
    if check_images:
        sizes = _image_sizes(root, ids, images, paths, box_arr, boxes)
        clipped_arr = _clip_boxes(box_arr, sizes)
        clipped = int((np.abs(clipped_arr - box_arr) > 1e-9).any(axis=1).sum())
        box_arr = clipped_arr
    else:
        sizes = np.zeros((len(ids), 2), np.int64)

    full = len(present) == 200 and len(ids) == 11_788
    kind = "CUB-200-2011 (full)" if full else f"CUB-200-2011 {len(present)}-class subset"
    is_train = np.array([split[i][1] == 1 for i in ids])
    return CUB(
        root=root,
        image_ids=np.array(ids, dtype=np.int64),
        paths=paths,
        labels=np.array([to_label[labels[i][1]] for i in ids], dtype=np.int64),
        class_ids=np.array(present, dtype=np.int64),
        class_names=[classes[c][1] for c in present],
        is_train=is_train,
        boxes=box_arr,
        sizes=sizes,
        source=(f"{kind} at {root}: {len(ids)} images, {len(present)} classes, "
                f"{int(is_train.sum())} train / {int((~is_train).sum())} test (official split)"
                + (f"; {clipped} boxes clipped to their image" if clipped else "")),
    )


def _image_sizes(root, ids, images, paths, box_arr, boxes) -> np.ndarray:
    """Width and height of every image from its header; checks each box lies inside its image."""
    from PIL import Image, UnidentifiedImageError

    sizes = np.zeros((len(ids), 2), dtype=np.int64)
    for n, (i, path) in enumerate(zip(ids, paths)):
        line = images[i][0]
        try:
            with Image.open(path) as im:
                sizes[n] = im.size
                kind = im.format
        except FileNotFoundError:
            raise DataError(f"{root / 'images.txt'}:{line}: image file {path} is missing") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{root / 'images.txt'}:{line}: {path} is not a readable image ({exc})") from None
        if kind in _END_MARKERS and not _ends_with(path, _END_MARKERS[kind]):
            raise DataError(f"{root / 'images.txt'}:{line}: {path} is cut short (no {kind} end marker): "
                            "copy or extract it again")
        x, y, w, h = box_arr[n]
        W, H = sizes[n]
        tx, ty = BOX_TOLERANCE * W, BOX_TOLERANCE * H
        if x < -tx or y < -ty or x + w > W + tx or y + h > H + ty:
            raise DataError(
                f"{root / 'bounding_boxes.txt'}:{boxes[i][0]}: box x={x} y={y} w={w} h={h} of image {i} "
                f"lies outside its image ({W}x{H} px, {path.name})"
            )
    return sizes


_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}


def _ends_with(path: Path, marker: bytes, tail: int = 1024) -> bool:
    """Whether ``marker`` occurs in the last ``tail`` bytes: a truncated copy loses its end marker."""
    with open(path, "rb") as fh:
        fh.seek(max(0, fh.seek(0, 2) - tail))
        return marker in fh.read()


def _clip_boxes(boxes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Boxes (x, y, w, h) clipped to their image (W, H)."""
    x0 = np.clip(boxes[:, 0], 0, sizes[:, 0])
    y0 = np.clip(boxes[:, 1], 0, sizes[:, 1])
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, sizes[:, 0])
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, sizes[:, 1])
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)


def cub_split(cub: CUB, kind: str = "imbalanced") -> tuple[np.ndarray, np.ndarray]:
    """Train and test positions into ``cub`` for the paper's split.

    ``kind="imbalanced"``: among the official training images, classes with an even 0-based
    label keep their first 10 (by image id), odd labels all; among the official test images,
    even labels keep the first 5, odd labels the first 15 (fewer if a class has fewer).
    ``kind="balanced"``: the official split. Raises ValueError if a class ends up empty.
    """
    train_pool, test_pool = np.flatnonzero(cub.is_train), np.flatnonzero(~cub.is_train)
    if kind == "balanced":
        counts = {"train": None, "test": None}
    elif kind == "imbalanced":
        counts = PAPER_SPLIT
    else:
        raise ValueError(f"unknown CUB split {kind!r}; choose 'imbalanced' or 'balanced'")
    out = []
    for name, pool in (("train", train_pool), ("test", test_pool)):
        if counts[name] is None:
            keep = parity_counts(cub.num_classes, len(pool), len(pool))
        else:
            even, odd = counts[name]
            keep = parity_counts(cub.num_classes, even, len(pool) if odd is None else odd)
        out.append(pool[keep_first_per_class(cub.labels[pool], keep, what=f"{name} images")])
    return out[0], out[1]


def first_classes(cub: CUB, n: int) -> CUB:
    """The same CUB restricted to its first ``n`` classes (labels 0..n-1), for quick runs."""
    if not 1 <= n <= cub.num_classes:
        raise ValueError(f"n must be between 1 and {cub.num_classes} (the classes present), got {n}")
    keep = cub.labels < n
    return replace(
        cub, image_ids=cub.image_ids[keep], paths=[p for p, k in zip(cub.paths, keep) if k],
        labels=cub.labels[keep], class_ids=cub.class_ids[:n], class_names=cub.class_names[:n],
        is_train=cub.is_train[keep], boxes=cub.boxes[keep], sizes=cub.sizes[keep],
        source=f"{cub.source}; first {n} classes only ({int(keep.sum())} images)",
    )


def cub_test_halves(cub: CUB) -> tuple[np.ndarray, np.ndarray]:
    """The official test split cut into a model-selection half and a report half (positions into ``cub``).

    The paper's code selected its models and thresholds on the same test images it reported on;
    we keep the two apart: within each class the official test images, in image-id order, go
    alternately to the selection half (1st, 3rd, ...) and the report half (2nd, 4th, ...).
    Used in chapter 5 (τ and model selection on one half, scores on the other).
    """
    test = np.flatnonzero(~cub.is_train)
    order = test[np.lexsort((cub.image_ids[test], cub.labels[test]))]
    first, second = selection_report_halves(cub.labels[order])
    select, report = np.sort(order[first]), np.sort(order[second])
    if len(report) == 0:
        raise ValueError("the official test split has too few images to halve (need >= 2 per class)")
    return select, report


def heldout_split(labels: np.ndarray, is_train: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, held-out) boolean masks: ``fraction`` of each class's training images held out, at random.

    The held-out part chooses the box threshold τ (Choe et al. 2020: never the test split); the
    rest trains the head. Stratified by class, ``round(fraction · n_c)`` images per class. Used in
    chapter 4.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction must lie in (0, 1), got {fraction}")
    labels, is_train = np.asarray(labels), np.asarray(is_train, dtype=bool)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels[is_train]):
        members = np.flatnonzero(is_train & (labels == c))
        held[rng.choice(members, size=int(round(fraction * len(members))), replace=False)] = True
    return is_train & ~held, held


def boxes_at_size(cub: CUB, index, size: int) -> np.ndarray:
    """Official boxes of ``cub`` images ``index`` as xyxy in a size×size resized image (reference rules)."""
    from infocam import wsol

    index = np.asarray(index)
    return wsol.resize_boxes(wsol.xywh_to_xyxy(cub.boxes[index]), cub.sizes[index], (size, size))


def make_fixture(root, num_classes: int = 4, n_train: int = 8, n_test: int = 8, seed: int = 0, size: int = 80) -> Path:
    """A generated folder in the official CUB-200-2011 layout: a bright square "bird" on noise per
    image (sides ``size`` to 1.5 × ``size`` px), its box the square. Chapter 5 runs on it (and says so)
    when no CUB folder is present; ``benchmarks/gpu_check.py`` trains on it."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder = Path(root) / "CUB_200_2011"
    tables = {k: [] for k in ("images", "image_class_labels", "train_test_split", "bounding_boxes")}
    image_id = 0
    for c in range(1, num_classes + 1):
        name = f"{c:03d}.Fixture_bird_{c}"
        (folder / "images" / name).mkdir(parents=True, exist_ok=True)
        for j in range(n_train + n_test):
            image_id += 1
            w, h = (int(v) for v in rng.integers(size, size * 3 // 2, size=2))
            bw, bh = int(rng.integers(w // 3, w // 2)), int(rng.integers(h // 3, h // 2))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            pixels = rng.integers(0, 90, size=(h, w, 3)).astype(np.uint8)
            pixels[y : y + bh, x : x + bw] = [60 * c % 256, 200, 255 - 50 * c % 256]
            Image.fromarray(pixels).save(folder / "images" / name / f"{j}.jpg", quality=92)
            tables["images"].append(f"{image_id} {name}/{j}.jpg")
            tables["image_class_labels"].append(f"{image_id} {c}")
            tables["train_test_split"].append(f"{image_id} {int(j < n_train)}")
            tables["bounding_boxes"].append(f"{image_id} {x}.0 {y}.0 {bw}.0 {bh}.0")
    for name, rows in tables.items():
        (folder / f"{name}.txt").write_text("\n".join(rows) + "\n")
    (folder / "classes.txt").write_text("".join(f"{c} {c:03d}.Fixture_bird_{c}\n" for c in range(1, num_classes + 1)))
    return folder
