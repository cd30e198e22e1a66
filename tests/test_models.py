"""The paper's trainable networks: VGG16-GAP, ResNet-50 (layer4 stride 1), Inception-V3, Lite0 by stage, ADL positions."""

import pytest
import torch
from torch import nn

from infocam.models import pretrained
from infocam.models.adl import ADL
from infocam.models.inception import InceptionV3
from infocam.models.lite0_cam import Lite0CAM
from infocam.models.resnet_cam import ResNet50CAM
from infocam.models.vgg_gap import VGG16GAP
from infocam.paths import DataError


def _preceding(seq: nn.Sequential):
    """(type of the module before, ADL) pairs of a Sequential."""
    mods = list(seq)
    return [(mods[i - 1], m) for i, m in enumerate(mods) if isinstance(m, ADL)]


def test_vgg16_gap_layout_maps_and_adl_positions():
    net = VGG16GAP(5, adl=True)
    body = list(net.body)
    convs = [m for m in body if isinstance(m, nn.Conv2d)]
    pools = [m for m in body if isinstance(m, nn.MaxPool2d)]
    assert len(convs) == 13 and len(pools) == 4  # pool5 removed
    assert (net.conv6.in_channels, net.conv6.out_channels, net.conv6.kernel_size) == (512, 1024, (3, 3))
    adls = [i for i, m in enumerate(body) if isinstance(m, ADL)]
    assert len(adls) == 3 and all(body[i].gamma == 0.8 and body[i].drop_rate == 0.75 for i in adls)
    # after pool3, pool4 and conv5_3 (its ReLU): count the convs before each ADL
    assert [sum(isinstance(m, nn.Conv2d) for m in body[:i]) for i in adls] == [7, 10, 13]
    assert isinstance(body[adls[0] - 1], nn.MaxPool2d) and isinstance(body[adls[1] - 1], nn.MaxPool2d)
    x = torch.randn(2, 3, 64, 64)
    assert net.features(x).shape == (2, 1024, 4, 4)  # 224 px → 14×14 (stride 16)
    assert net(x).shape == (2, 5)
    net.eval()
    torch.testing.assert_close(net(x), net.fc(net.features(x).mean((2, 3))))
    assert not any(isinstance(m, ADL) for m in VGG16GAP(5).modules())
    assert VGG16GAP.new_layers == ("conv6", "fc")


def test_resnet50_layer4_stride_one_and_adl_positions():
    net = ResNet50CAM(5, adl=True)
    stem, l1, l2, l3, l4 = net.features
    assert isinstance(l3[1], ADL) and isinstance(l4[1], ADL) and isinstance(l4[4], ADL)
    assert sum(isinstance(m, ADL) for m in net.modules()) == 3 and l3[1].gamma == 0.9
    assert net.features(torch.randn(1, 3, 64, 64)).shape == (1, 2048, 4, 4)  # 224 px → 14×14
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_inception_v3_and_lite0_stages():
    assert InceptionV3(4).eval().features(torch.randn(1, 3, 96, 96)).shape[1] == 2048
    net = Lite0CAM(6, trainable_from="stage7", image_size=64)
    trainable = {n.split(".")[2] if n.startswith("features.top") else n.split(".")[0]
                 for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"stages", "head_conv", "fc"}
    assert not any(p.requires_grad for p in net.features.frozen.parameters())
    net.train()
    assert not net.features.frozen.training and net.features.top.training
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 6)
    whole = Lite0CAM(6, trainable_from="stage1", image_size=64)
    frozen = [n for n, p in whole.named_parameters() if not p.requires_grad]
    assert frozen and all("._fc." in n for n in frozen)  # only the replaced ImageNet head
    with pytest.raises(ValueError, match="not a stage"):
        Lite0CAM(6, trainable_from="stage9")


def test_lite0_fine_tunes_per_stage_through_the_engine():
    from torch.nn import functional as F

    from infocam.train import fit

    net = Lite0CAM(3, trainable_from="head", image_size=32)
    frozen_before = [p.clone() for p in net.features.frozen.parameters()][:3]
    X, y = torch.randn(12, 3, 32, 32), torch.arange(12) % 3
    h = fit(net, X, y, F.cross_entropy, epochs=2, batch_size=6, lr=0.05, momentum=0.9, head_lr_mult=10)
    assert len(h) == 2
    assert all(torch.equal(a, b) for a, b in zip(frozen_before, net.features.frozen.parameters()))


def test_missing_imagenet_weights_name_the_file_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("INFOCAM_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match=r"vgg16-397923af\.pth at .*data/weights.*torch/hub/checkpoints"):
        VGG16GAP(5, pretrained=True)
    with pytest.raises(DataError, match=r"resnet50-0676ba61\.pth"):
        ResNet50CAM(5, pretrained=True)
    with pytest.raises(DataError, match="does not exist"):
        ResNet50CAM(5, pretrained=True, weights_path=tmp_path / "nope.pth")


def test_weights_found_under_the_data_root_and_wrong_architecture_refused(tmp_path, monkeypatch):
    from torchvision.models import resnet50, vgg16

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    state = resnet50().state_dict()
    (tmp_path / "weights").mkdir()
    torch.save(state, tmp_path / "weights" / pretrained.weight_file("resnet50"))
    net = ResNet50CAM(5, pretrained=True, data_root=tmp_path)
    assert torch.equal(net.features[0][0].weight, state["conv1.weight"])
    assert torch.equal(net.features[4][2].conv3.weight, state["layer4.2.conv3.weight"])
    with pytest.raises(DataError, match="another architecture.*vgg16-397923af"):
        pretrained.load_into(vgg16(), state, "vgg16", "weights x.pth")
    vgg_state = vgg16().state_dict()
    monkeypatch.setattr("infocam.models.vgg_gap.imagenet_state_dict", lambda *a, **k: vgg_state)
    net = VGG16GAP(5, pretrained=True)
    assert torch.equal(net.body[0].weight, vgg_state["features.0.weight"])
    assert torch.equal(net.body[-2].weight, vgg_state["features.28.weight"])
