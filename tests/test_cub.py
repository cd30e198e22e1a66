"""Tests of the CUB-200-2011 loader, the paper's split rule and the probe pipeline on a tiny fixture."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from infocam.data.cub import cub_split, find_cub, first_classes, load_cub
from infocam.paths import DataError


def make_tiny_cub(root: Path, num_classes=4, n_train=12, n_test=16, seed=0) -> Path:
    """A CUB-format folder: coloured noise images per class, ids shuffled and non-contiguous."""
    rng = np.random.default_rng(seed)
    folder = root / "CUB_200_2011"
    lines = {name: [] for name in ("images", "image_class_labels", "train_test_split", "bounding_boxes")}
    classes = []
    image_id = 100
    for c in range(num_classes):
        cid = 2 * c + 3  # non-contiguous class ids
        name = f"{cid:03d}.Bird_{c}"
        classes.append(f"{cid} {name}")
        (folder / "images" / name).mkdir(parents=True)
        flags = [1] * n_train + [0] * n_test
        for j, flag in enumerate(flags):
            image_id += int(rng.integers(1, 4))
            w, h = int(rng.integers(40, 64)), int(rng.integers(40, 64))
            base = np.array([255 * (c & 1), 255 * ((c >> 1) & 1), 128], dtype=float)
            pixels = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
            rel = f"{name}/img_{j:03d}.jpg"
            Image.fromarray(pixels).save(folder / "images" / rel, quality=90)
            lines["images"].append(f"{image_id} {rel}")
            lines["image_class_labels"].append(f"{image_id} {cid}")
            lines["train_test_split"].append(f"{image_id} {flag}")
            lines["bounding_boxes"].append(f"{image_id} 2.0 3.0 {w - 6}.5 {h - 8}.0")
    for name, rows in lines.items():
        (folder / f"{name}.txt").write_text("\n".join(rows) + "\n")
    (folder / "classes.txt").write_text("\n".join(classes) + "\n")
    return folder


@pytest.fixture()
def tiny_cub(tmp_path):
    return make_tiny_cub(tmp_path)


def test_loader_reads_the_official_layout(tiny_cub):
    cub = load_cub(tiny_cub)
    assert len(cub) == 4 * 28 and cub.num_classes == 4
    assert cub.labels.dtype == np.int64 and set(cub.labels) == {0, 1, 2, 3}
    assert list(cub.class_ids) == [3, 5, 7, 9] and cub.class_names[0] == "003.Bird_0"
    assert np.all(np.diff(cub.image_ids) > 0)
    assert cub.is_train.sum() == 4 * 12
    assert cub.boxes.shape == (len(cub), 4) and np.allclose(cub.boxes[:, :2], [2.0, 3.0])
    assert np.all(cub.sizes >= 40)
    assert all(p.is_file() for p in cub.paths)
    assert "4-class subset" in cub.source and "112 images" in cub.source


def test_loader_accepts_the_data_root_and_finds_cub(tiny_cub, monkeypatch):
    assert load_cub(tiny_cub.parent).root == tiny_cub
    monkeypatch.setenv("INFOCAM_DATA", str(tiny_cub.parent))
    assert find_cub() == tiny_cub
    assert load_cub().root == tiny_cub
    assert find_cub(str(tiny_cub)) is None  # a data root without a CUB folder inside


def test_paper_imbalanced_split_rule(tiny_cub):
    cub = load_cub(tiny_cub)
    train, test = cub_split(cub, "imbalanced")
    assert np.bincount(cub.labels[train]).tolist() == [10, 12, 10, 12]
    assert np.bincount(cub.labels[test]).tolist() == [5, 15, 5, 15]
    assert cub.is_train[train].all() and not cub.is_train[test].any()
    # "first n" means lowest image ids among the class's training images
    first = np.flatnonzero(cub.is_train & (cub.labels == 0))[:10]
    assert np.array_equal(np.sort(train[cub.labels[train] == 0]), first)
    train_b, test_b = cub_split(cub, "balanced")
    assert len(train_b) == 48 and len(test_b) == 64


def test_first_classes_keeps_a_consistent_subset(tiny_cub):
    cub = first_classes(load_cub(tiny_cub), 2)
    assert cub.num_classes == 2 and len(cub) == 56 and set(cub.labels) == {0, 1}
    assert len(cub.paths) == len(cub.boxes) == len(cub.is_train) == 56 and "first 2 classes" in cub.source
    with pytest.raises(ValueError, match="between 1 and 2"):
        first_classes(cub, 3)


def test_split_refuses_a_class_without_training_images(tmp_path):
    folder = make_tiny_cub(tmp_path)
    split = folder / "train_test_split.txt"
    labels = dict(line.split() for line in (folder / "image_class_labels.txt").read_text().split("\n") if line)
    rows = [line.split() for line in split.read_text().split("\n") if line]
    split.write_text("\n".join(f"{i} {0 if labels[i] == '5' else f}" for i, f in rows) + "\n")
    cub = load_cub(folder)
    with pytest.raises(ValueError, match="class 1 has no train images"):
        cub_split(cub)
    with pytest.raises(ValueError, match="unknown CUB split"):
        cub_split(cub, "paper")


def _edit(path: Path, fn):
    rows = path.read_text().splitlines()
    path.write_text("\n".join(fn(rows)) + "\n")


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda f: (f / "bounding_boxes.txt").unlink(), r"bounding_boxes.txt is missing"),
        (lambda f: _edit(f / "image_class_labels.txt", lambda r: r[:-1]), r"image_class_labels.txt: ids do not match"),
        (lambda f: _edit(f / "train_test_split.txt", lambda r: r + ["99999 1"]), r"train_test_split.txt: ids do not match.*line 17"),
        (lambda f: _edit(f / "bounding_boxes.txt", lambda r: r[:5] + [r[5].split()[0] + " 1 2 500 10"] + r[6:]),
         r"bounding_boxes.txt:6: box .* lies outside its image"),
        (lambda f: _edit(f / "bounding_boxes.txt", lambda r: r[:2] + [r[2].split()[0] + " 1 2 -5 10"] + r[3:]),
         r"bounding_boxes.txt:3: invalid box"),
        (lambda f: _edit(f / "train_test_split.txt", lambda r: r[:3] + [r[3].split()[0] + " yes"] + r[4:]),
         r"train_test_split.txt:4: cannot parse"),
        (lambda f: _edit(f / "train_test_split.txt", lambda r: r[:3] + [r[3].split()[0] + " 2"] + r[4:]), r"train_test_split.txt:4: is_train must be 0 or 1"),
        (lambda f: _edit(f / "image_class_labels.txt", lambda r: [r[0].split()[0] + " 77"] + r[1:]), r"image_class_labels.txt:1: class 77"),
        (lambda f: _edit(f / "images.txt", lambda r: r + [r[-1]]), r"images.txt:17: id .* appears twice"),
        (lambda f: _edit(f / "bounding_boxes.txt", lambda r: r[:4] + [r[4].split()[0] + " nan 2 10 10"] + r[5:]),
         r"bounding_boxes.txt:5: box x=nan .* not four finite numbers"),
        (lambda f: _edit(f / "bounding_boxes.txt", lambda r: r[:1] + [r[1].split()[0] + " 1 2 10 inf"] + r[2:]),
         r"bounding_boxes.txt:2: box .*h=inf is not four finite numbers"),
        (lambda f: (f / "classes.txt").write_bytes(b"1 001.Bird_0\n2 002.M\xf6we\n"),
         r"classes.txt:2: not UTF-8 text \(byte 0xf6\); save the file as UTF-8"),
        (lambda f: (f / "images" / "003.Bird_0" / "img_002.jpg").unlink(), r"images.txt:3: image file .* is missing"),
    ],
)
def test_bad_cub_folder_gives_one_clear_error(tmp_path, breakage, message):
    folder = make_tiny_cub(tmp_path, num_classes=4, n_train=2, n_test=2)
    breakage(folder)
    with pytest.raises(DataError, match=message):
        load_cub(folder)


def test_wrong_cub_root_is_reported(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_cub(tmp_path / "nowhere")
    with pytest.raises(DataError, match="images.txt is missing"):
        load_cub(tmp_path)


def test_probe_end_to_end_on_the_fixture(tiny_cub, isolated_features_cache, monkeypatch):
    from infocam.features import extract_features, feature_cache_path
    from infocam.probe import evaluate_probe, standardize, train_probe

    monkeypatch.setenv("INFOCAM_PROGRESS", "0")
    cub = load_cub(tiny_cub)
    feats = extract_features("efficientnet_lite0", cub.paths, size=64, cache_key="tiny")
    assert feats.shape == (len(cub), 1280) and feats.dtype == np.float32
    cache = feature_cache_path("efficientnet_lite0", cub.paths, size=64, cache_key="tiny")
    assert cache.is_file()
    np.save(cache, np.zeros_like(feats))  # the second call must read the cache, not recompute
    assert not extract_features("efficientnet_lite0", cub.paths, size=64, cache_key="tiny").any()
    train, test = cub_split(cub, "imbalanced")
    Xtr, Xte = standardize(feats[train], feats[test])
    ytr = torch.as_tensor(cub.labels[train])
    for loss in ("softmax", "pc_softmax"):
        head, priors = train_probe(Xtr, ytr, cub.num_classes, loss, epochs=100, lr=1e-2)
        result = evaluate_probe(head, Xte, cub.labels[test], priors, loss)
        assert result.accuracy > 0.9, (loss, result.accuracy)  # the classes differ in colour
        assert np.isfinite(result.mi_estimate)


def test_real_cub50_subset_counts(real_cub):
    cub = load_cub(real_cub)
    assert len(cub) == 2739 and cub.num_classes == 50
    assert cub.is_train.sum() == 1500 and (~cub.is_train).sum() == 1239
    assert "50-class subset" in cub.source
    train, test = cub_split(cub, "imbalanced")
    counts = np.bincount(cub.labels[train], minlength=50)
    assert (counts[::2] == 10).all() and (counts[1::2] == 30).all() and len(train) == 1000
    test_counts = np.bincount(cub.labels[test], minlength=50)
    assert (test_counts[::2] == 5).all() and (test_counts[1::2] <= 15).all()
    boxes, sizes = cub.boxes, cub.sizes
    assert (boxes[:, 0] + boxes[:, 2] <= sizes[:, 0] + 1e-6).all() and (boxes[:, 1] + boxes[:, 3] <= sizes[:, 1] + 1e-6).all()


def test_feature_maps_and_pooled_features_share_one_pass(tiny_cub, isolated_features_cache, monkeypatch):
    """Chapter 4 asks for maps, chapter 3 for pooled features: one extraction serves both."""
    from infocam.features import extract_features, feature_cache_path

    monkeypatch.setenv("INFOCAM_PROGRESS", "0")
    cub = load_cub(tiny_cub)
    maps = extract_features("efficientnet_lite0", cub.paths, size=64, spatial=True, cache_key="share")
    assert maps.shape == (len(cub), 1280, 2, 2) and maps.dtype == np.float16
    pooled_cache = feature_cache_path("efficientnet_lite0", cub.paths, size=64, cache_key="share")
    assert pooled_cache.is_file(), "extracting maps must also cache the pooled features"
    pooled_cache.unlink()  # now only the maps are cached: pooled features are derived from them
    pooled = extract_features("efficientnet_lite0", cub.paths, size=64, cache_key="share")
    np.testing.assert_allclose(pooled, maps.astype(np.float32).mean(axis=(2, 3)), rtol=1e-6)


def test_resolve_cub_is_the_one_place_a_cub_folder_is_found(tiny_cub, tmp_path, monkeypatch):
    from infocam.data.cub import resolve_cub

    monkeypatch.delenv("INFOCAM_DATA", raising=False)
    assert resolve_cub(str(tiny_cub)) == tiny_cub  # the CUB folder itself
    assert resolve_cub(str(tiny_cub.parent)) == tiny_cub  # a folder holding CUB_200_2011/
    assert resolve_cub("", str(tiny_cub.parent)) == tiny_cub  # found under the data root
    assert resolve_cub("none", str(tiny_cub.parent)) is None  # switched off on purpose
    assert resolve_cub("") is None  # no data root: nothing to find
    (tiny_cub / "classes.txt").unlink()
    with pytest.raises(DataError, match="classes.txt is missing"):
        resolve_cub("", str(tiny_cub.parent))  # there but broken: an error, never a skip


def test_heldout_split_is_stratified_and_seeded():
    from infocam.data.cub import heldout_split

    labels = np.repeat(np.arange(4), 10)
    is_train = np.tile(np.r_[np.ones(5, bool), np.zeros(5, bool)], 4)
    fit, held = heldout_split(labels, is_train, 0.4, seed=0)
    assert not (fit & held).any() and np.array_equal(fit | held, is_train)
    assert np.bincount(labels[held], minlength=4).tolist() == [2, 2, 2, 2]  # round(0.4 · 5) per class
    again, other = heldout_split(labels, is_train, 0.4, seed=0)[1], heldout_split(labels, is_train, 0.4, seed=1)[1]
    assert np.array_equal(held, again) and not np.array_equal(held, other)
    with pytest.raises(ValueError, match="fraction"):
        heldout_split(labels, is_train, 1.0, seed=0)
