"""infocam.train: the one engine — old behaviour kept, groups, schedules, checkpoints, bit-equal resume."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infocam.device import DeviceError
from infocam.train import CheckpointError, fit, parameter_groups, predict_logits


def _data(n=203, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 12, 12, generator=g), torch.randint(0, 4, (n,), generator=g)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(),
                         nn.Linear(400, 4))


def test_same_losses_as_the_engine_before_devices_and_checkpoints():
    # Loss history of the pre-extension fit (commit b12d980) on this exact setup: the defaults of the
    # new keyword arguments must not change a single operation on CPU.
    X, y = _data()
    h = fit(_net(), X, y, F.cross_entropy, epochs=3, batch_size=16, seed=3, lr=0.05, momentum=0.5,
            weight_decay=1e-3)
    assert h == pytest.approx([1.6298771497651274, 1.1555317252727564, 0.9756589928284067], rel=1e-6)


def test_same_seed_same_weights_and_adam_learns():
    X, y = _data()
    a, b = _net(), _net()
    ha = fit(a, X, y, F.cross_entropy, epochs=3, batch_size=16, seed=3, lr=1e-2, optimizer="adam")
    hb = fit(b, X, y, F.cross_entropy, epochs=3, batch_size=16, seed=3, lr=1e-2, optimizer="adam")
    assert ha == hb and ha[-1] < ha[0]
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def _stop_after(n):
    def callback(epoch, history, model):
        if epoch + 1 == n:
            raise KeyboardInterrupt("simulated kill")
    return callback


@pytest.mark.parametrize("kw", [dict(momentum=0.9, nesterov=True, schedule="step", step_size=1, gamma=0.5),
                                dict(optimizer="adam", schedule="cosine")])
def test_resume_after_a_kill_is_bit_equal_to_an_uninterrupted_run(tmp_path, kw):
    X, y = _data()
    settings = dict(epochs=3, batch_size=16, seed=5, lr=0.02, weight_decay=1e-4, head="5", head_lr_mult=10, **kw)
    full = _net()
    h_full = fit(full, X, y, F.cross_entropy, **settings)
    ckpt = tmp_path / "run" / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(_net(), X, y, F.cross_entropy, checkpoint=ckpt, on_epoch=_stop_after(1), **settings)
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1
    assert not [p for p in ckpt.parent.iterdir() if p.name != "last.pt"]  # no temp file left behind
    torch.manual_seed(123)  # a fresh process: other RNG state, other initial weights
    resumed = nn.Sequential(*[m for m in _net()])
    for p in resumed.parameters():
        nn.init.normal_(p)
    seen = []
    h_res = fit(resumed, X, y, F.cross_entropy, checkpoint=ckpt, resume=True,
                on_epoch=lambda e, h, m: seen.append(e), **settings)
    assert seen == [1, 2]
    assert h_res == h_full
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n


def test_checkpoint_of_another_run_is_refused(tmp_path):
    X, y = _data(64)
    ckpt = tmp_path / "last.pt"
    fit(_net(), X, y, F.cross_entropy, epochs=1, checkpoint=ckpt, run_key="recipe-a")
    with pytest.raises(CheckpointError, match="another run.*run_key"):
        fit(_net(), X, y, F.cross_entropy, epochs=1, checkpoint=ckpt, resume=True, run_key="recipe-b")
    with pytest.raises(CheckpointError, match="another run.*lr"):
        fit(_net(), X, y, F.cross_entropy, epochs=1, lr=0.5, checkpoint=ckpt, resume=True, run_key="recipe-a")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        fit(_net(), X, y, F.cross_entropy, epochs=1, checkpoint=tmp_path / "junk.pt", resume=True)


def test_finished_checkpoint_resumes_to_the_same_weights_without_training(tmp_path):
    X, y = _data(64)
    ckpt = tmp_path / "last.pt"
    a = _net()
    h = fit(a, X, y, F.cross_entropy, epochs=2, checkpoint=ckpt)
    b = _net()
    for p in b.parameters():
        nn.init.zeros_(p)
    assert fit(b, X, y, F.cross_entropy, epochs=2, checkpoint=ckpt, resume=True, on_epoch=_stop_after(0)) == h
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_head_lr_mult_puts_new_layers_in_a_tenfold_group():
    net = _net()
    groups = parameter_groups(net, 0.01, head="5", head_lr_mult=10)
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.1)]
    assert {id(p) for p in groups[1]["params"]} == {id(net[5].weight), id(net[5].bias)}
    net.new_layers = ("5",)
    assert len(parameter_groups(net, 0.01, head_lr_mult=10)[1]["params"]) == 2
    with pytest.raises(ValueError, match="matches no trainable parameter"):
        parameter_groups(net, 0.01, head="classifier", head_lr_mult=10)
    del net.new_layers
    with pytest.raises(ValueError, match="needs the new layers"):
        parameter_groups(net, 0.01, head_lr_mult=10)
    explicit = parameter_groups(net, 0.01, param_groups=[{"params": net[0].parameters(), "lr_mult": 0.1},
                                                         {"params": net[5].parameters()}])
    assert [g["lr"] for g in explicit] == [pytest.approx(0.001), 0.01]


def test_frozen_parameters_stay_put_and_schedule_steps_per_epoch():
    X, y = _data(64)
    net = _net()
    net[0].requires_grad_(False)
    before = net[0].weight.clone()
    lrs = []
    fit(net, X, y, F.cross_entropy, epochs=3, lr=0.1, schedule="step", step_size=1, gamma=0.1,
        on_epoch=lambda e, h, m: lrs.append(e))
    assert torch.equal(before, net[0].weight)
    assert lrs == [0, 1, 2]


def test_dataset_path_trains_and_is_repeatable():
    X, y = _data(96)
    ds = torch.utils.data.TensorDataset(X, y)
    ha = fit(_net(), ds, None, F.cross_entropy, epochs=2, batch_size=16, seed=2)
    hb = fit(_net(), ds, None, F.cross_entropy, epochs=2, batch_size=16, seed=2)
    assert ha == hb and len(ha) == 2
    logits = predict_logits(_net(), ds, batch_size=32, device="cpu")
    assert logits.shape == (96, 4)


def test_bf16_autocast_on_cpu_trains():
    X, y = _data(64)
    h = fit(_net(), X, y, F.cross_entropy, epochs=2, precision="bf16", lr=0.05)
    assert all(map(lambda v: v == v, h))


@pytest.mark.parametrize("kw, err, match", [
    (dict(device="cuda"), DeviceError, "has none"),
    (dict(precision="fp16"), DeviceError, "needs a GPU"),
    (dict(nesterov=True), ValueError, "momentum > 0"),
    (dict(optimizer="adam", nesterov=True), ValueError, "applies to optimizer=.sgd. only"),
    (dict(schedule="linear"), ValueError, "unknown schedule"),
    (dict(optimizer="lbfgs"), ValueError, "unknown optimizer"),
])
def test_bad_settings_are_one_clear_error(kw, err, match):
    if torch.cuda.is_available() and kw.get("device") == "cuda":
        pytest.skip("this machine has CUDA")
    X, y = _data(32)
    with pytest.raises(err, match=match):
        fit(_net(), X, y, F.cross_entropy, epochs=1, **kw)
    with pytest.raises(ValueError, match="pass y=None"):
        fit(_net(), torch.utils.data.TensorDataset(X, y), y, F.cross_entropy, epochs=1)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_on_an_image_folder_with_random_crops_is_bit_equal(tmp_path, workers):
    import numpy as np

    from infocam.data import transforms as T
    from infocam.data.cub import load_cub
    from infocam.data.images import cub_dataset
    from tests.test_cub import make_tiny_cub

    cub = load_cub(make_tiny_cub(tmp_path, num_classes=4, n_train=6, n_test=0))
    data = cub_dataset(cub, np.arange(len(cub)), T.train_transform(24, 32))

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 11 * 11, 4))

    settings = dict(epochs=3, batch_size=8, lr=0.05, momentum=0.9, seed=1, num_workers=workers)
    full = net()
    h_full = fit(full, data, None, F.cross_entropy, **settings)
    ckpt = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(net(), data, None, F.cross_entropy, checkpoint=ckpt, on_epoch=_stop_after(1), **settings)
    torch.manual_seed(99)
    resumed = net()
    assert fit(resumed, data, None, F.cross_entropy, checkpoint=ckpt, resume=True, **settings) == h_full
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dataset", [False, True], ids=["tensors", "dataset"])
def test_a_stop_request_mid_epoch_checkpoints_and_the_resume_is_bit_equal(tmp_path, monkeypatch, dataset):
    from infocam import train as engine

    X, y = _data(96)
    data = (torch.utils.data.TensorDataset(X, y), None) if dataset else (X, y)
    settings = dict(epochs=3, batch_size=16, seed=5, lr=0.05, momentum=0.9, schedule="step", step_size=1)
    full = _net()
    h_full = fit(full, *data, F.cross_entropy, **settings)
    ckpt = tmp_path / "last.pt"
    # n counts the batches trained so far (0 at an epoch's end): stop after batch 3 of epoch 2
    monkeypatch.setattr(engine, "_stop_requested", lambda size, n, dev: n == 6 + 3)
    with pytest.raises(engine.Stopped, match="stopped in epoch 2 after 3 batches"):
        fit(_net(), *data, F.cross_entropy, checkpoint=ckpt, **settings)
    monkeypatch.undo()
    state = torch.load(ckpt, weights_only=False)
    assert (state["epoch"], state["step"], state["partial"][1]) == (1, 3, 48)
    resumed = _net()
    assert fit(resumed, *data, F.cross_entropy, checkpoint=ckpt, resume=True, **settings) == h_full
    assert all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), resumed.state_dict().values()))


def test_request_stop_is_what_sigterm_calls(tmp_path):
    from infocam import train as engine

    X, y = _data(64)

    def stop_now(epoch, history, model):
        engine.request_stop()
    ckpt = tmp_path / "last.pt"
    h = fit(_net(), X, y, F.cross_entropy, epochs=1, checkpoint=ckpt, on_epoch=stop_now)
    assert len(h) == 1  # the request after the last epoch ends nothing; the flag is cleared for the next fit
    fit(_net(), X, y, F.cross_entropy, epochs=1)
    engine.request_stop()
    with pytest.raises(engine.Stopped, match="after 1 batches"):
        fit(_net(), X, y, F.cross_entropy, epochs=2, checkpoint=ckpt, resume=False)


def test_force_resume_takes_a_checkpoint_of_other_settings_but_not_of_another_network(tmp_path):
    X, y = _data(64)
    ckpt = tmp_path / "last.pt"
    fit(_net(), X, y, F.cross_entropy, epochs=1, lr=0.1, checkpoint=ckpt, run_key={"train.lr": 0.1})
    with pytest.raises(CheckpointError, match=r"train.lr: checkpoint 0.1 vs now 0.2.*--force-resume"):
        fit(_net(), X, y, F.cross_entropy, epochs=2, lr=0.2, checkpoint=ckpt, resume=True, run_key={"train.lr": 0.2})
    h = fit(_net(), X, y, F.cross_entropy, epochs=2, lr=0.2, checkpoint=ckpt, resume=True, force_resume=True,
            run_key={"train.lr": 0.2})
    assert len(h) == 2
    other = nn.Sequential(nn.Flatten(), nn.Linear(144, 4))
    with pytest.raises(CheckpointError, match="tensors"):
        fit(other, X, y, F.cross_entropy, epochs=3, checkpoint=ckpt, resume=True, force_resume=True,
            run_key={"train.lr": 0.2})


def test_channels_last_on_cpu_trains_to_the_same_losses():
    def net():  # no dropout: its mask follows the memory layout
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(400, 4))

    X, y = _data(64)
    plain = fit(net(), X, y, F.cross_entropy, epochs=2, lr=0.05)
    cl = fit(net(), X, y, F.cross_entropy, epochs=2, lr=0.05, channels_last=True)
    assert cl == pytest.approx(plain, rel=1e-5)


def test_default_workers_share_the_cores_among_the_ranks(monkeypatch):
    from infocam.train import default_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_workers(1) == 8 and default_workers(2) == 7 and default_workers(8) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_workers(8) == 3  # 4 ranks on this host of 16 cores


def test_a_stop_request_at_an_epochs_end_stops_there(tmp_path):
    from infocam import train as engine

    X, y = _data(64)
    settings = dict(epochs=3, batch_size=16, seed=1, lr=0.05)
    full = fit(_net(), X, y, F.cross_entropy, **settings)
    ckpt = tmp_path / "last.pt"
    with pytest.raises(engine.Stopped, match="stopped after epoch 1;"):
        fit(_net(), X, y, F.cross_entropy, checkpoint=ckpt, on_epoch=lambda e, h, m: engine.request_stop(), **settings)
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1
    assert fit(_net(), X, y, F.cross_entropy, checkpoint=ckpt, resume=True, **settings) == full


def test_fast_precision_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch):
    from infocam.train import fast_precision

    for has_bf16, has_amx, expected in ((True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=has_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=has_amx: v)
        assert fast_precision("cpu") == expected
        assert fast_precision(torch.device("cuda", 0)) == "fp32"


def test_bf16_autocast_on_cpu_is_bit_reproducible():
    """Chapter 3 trains its LeNets in bf16 autocast on CPUs with native bf16: same seed, same weights."""
    X, y = _data()
    a, b = _net(), _net()
    ha = fit(a, X, y, F.cross_entropy, epochs=2, batch_size=16, seed=3, lr=0.05, momentum=0.5,
             precision="bf16", channels_last=True)
    hb = fit(b, X, y, F.cross_entropy, epochs=2, batch_size=16, seed=3, lr=0.05, momentum=0.5,
             precision="bf16", channels_last=True)
    assert ha == hb and all(p.dtype == torch.float32 for p in a.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
