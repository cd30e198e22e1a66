"""Tests of the frozen ImageNet backbones (infocam.models.backbones) and the LeNet."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from infocam.paths import DataError
from infocam.models.backbones import imagenet_categories, imagenet_transform, load_backbone
from infocam.models.lenet import LeNet, mnist_tensor


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0")


def test_efficientnet_lite0_recognises_real_photos(lite0):
    from skimage import data

    cats = imagenet_categories()
    assert len(cats) == 1000 and cats[285] == "Egyptian cat"
    tf = lite0.transform()
    x = torch.stack([tf(Image.fromarray(data.chelsea())), tf(Image.fromarray(data.coffee()))])
    with torch.no_grad():
        logits = lite0.logits(x)
    top3 = [{cats[i] for i in row.topk(3).indices} for row in logits]
    assert top3[0] & {"tabby", "tiger cat", "Egyptian cat"} and "espresso" in top3[1]


def test_feature_maps_head_and_cam_decomposition(lite0):
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        maps = lite0.feature_maps(x)
        assert maps.shape == (2, 1280, 7, 7) and lite0.num_features == 1280
        assert torch.allclose(lite0.logits(x), lite0.model(x), atol=1e-4)
        cam = torch.einsum("kc,nchw->nkhw", lite0.head.weight, maps)
        assert torch.allclose(cam.mean((2, 3)) + lite0.head.bias, lite0.logits(x), atol=1e-3)
    assert not any(p.requires_grad for p in lite0.model.parameters())


def test_transform_shapes_and_normalisation():
    im = Image.fromarray(np.full((50, 80, 3), 127, np.uint8))
    x = imagenet_transform(64)(im)
    assert x.shape == (3, 64, 64) and x.abs().max() < 1e-6  # lite0: (x*255 - 127) / 128
    assert imagenet_transform(64, "resnet50", crop=True)(im).shape == (3, 64, 64)


def test_bad_backbone_requests(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("vgg16")
    with pytest.raises(ValueError, match="multiple of 32"):
        load_backbone("efficientnet_lite0", image_size=100)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    import torchvision.models as tvm

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tvm.ResNet50_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(DataError, match="resnet50-0676ba61.pth"):
        load_backbone("resnet50")


def test_lenet_shapes_and_parameter_count():
    net = LeNet()
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    n = sum(p.numel() for p in net.parameters())
    assert n == (20 * 25 + 20) + (50 * 20 * 25 + 50) + (800 * 500 + 500) + (500 * 10 + 10)
    x = mnist_tensor(np.zeros((2, 28, 28), np.uint8))
    assert x.shape == (2, 1, 28, 28) and torch.allclose(x, torch.full_like(x, -0.1307 / 0.3081))


@pytest.mark.parametrize("name, size", [("resnet50", 64), ("inception_v3", 75)])
def test_torchvision_feature_maps_feed_their_head(name, size):
    """With random weights (no download): head(mean of feature maps) equals the network's logits."""
    import torchvision.models as tvm

    from infocam.models.backbones import Backbone

    torch.manual_seed(0)
    kwargs = {"aux_logits": True, "init_weights": False} if name == "inception_v3" else {}
    model = getattr(tvm, name)(weights=None, **kwargs).eval()
    if name == "inception_v3":
        model.transform_input = True
    bb = Backbone(name, model, size)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(bb.logits(x), model(x), atol=1e-4)
    assert bb.num_features == 2048


@pytest.mark.parametrize("trainable_from, cut_shape", [("stage7", (192, 7, 7)), ("stage6", (112, 14, 14)),
                                                       ("head", (320, 7, 7))])
def test_split_lite0_recomposes_the_network(trainable_from, cut_shape):
    from infocam.models.backbones import efficientnet_lite0, lite0_cut_before, split_lite0

    model = efficientnet_lite0()
    frozen, trainable = split_lite0(model, trainable_from)
    assert frozen.cut == lite0_cut_before(trainable_from)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        acts = frozen(x)
        assert acts.shape == (2, *cut_shape)
        assert trainable.features(acts).shape == (2, 1280, 7, 7)
        assert torch.allclose(trainable.eval()(acts), model(x), atol=1e-4)
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in trainable.parameters()) and trainable._fc is model._fc
    ids = {id(p) for p in frozen.parameters()} | {id(p) for p in trainable.parameters()}
    assert ids == {id(p) for p in model.parameters()}, "the two parts hold every weight exactly once"
    assert not {id(p) for p in frozen.parameters()} & {id(p) for p in trainable.parameters()}


def test_split_lite0_trains_its_top_with_drop_connect():
    from infocam.models.backbones import efficientnet_lite0, split_lite0

    torch.manual_seed(0)
    frozen, trainable = split_lite0(efficientnet_lite0(image_size=64), "stage7")
    acts = frozen(torch.randn(4, 3, 64, 64))
    loss = nn.functional.cross_entropy(trainable.train()(acts), torch.tensor([1, 2, 3, 4]))
    loss.backward()
    assert trainable._fc.weight.grad is not None and trainable.stages.blocks[0]._project_conv.weight.grad.abs().sum() > 0
    assert trainable.stages._rates == [0.2 * 15 / 16]  # block 15's drop-connect rate, as in the full model
    with pytest.raises(ValueError, match="not a stage of EfficientNet-Lite0"):
        split_lite0(efficientnet_lite0(pretrained=False), "stage1")


def test_lenet_pools_before_relu_with_the_same_values_and_gradients():
    """Pooling first is a speed-up only: outputs and every gradient equal ReLU-then-pool, bit for bit."""
    import torch.nn.functional as F

    def relu_then_pool(m, x):
        x = F.max_pool2d(F.relu(m.conv1(x)), 2)
        x = F.max_pool2d(F.relu(m.conv2(x)), 2)
        return m.fc2(F.relu(m.fc1(x.flatten(1))))

    torch.manual_seed(0)
    net, x, y = LeNet(), torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    results = []
    for forward in (relu_then_pool, lambda m, x: m(x)):
        net.zero_grad()
        out = forward(net, x)
        F.cross_entropy(out, y).backward()
        results.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    assert torch.equal(results[0][0], results[1][0])
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))
