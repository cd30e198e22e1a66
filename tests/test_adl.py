"""ADL: identity at eval, drop mask or importance map at train time, drop frequency."""

import pytest
import torch

from infocam.models.adl import ADL
from infocam.models.cnn_gap import CNNGAP


def _x():
    return torch.rand(3, 4, 6, 6, generator=torch.Generator().manual_seed(0))


def test_identity_at_eval():
    x = _x()
    assert torch.equal(ADL().eval()(x), x)


def test_drop_mask_and_importance_map():
    x = _x()
    a = x.mean(1, keepdim=True)
    peak = a.flatten(1).max(1).values.view(-1, 1, 1, 1)
    dropped = ADL(drop_rate=1.0, gamma=0.9).train()(x)
    torch.testing.assert_close(dropped, x * (a < 0.9 * peak).float())
    assert (dropped.flatten(1).eq(0).any(1)).all()  # the peak cell of every sample is dropped
    stressed = ADL(drop_rate=0.0).train()(x)
    torch.testing.assert_close(stressed, x * torch.sigmoid(a))


def test_drop_rate_frequency():
    torch.manual_seed(0)
    layer = ADL(drop_rate=0.75, gamma=0.5).train()
    x = _x()
    mask = layer.drop_mask(layer.attention(x))
    drops = sum(torch.equal(layer(x), x * mask) for _ in range(2000))
    assert abs(drops / 2000 - 0.75) < 0.04


def test_bad_arguments_and_network():
    with pytest.raises(ValueError, match="drop_rate"):
        ADL(drop_rate=1.5)
    with pytest.raises(ValueError, match="gamma"):
        ADL(gamma=-0.1)
    with pytest.raises(ValueError, match="N, C, h, w"):
        ADL().train()(torch.rand(2, 3))
    net = CNNGAP(adl=True, widths=(4, 4, 8, 8)).eval()
    assert sum(isinstance(m, ADL) for m in net.modules()) == 2
    assert sum(p.numel() for m in net.modules() if isinstance(m, ADL) for p in m.parameters()) == 0
    x = torch.rand(2, 1, 28, 28)
    features_without_adl = torch.nn.Sequential(*[m for m in net.features if not isinstance(m, ADL)])
    torch.testing.assert_close(net.features(x), features_without_adl(x))  # identity at eval
