"""EfficientNet-Lite0 fine-tuned in part (infocam.finetune), on small generated inputs."""

import numpy as np
import pytest
import torch

from infocam import finetune


def test_advance_and_finetune_train_the_last_stage():
    from infocam.models.backbones import Lite0Top, efficientnet_lite0

    acts = torch.randn(12, 192, 2, 2).half().numpy()
    out = finetune.advance(acts, "stage6", "head", image_size=64)
    model = efficientnet_lite0(True, 64).eval()
    with torch.no_grad():
        ref = Lite0Top(model, "stage7").stages(torch.from_numpy(acts).float())
    assert out.shape == (12, 320, 2, 2) and out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), ref.numpy(), atol=2e-2, rtol=1e-2)
    assert finetune.advance(acts, "stage6", "stage7") is not None
    with pytest.raises(ValueError, match="cannot feed training"):
        finetune.advance(acts, "stage6", "stage6")
    labels = np.arange(12) % 3
    snaps = []
    top = finetune.finetune_lite0(out, labels, 3, epochs=2, batch_size=4, image_size=64,
                                  on_epoch=lambda e, h, net: snaps.append(finetune.snapshot(net)))
    assert top._fc.out_features == 3 and len(snaps) == 2 and not top.training
    conv = [k for k in snaps[0] if "head_conv.0" in k and k.endswith("weight")][0]
    assert not torch.equal(snaps[0][conv], model._conv_head.weight), "the head convolution must train too"
    with torch.no_grad():
        assert top.features(torch.from_numpy(out[:2]).float()).shape == (2, 1280, 2, 2)


def test_restricted_head_takes_the_imagenet_rows():
    from infocam.imagenet import imagenet_synsets
    from infocam.models.backbones import efficientnet_lite0

    wnids = [imagenet_synsets()[k] for k in (5, 0, 999)]
    W, b = finetune.restricted_head(wnids, image_size=64)
    fc = efficientnet_lite0(True, 64)._fc
    assert torch.equal(W, fc.weight[[5, 0, 999]]) and torch.equal(b, fc.bias[[5, 0, 999]])


def test_pooled_features():
    acts = torch.randn(5, 4, 3, 3, generator=torch.Generator().manual_seed(1)).numpy()
    np.testing.assert_allclose(finetune.pooled_features(lambda a: a, acts, batch_size=2).numpy(), acts.mean((2, 3)),
                               rtol=1e-5, atol=1e-7)


def test_whole_network_rung_trains_every_stage(tmp_path):
    from PIL import Image

    from infocam import localisation as L

    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(paths[-1])
    labels = np.arange(6) % 2
    model, per_epoch = finetune.train_whole_lite0(paths, labels, 2, epochs=1, batch_size=3, image_size=64)
    assert per_epoch > 0 and model.fc.out_features == 2
    stem = [p for n, p in model.named_parameters() if "stem" in n or "_conv_stem" in n]
    assert stem and all(p.requires_grad for p in stem)
    out = L.maps_from_model(model, finetune.image_dataset(paths, labels, 64), L.catalogue((1,)), batch_size=4)
    assert out["maps"]["cam"].shape == (6, 2, 2) and out["boxes"] is None
