"""Tests of the Tiny-ImageNet loader on generated folders and, when present, the real shared folder."""

import numpy as np
import pytest
from PIL import Image

from infocam.data.tiny_imagenet import as_xywh_misread, find_tiny_imagenet, load_tiny_imagenet, make_fixture, scored_subset
from infocam.paths import DataError


@pytest.fixture()
def tiny(tmp_path):
    return make_fixture(tmp_path, num_classes=3, n_train=2, n_val=4)


def test_reads_both_splits_of_the_official_layout(tiny):
    val = load_tiny_imagenet(tiny, "val")
    train = load_tiny_imagenet(tiny, "train")
    assert len(val) == 12 and len(train) == 6 and val.num_classes == 3
    assert list(np.bincount(val.labels)) == [4, 4, 4] and list(np.bincount(train.labels)) == [2, 2, 2]
    assert val.class_names == ["thing 0", "thing 1", "thing 2"]
    assert all(p.is_file() for p in val.paths + train.paths)
    assert "12 images" in val.source and "3 classes" in val.source


def test_boxes_are_the_files_inclusive_corners(tiny):
    val = load_tiny_imagenet(tiny, "val")
    name, wnid, *corners = (tiny / "val" / "val_annotations.txt").read_text().splitlines()[0].split("\t")
    x0, y0, x1, y1 = map(int, corners)
    assert val.boxes[0].tolist() == [x0, y0, x1, y1]
    # the fixture's box is exactly the bright square: its pixels are the bright ones
    pixels = np.asarray(Image.open(val.paths[0]).convert("L"), dtype=float)
    inside = pixels[y0 : y1 + 1, x0 : x1 + 1].mean()
    assert inside > pixels.mean() + 40


def test_misread_boxes_follow_the_original_code():
    boxes = np.array([[10.0, 20.0, 30.0, 40.0], [40.0, 50.0, 63.0, 63.0]])
    np.testing.assert_array_equal(as_xywh_misread(boxes), [[10, 20, 40, 60], [40, 50, 63, 63]])


def test_greyscale_images_are_present_and_load_as_rgb(tiny):
    from infocam.models.backbones import imagenet_transform

    val = load_tiny_imagenet(tiny, "val")
    modes = {Image.open(p).mode for p in val.paths}
    assert "L" in modes
    x = imagenet_transform(64)(Image.open(next(p for p in val.paths if Image.open(p).mode == "L")))
    assert x.shape == (3, 64, 64)


def test_scored_subset_is_all_or_a_seeded_draw():
    assert scored_subset(7, 0, seed=3).tolist() == list(range(7))
    a, b, c = scored_subset(100, 20, seed=0), scored_subset(100, 20, seed=0), scored_subset(100, 20, seed=1)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert len(set(a.tolist())) == 20 and (np.diff(a) > 0).all() and a.max() < 100
    # the rule chapter 5 always used, so smoke runs keep their images
    assert a.tolist() == np.sort(np.random.default_rng(0).permutation(100)[:20]).tolist()
    assert scored_subset(5, 9, seed=0).tolist() == list(range(5))
    with pytest.raises(ValueError, match="tiny_limit must be 0"):
        scored_subset(5, -1, seed=0)


def test_found_under_the_data_root(tiny, tmp_path):
    assert find_tiny_imagenet(tmp_path) == tiny
    assert len(load_tiny_imagenet(data_root=tmp_path)) == 12
    assert find_tiny_imagenet(tmp_path / "tiny-imagenet-200" / "val") is None


@pytest.mark.parametrize("text, match", [
    ("val_0.JPEG\tn01000000\t1\t2\t3\n", "val_annotations.txt:1: expected 6 fields"),
    ("val_0.JPEG\tn09999999\t1\t2\t3\t4\n", "val_annotations.txt:1: class n09999999 is not in wnids.txt"),
    ("val_0.JPEG\tn01000000\t1\t2\tx\t4\n", "val_annotations.txt:1: box corners must be integers"),
    ("val_0.JPEG\tn01000000\t9\t2\t3\t4\n", "val_annotations.txt:1: invalid box"),
    ("val_0.JPEG\tn01000000\t1\t2\t3\t64\n", "lies outside"),
    ("val_0.JPEG\tn01000000\t1\t2\t3\t63\n", None),
    ("val_404.JPEG\tn01000000\t1\t2\t3\t4\n", "val_404.JPEG is listed but"),
    ("val_0.JPEG\tn01000000\t1\t2\t3\t4\nval_1.JPEG\tn01000000\t1\t2\t3\t4\nval_0.JPEG\tn01000000\t5\t6\t7\t8\n",
     "val_annotations.txt:3: image val_0.JPEG is already listed at line 1; remove the duplicate row"),
])
def test_bad_val_lines_name_file_and_line(tiny, text, match):
    (tiny / "val" / "val_annotations.txt").write_text(text)
    if match is None:  # the last pixel row/column is inside a 64-px image
        assert load_tiny_imagenet(tiny, "val").boxes.tolist() == [[1, 2, 3, 63]]
        return
    with pytest.raises(DataError, match=match):
        load_tiny_imagenet(tiny, "val")


def test_bad_layout_errors(tiny, tmp_path):
    wnid = "n01000007"
    (tiny / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t1\t2\t3\t4\nn01000000_0.JPEG\t1\t2\t3\t4\n")
    with pytest.raises(DataError, match=rf"{wnid}_boxes.txt:2: image n01000000_0.JPEG does not belong"):
        load_tiny_imagenet(tiny, "train")
    (tiny / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t1\t2\t3\t4\n{wnid}_0.JPEG\t1\t2\t3\t4\n")
    with pytest.raises(DataError, match=rf"{wnid}_boxes.txt:2: image {wnid}_0.JPEG is already listed at line 1"):
        load_tiny_imagenet(tiny, "train")
    (tiny / "words.txt").write_bytes((tiny / "words.txt").read_bytes() + b"n09000000\tcaf\xe9\n")
    with pytest.raises(DataError, match=r"words.txt:\d+: not UTF-8 text \(byte 0xe9\)"):
        load_tiny_imagenet(tiny)
    (tiny / "wnids.txt").write_text("n01000000\nn01000000\n")
    with pytest.raises(DataError, match=r"wnids.txt:2: n01000000 already listed at line 1"):
        load_tiny_imagenet(tiny)
    (tiny / "wnids.txt").write_text("n01000000\n")
    (tiny / "words.txt").unlink()
    with pytest.raises(DataError, match="words.txt is missing"):
        load_tiny_imagenet(tiny)
    with pytest.raises(DataError, match="no Tiny-ImageNet folder"):
        load_tiny_imagenet(data_root=tmp_path / "tiny-imagenet-200" / "val")
    with pytest.raises(ValueError, match="unknown Tiny-ImageNet split"):
        load_tiny_imagenet(tiny, "test")


def test_real_folder_counts(real_tiny_imagenet):
    root = real_tiny_imagenet
    val = load_tiny_imagenet(root, "val")
    assert val.num_classes == 200 and len(val) == 10_000
    assert list(np.bincount(val.labels)) == [50] * 200
    assert val.boxes.shape == (10_000, 4) and (val.boxes[:, 2:] >= val.boxes[:, :2]).all()
    assert val.boxes.max() <= 63
    train = load_tiny_imagenet(root, "train")
    assert len(train) >= 200 and set(train.labels) == set(range(200))
