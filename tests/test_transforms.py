"""infocam.data.transforms: every box transform agrees with the same transform applied to a box mask."""

import pytest
import torch

from infocam.data import transforms as T


def _image_with_mask(H, W, box, seed=0):
    """An RGB noise image plus a 4th channel that is 255 inside the integer box (x0, y0, x1, y1)."""
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (4, H, W), generator=g, dtype=torch.uint8)
    img[3] = 0
    x0, y0, x1, y1 = box
    img[3, y0:y1, x0:x1] = 255
    return img, torch.tensor([box], dtype=torch.float32)


def _mask_box(mask):
    """Bounding box (x0, y0, x1, y1) of the pixels ≥ 128 of a uint8/float mask, or None if empty."""
    on = mask.float() >= 127.5
    if not on.any():
        return None
    rows, cols = on.any(1).nonzero().flatten(), on.any(0).nonzero().flatten()
    return torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float32)


CASES = [
    ("resize_shorter", lambda: T.Resize(37), 1.0),
    ("resize_square", lambda: T.Resize((50, 31)), 1.0),
    ("center_crop", lambda: T.CenterCrop((30, 41)), 0.0),
    ("random_crop", lambda: T.RandomCrop(33), 0.0),
    ("flip", lambda: T.RandomHorizontalFlip(p=1.0), 0.0),
    ("random_resized_crop", lambda: T.RandomResizedCrop(40, scale=(0.3, 1.0)), 1.0),
    ("paper_train", lambda: T.Compose([T.Resize((64, 64)), T.RandomCrop(56), T.RandomHorizontalFlip()]), 1.0),
]


@pytest.mark.parametrize("name, make, tol", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("seed", range(6))
def test_box_transform_matches_the_transformed_mask(name, make, tol, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(100 + seed)
    H, W = int(torch.randint(45, 80, (), generator=g)), int(torch.randint(45, 80, (), generator=g))
    x0, y0 = int(torch.randint(0, W - 12, (), generator=g)), int(torch.randint(0, H - 12, (), generator=g))
    box = (x0, y0, int(torch.randint(x0 + 8, W + 1, (), generator=g)), int(torch.randint(y0 + 8, H + 1, (), generator=g)))
    img, boxes = _image_with_mask(H, W, box, seed)
    out, out_boxes = make()(img, boxes)
    assert out.shape[0] == 4 and out_boxes.shape == (1, 4)
    expected = _mask_box(out[3])
    got = out_boxes[0]
    if expected is None:  # the crop missed the box: the carried box has no area
        assert (got[2] - got[0]) * (got[3] - got[1]) < 1
    else:
        assert torch.allclose(got, expected, atol=tol + 1e-4), (got, expected)


def test_flip_and_crop_move_pixels_and_boxes_exactly():
    img, boxes = _image_with_mask(20, 30, (3, 4, 10, 15))
    flipped, fb = T.RandomHorizontalFlip(1.0)(img, boxes)
    assert torch.equal(flipped, img.flip(-1)) and fb.tolist() == [[20.0, 4.0, 27.0, 15.0]]
    kept, kb = T.RandomHorizontalFlip(0.0)(img, boxes)
    assert kept is img and torch.equal(kb, boxes)
    crop, cb = T.CenterCrop(10)(img, boxes)
    assert torch.equal(crop, img[:, 5:15, 10:20]) and cb.tolist() == [[0.0, 0.0, 0.0, 10.0]]


def test_xywh_and_normalize_and_presets():
    assert T.xywh_to_xyxy([[1, 2, 3, 4]]).tolist() == [[1.0, 2.0, 4.0, 6.0]]
    img = torch.full((3, 300, 400), 255, dtype=torch.uint8)
    x, b = T.eval_transform(224)(img, torch.tensor([[0.0, 0.0, 400.0, 300.0]]))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert b.tolist() == [[0.0, 0.0, 224.0, 224.0]]
    torch.testing.assert_close(x[:, 0, 0], (1 - torch.tensor(T.IMAGENET_MEAN_STD[0])) / torch.tensor(T.IMAGENET_MEAN_STD[1]))
    x, b = T.train_transform(224, 256)(img, torch.tensor([[0.0, 0.0, 400.0, 300.0]]))
    assert x.shape == (3, 224, 224) and b.tolist() == [[0.0, 0.0, 224.0, 224.0]]


def test_crop_larger_than_image_is_a_clear_error():
    img, boxes = _image_with_mask(20, 30, (3, 4, 10, 15))
    with pytest.raises(ValueError, match="larger than the image"):
        T.RandomCrop(25)(img, boxes)
    with pytest.raises(ValueError, match="unknown training crop"):
        T.train_transform(kind="mystery")
