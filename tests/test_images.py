"""infocam.data.images: the image-folder Dataset (decoding, boxes, workers, clear errors)."""

import numpy as np
import pytest
import torch
from PIL import Image

from infocam.data import transforms as T
from infocam.data.cub import find_cub, load_cub
from infocam.data.images import ImageDataset, cub_dataset, read_image
from infocam.paths import DataError
from tests.test_cub import make_tiny_cub


def test_read_image_decodes_jpeg_png_and_greyscale_to_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert torch.equal(read_image(tmp_path / "a.png"), torch.from_numpy(rgb).permute(2, 0, 1))
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.jpg", quality=95)
    grey = read_image(tmp_path / "g.jpg")
    assert grey.shape == (3, 9, 13) and grey.dtype == torch.uint8
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert (grey[0].int() - torch.from_numpy(rgb[..., 0]).int()).abs().float().mean() < 4
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match="bad.jpg is not a readable image"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(DataError, match="missing"):
        read_image(tmp_path / "none.jpg")


def test_cub_dataset_items_carry_boxes_through_the_transform(tmp_path):
    cub = load_cub(make_tiny_cub(tmp_path))
    ds = cub_dataset(cub, np.arange(8), T.eval_transform(32))
    image, label, box = ds[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert int(label) == int(cub.labels[3])
    W, H = cub.sizes[3]
    x, y, w, h = cub.boxes[3]
    expected = torch.tensor([x * 32 / W, y * 32 / H, (x + w) * 32 / W, (y + h) * 32 / H], dtype=torch.float32)
    torch.testing.assert_close(box, expected)
    plain = ImageDataset(cub.paths[:2], cub.labels[:2])
    img, lab = plain[0]
    assert img.max() <= 1 and img.shape[0] == 3


def test_loader_with_workers_gives_the_same_batches(tmp_path):
    cub = load_cub(make_tiny_cub(tmp_path))
    ds = cub_dataset(cub, np.arange(12), T.eval_transform(32))
    serial = next(iter(torch.utils.data.DataLoader(ds, batch_size=12)))
    parallel = next(iter(torch.utils.data.DataLoader(ds, batch_size=12, num_workers=2)))
    for a, b in zip(serial, parallel):
        assert torch.equal(a, b)


def test_missing_file_and_mismatched_lists_are_clear_errors(tmp_path):
    cub = load_cub(make_tiny_cub(tmp_path))
    cub.paths[5].unlink()
    with pytest.raises(DataError, match="1 image file.*missing.*img_005"):
        cub_dataset(cub, np.arange(8))
    with pytest.raises(ValueError, match="2 paths but 3 labels"):
        ImageDataset(cub.paths[:2], [0, 1, 2], check_files=False)


@pytest.mark.skipif(find_cub() is None, reason="no real CUB folder under the data root")
def test_real_cub_images_decode():
    cub = load_cub(find_cub())
    ds = cub_dataset(cub, np.arange(0, len(cub), max(1, len(cub) // 5)), T.train_transform(224, 256))
    for image, label, box in ds:
        assert image.shape == (3, 224, 224) and torch.isfinite(image).all()
        assert 0 <= box[0] <= box[2] <= 224 and 0 <= box[1] <= box[3] <= 224


def test_tiny_imagenet_dataset_keeps_corner_boxes(tmp_path):
    from infocam.data.images import tiny_imagenet_dataset
    from infocam.data.tiny_imagenet import load_tiny_imagenet, make_fixture

    tin = load_tiny_imagenet(make_fixture(tmp_path), "val")
    ds = tiny_imagenet_dataset(tin)
    image, label, box = ds[0]
    assert image.shape == (3, 64, 64) and int(label) == int(tin.labels[0])
    assert box.tolist() == [float(v) for v in tin.boxes[0]]
    with pytest.raises(ValueError, match="box_format"):
        ImageDataset(tin.paths, tin.labels, tin.boxes, box_format="cxcywh")
