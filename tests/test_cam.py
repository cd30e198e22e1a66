"""CAM / infoCAM extractors: torchcam equivalence, the PMI decomposition, variants, windows, bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from infocam.cam import CAM, InfoCAM, cached_class_maps, class_maps, model_class_maps, window_sum
from infocam.models.cnn_gap import CNNGAP


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = CNNGAP(num_classes=5, widths=(4, 8, 8, 6)).eval()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def x():
    return torch.rand(6, 1, 32, 32, generator=torch.Generator().manual_seed(1))


def _maps(model, x, cls, **kw):
    with torch.no_grad(), InfoCAM(model, "features", "fc", **kw) as cam:
        logits = model(x)
        return cam(cls, logits), logits


def test_matches_torchcam_cam(net, x):
    from torchcam.methods import CAM as TorchCAM

    cls = [0, 1, 2, 3, 4, 0]
    ours, _ = _maps(net, x, cls, variant="none", window=1)
    with CAM(net, "features", "fc") as cam:
        with torch.no_grad():
            net(x)
        plain = cam(cls)
    with TorchCAM(net, target_layer="features", fc_layer="fc", input_shape=(1, 32, 32)) as ref:
        with torch.no_grad():
            out = net(x)
        theirs = ref(cls, out, normalized=False)[0]  # one class per sample
    assert ours.shape == (6, 8, 8)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(plain, ours, atol=0, rtol=0)


def test_pmi_difference_decomposes_over_cells(net, x):
    with torch.no_grad():
        logits = net(x)
        maps = torch.stack([_maps(net, x, k, variant="none", window=1)[0] for k in range(5)], 1)
    b = net.fc.bias
    for y in range(5):
        for y2 in range(5):
            lhs = logits[:, y] - logits[:, y2]
            rhs = (maps[:, y] - maps[:, y2]).mean((1, 2)) + b[y] - b[y2]
            torch.testing.assert_close(lhs, rhs, atol=1e-5, rtol=0)


def test_variants_are_differences_of_cams(net, x):
    cams = torch.stack([_maps(net, x, k, variant="none", window=1)[0] for k in range(5)], 1)
    cls = torch.tensor([0, 1, 2, 3, 4, 2])
    mo, logits = _maps(net, x, cls, variant="mean-others", window=1)
    n = torch.arange(6)
    others = (cams.sum(1) - cams[n, cls]) / 4
    torch.testing.assert_close(mo, cams[n, cls] - others, atol=1e-5, rtol=0)
    ll, _ = _maps(net, x, cls, variant="least-likely", window=1)
    torch.testing.assert_close(ll, cams[n, cls] - cams[n, logits.argmin(1)], atol=1e-5, rtol=0)


def test_window_same_and_faithful(net, x):
    base, _ = _maps(net, x, 1, variant="mean-others", window=1)
    same, _ = _maps(net, x, 1, variant="mean-others", window=3)
    full, _ = _maps(net, x, 1, variant="mean-others", window=3, mode="faithful")
    assert same.shape == base.shape and full.shape == (6, 10, 10)
    padded = nn.functional.pad(base, (1, 1, 1, 1))
    # centred 3x3 sum at cell (2, 3)
    torch.testing.assert_close(same[:, 2, 3], padded[:, 2:5, 3:6].sum((1, 2)), atol=1e-5, rtol=0)
    # full convolution: output cell (i, j) sums input cells i-2..i, j-2..j; interior agrees after a shift
    torch.testing.assert_close(full[:, 1:9, 1:9], same, atol=1e-5, rtol=0)
    even, _ = _maps(net, x, 1, variant="mean-others", window=4)
    assert even.shape == base.shape


def test_upsample_and_per_sample_classes(net, x):
    with torch.no_grad(), InfoCAM(net, "features", "fc", window=1) as cam:
        net(x)
        up = cam(torch.arange(6) % 5, upsample=True)
        custom = cam(2, upsample=(20, 24))
    assert up.shape == (6, 32, 32) and custom.shape == (6, 20, 24)


def test_hooks_removed_on_exit_and_on_error(net, x):
    before = len(net.features._forward_hooks), len(net._forward_pre_hooks)
    with pytest.raises(RuntimeError, match="boom"):
        with InfoCAM(net, "features", "fc"):
            assert len(net.features._forward_hooks) == before[0] + 1
            raise RuntimeError("boom")
    assert (len(net.features._forward_hooks), len(net._forward_pre_hooks)) == before
    cam = InfoCAM(net, "features", "fc")
    with pytest.raises(RuntimeError, match="context manager"):
        cam(0)


def test_class_maps_matches_extractor(net, x):
    ours, logits = _maps(net, x, 3, variant="least-likely", window=3)
    with torch.no_grad():
        feats = net.features(x)
    again = class_maps(feats, net.fc.weight, 3, logits, variant="least-likely", window=3)
    torch.testing.assert_close(ours, again, atol=0, rtol=0)
    # logits recomputed from the features pick the same least-likely class (the bias is per class,
    # so it can change the argmin only through ties; this net has none)
    recomputed = class_maps(feats, net.fc.weight, 3, variant="least-likely", window=3)
    if torch.equal((feats.mean((2, 3)) @ net.fc.weight.T).argmin(1), logits.argmin(1)):
        torch.testing.assert_close(recomputed, again, atol=0, rtol=0)
    assert isinstance(InfoCAM(net, "features", "fc"), CAM)


def test_cam_mean_is_logit_minus_bias(net, x):
    with torch.no_grad():
        feats, logits = net.features(x), net(x)
        maps = class_maps(feats, net.fc.weight, 2, variant="none", window=1)
    torch.testing.assert_close(maps.mean((1, 2)), logits[:, 2] - net.fc.bias[2], atol=1e-5, rtol=0)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_window_same_equals_conv_same_padding(k):
    """'same' for every k equals an all-ones F.conv2d(padding='same'): for even k the extra cell lies after i."""
    maps = torch.randn(3, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    ours = window_sum(maps, k, "same")
    ref = nn.functional.conv2d(maps.unsqueeze(1), torch.ones(1, 1, k, k, dtype=torch.float64), padding="same")[:, 0]
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    if k == 4:  # explicit: cell (3, 4) sums rows 2..5 and columns 3..6
        torch.testing.assert_close(ours[:, 3, 4], maps[:, 2:6, 3:7].sum((1, 2)), atol=1e-12, rtol=0)
    full = window_sum(maps, k, "faithful")
    ref_full = nn.functional.conv2d(maps.unsqueeze(1), torch.ones(1, 1, k, k, dtype=torch.float64), padding=k - 1)[:, 0]
    torch.testing.assert_close(full, ref_full, atol=1e-12, rtol=0)


def test_class_maps_bad_input(net, x):
    feats = torch.rand(2, 6, 4, 4)
    w = torch.rand(5, 6)
    with pytest.raises(ValueError, match=r"\(N, C, h, w\)"):
        class_maps(feats[0], w, 0)
    with pytest.raises(ValueError, match=r"\(K, C\)"):
        class_maps(feats, w[0], 0)
    with pytest.raises(ValueError, match="channels"):
        class_maps(feats, torch.rand(5, 7), 0)
    with pytest.raises(ValueError, match="window"):
        class_maps(feats, w, 0, window=0)
    with pytest.raises(ValueError, match="mode"):
        class_maps(feats, w, 0, mode="valid")
    with pytest.raises(ValueError, match=">= 2 outputs"):
        class_maps(feats, w[:1], 0)
    with pytest.raises(ValueError, match="logits"):
        class_maps(feats, w, 0, torch.rand(2, 4), variant="least-likely")


def test_bad_input(net, x):
    with pytest.raises(ValueError, match="not a submodule"):
        InfoCAM(net, "layer4", "fc")
    with pytest.raises(ValueError, match="not nn.Linear"):
        InfoCAM(net, "features", "pool")
    with pytest.raises(ValueError, match="variant"):
        InfoCAM(net, "features", "fc", variant="median")
    with pytest.raises(ValueError, match="window"):
        InfoCAM(net, "features", "fc", window=0)
    with torch.no_grad(), InfoCAM(net, "features", "fc") as cam:
        with pytest.raises(RuntimeError, match="no features"):
            cam(0)
        net(x)
        with pytest.raises(ValueError, match=r"\[0, 4\]"):
            cam(5)
        with pytest.raises(ValueError, match=r"\[0, 4\]"):
            cam([0, 1, 2, 3, 4, -1])
        with pytest.raises(ValueError, match="6 samples"):
            cam([0, 1])
        net(torch.full_like(x, float("nan")))
        with pytest.raises(ValueError, match="NaN"):
            cam(0)
    with torch.no_grad(), InfoCAM(net, "features.0", "fc") as cam:  # a conv with the wrong width
        net(x)
        with pytest.raises(ValueError, match="channels"):
            cam(0)


def test_model_class_maps_batches_equal_one_pass(net, x):
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    whole, logits = _maps(net, x, labels, variant="least-likely", window=3)
    maps, lg = model_class_maps(net, x, labels, "least-likely", 3, batch_size=4)
    torch.testing.assert_close(maps, whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(lg, logits, atol=1e-6, rtol=0)


def test_cached_class_maps_from_float16_features(net, x):
    with torch.no_grad():
        feats, logits = net.features(x), net(x)
    cached = feats.numpy().astype(np.float16)
    labels = np.array([4, 3, 2, 1, 0, 4])
    maps = cached_class_maps(cached, net.fc.weight, labels, logits, "mean-others", 3, batch_size=4)
    ref = class_maps(torch.from_numpy(cached.astype(np.float32)), net.fc.weight, torch.from_numpy(labels), logits,
                     variant="mean-others", window=3)
    torch.testing.assert_close(maps, ref, atol=0, rtol=0)
    assert maps.shape == (6, 8, 8)
