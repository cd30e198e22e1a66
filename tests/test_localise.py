"""Tests of chapter 5's experiment helpers (infocam.localise) on small generated inputs."""

import json

import numpy as np
import pytest
import torch

from infocam import localise, wsol
from infocam.cam import class_maps
from infocam.data.cub import cub_test_halves, load_cub


def test_methods_cover_cam_both_variants_windows_and_the_centre_prior():
    names = [m.name for m in localise.methods((1, 3))]
    assert names == ["CAM", "infoCAM mean-others k=1", "infoCAM mean-others k=3", "infoCAM least-likely k=1",
                     "infoCAM least-likely k=3", "infoCAM mean-others k=3 faithful", localise.CENTRE]
    assert localise.methods((1,), faithful_window=None)[-1].variant == "centre"


def test_maps_and_correct_from_cached_features():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(10, 6, 4, 4, generator=g).numpy()
    W, b = torch.randn(3, 6, generator=g), torch.randn(3, generator=g)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    index = np.array([1, 4, 7, 8])
    ms = localise.methods((1, 3), faithful_window=None)
    maps, correct = localise.maps_and_correct(feats, labels, W, b, ms, index=index, batch_size=3)
    x = torch.from_numpy(feats[index])
    logits = x.mean((2, 3)) @ W.T + b
    np.testing.assert_allclose(maps["CAM"], class_maps(x, W, labels[index], variant="none", window=1), rtol=1e-5)
    np.testing.assert_allclose(maps["infoCAM least-likely k=3"],
                               class_maps(x, W, labels[index], logits, variant="least-likely", window=3), rtol=1e-5)
    assert (maps[localise.CENTRE] == maps[localise.CENTRE][0]).all() and maps[localise.CENTRE][0, 1:3, 1:3].min() > 0.6
    np.testing.assert_array_equal(correct, logits.argmax(1).numpy() == labels[index])
    doubled, _ = localise.maps_and_correct(feats, labels, W, b, ms[:1], transform=lambda f: 2 * f, index=index)
    np.testing.assert_allclose(doubled["CAM"], 2 * maps["CAM"], rtol=1e-5)


def _blob_maps(boxes, size, shift=0):
    """Maps (N, size, size) that are 1 inside each box shifted by ``shift`` pixels, 0 elsewhere."""
    maps = np.zeros((len(boxes), size, size), np.float32)
    for m, (x0, y0, x1, y1) in zip(maps, boxes.astype(int)):
        m[y0 + shift : y1 + 1 + shift, x0 + shift : x1 + 1 + shift] = 1
    return maps


def test_score_maps_and_original_protocol():
    rng = np.random.default_rng(0)
    x0, y0 = rng.integers(0, 20, (2, 40))
    boxes = np.stack([x0, y0, x0 + 15, y0 + 15], 1).astype(float)
    maps = {"exact": _blob_maps(boxes, 40), "off": _blob_maps(boxes, 40, shift=9)}
    correct = np.arange(40) % 2 == 0
    res = localise.score_maps(maps, np.arange(20), np.arange(20, 40), boxes, correct, (40, 40))
    assert res.loc["exact", "gt_known_loc"] == 1.0 and res.loc["exact", "top1_loc"] == 0.5
    assert res.loc["off", "gt_known_loc"] < 0.5
    orig = localise.original_protocol(maps, np.arange(20, 40), boxes, correct, (40, 40), res, batch_size=3)
    assert list(orig.columns) == ["corrected", "fixed τ=0.2", "fixed τ=0.2, running average"]
    assert orig.loc["exact", "fixed τ=0.2"] == 0.5
    for name, m in maps.items():  # one IoU pass gives exactly what wsol.evaluate's original protocol gives
        rep = np.arange(20, 40)
        fixed = wsol.evaluate(None, None, m[rep], boxes[rep], correct[rep], (40, 40), protocol="original")
        running = wsol.evaluate(None, None, m[rep], boxes[rep], correct[rep], (40, 40), protocol="original",
                                running_average=3)
        assert orig.loc[name, "fixed τ=0.2"] == fixed["top1_loc"]
        assert orig.loc[name, "fixed τ=0.2, running average"] == running["top1_loc"]


def test_advance_and_finetune_train_the_last_stage():
    from infocam.models.backbones import Lite0Top, efficientnet_lite0

    acts = torch.randn(12, 192, 2, 2).half().numpy()
    out = localise.advance(acts, "stage6", "head", image_size=64)
    model = efficientnet_lite0(True, 64).eval()
    with torch.no_grad():
        ref = Lite0Top(model, "stage7").stages(torch.from_numpy(acts).float())
    assert out.shape == (12, 320, 2, 2) and out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), ref.numpy(), atol=2e-2, rtol=1e-2)
    assert localise.advance(acts, "stage6", "stage7") is not None
    with pytest.raises(ValueError, match="cannot feed training"):
        localise.advance(acts, "stage6", "stage6")
    labels = np.arange(12) % 3
    snaps = []
    top = localise.finetune_lite0(out, labels, 3, epochs=2, batch_size=4, image_size=64,
                                  on_epoch=lambda e, h, net: snaps.append(localise.snapshot(net)))
    assert top._fc.out_features == 3 and len(snaps) == 2 and not top.training
    conv = [k for k in snaps[0] if "head_conv.0" in k and k.endswith("weight")][0]
    assert not torch.equal(snaps[0][conv], model._conv_head.weight), "the head convolution must train too"
    with torch.no_grad():
        assert top.features(torch.from_numpy(out[:2]).float()).shape == (2, 1280, 2, 2)


def test_restricted_head_takes_the_imagenet_rows():
    from infocam.imagenet import imagenet_synsets
    from infocam.models.backbones import efficientnet_lite0

    wnids = [imagenet_synsets()[k] for k in (5, 0, 999)]
    W, b = localise.restricted_head(wnids, image_size=64)
    fc = efficientnet_lite0(True, 64)._fc
    assert torch.equal(W, fc.weight[[5, 0, 999]]) and torch.equal(b, fc.bias[[5, 0, 999]])


def test_linear_probe_and_pooled_features():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(320, 8, generator=g)
    X[:, 0] *= 4
    y = (X[:, 0] > 0).long().numpy()
    head = localise.linear_probe(X, y, 2, epochs=40)
    assert (head(X).argmax(1).numpy() == y).mean() > 0.9
    acts = torch.randn(5, 4, 3, 3, generator=g).numpy()
    np.testing.assert_allclose(localise.pooled_features(lambda a: a, acts, batch_size=2).numpy(), acts.mean((2, 3)), rtol=1e-5, atol=1e-7)


def test_cub_fixture_halves_and_boxes(tmp_path):
    cub = load_cub(localise.cub_fixture(tmp_path, num_classes=3, n_train=4, n_test=5))
    assert cub.num_classes == 3 and cub.is_train.sum() == 12
    select, report = cub_test_halves(cub)
    assert len(select) == 9 and len(report) == 6 and not set(select) & set(report)
    assert not cub.is_train[select].any() and set(cub.labels[report]) == {0, 1, 2}
    boxes = localise.cub_boxes(cub, report, 50)
    assert boxes.shape == (6, 4) and (boxes[:, 2:] <= 50).all() and (boxes[:, 2:] > boxes[:, :2]).all()
    # the fixture's "bird" is its box: a centred window of the bright pixels scores well
    from PIL import Image

    img = np.asarray(Image.open(cub.paths[report[0]]).convert("L").resize((50, 50)), dtype=np.float32)
    heat = wsol.prepare(img[None], (50, 50))
    assert wsol.iou_curves(heat, boxes[:1], [0.7])[0, 0] > 0.7


def test_paper_results_say_not_run_and_read_train_results(tmp_path):
    names = ["vgg16_gap-cub", "resnet50-tiny_imagenet"]
    empty = localise.paper_results("", names)
    for column in ("ours: top-1 accuracy", "ours: CAM Top-1 Loc", "ours: infoCAM Top-1 Loc"):
        assert (empty[column] == "not run").all()
    assert empty.loc["resnet50-tiny_imagenet", "paper: best infoCAM Top-1 Loc on the dataset"] == 43.34
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps(
        {"recipe": {"name": "vgg16_gap-cub"}, "test_top1": 0.7512, "cam": {"top1_loc": 0.4321}}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text("{broken")
    table = localise.paper_results(tmp_path, names)
    assert table.loc["vgg16_gap-cub", "ours: top-1 accuracy"] == 75.12
    assert table.loc["vgg16_gap-cub", "ours: CAM Top-1 Loc"] == 43.21
    assert table.loc["vgg16_gap-cub", "ours: infoCAM Top-1 Loc"] == "not run"
    assert table.loc["resnet50-tiny_imagenet", "ours: top-1 accuracy"] == "not run"


def test_finetune_head_starts_from_the_given_rows_and_learns():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(200, 6, generator=g)
    y = X[:, :3].argmax(1).numpy()
    W0, b0 = torch.zeros(3, 6), torch.zeros(3)
    head = localise.finetune_head(X, y, W0, b0, epochs=20, batch_size=32, lr=0.1)
    assert (head(X).argmax(1).numpy() == y).mean() > 0.9
    W1 = torch.eye(3, 6) * 5
    untrained = localise.finetune_head(X, y, W1, b0, epochs=1, lr=1e-9)
    assert torch.allclose(untrained.weight, W1, atol=1e-6)
