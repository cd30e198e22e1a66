"""The training ladder (infocam.ladder) on random stage-6 activations and a generated Tiny-ImageNet folder."""

import numpy as np
import pytest
import torch

from infocam import finetune, ladder
from infocam import localisation as L

BUDGET = dict(epochs=1, batch_size=8, lr=0.01, head_lr_mult=10.0, weight_decay=1e-4, device="cpu")


@pytest.fixture(scope="module")
def data():
    """Random stage-6 activations of 16 images in 4 classes, the rungs' inputs and pooled frozen features."""
    rng = np.random.default_rng(0)
    cut = rng.normal(size=(16, 192, 7, 7)).astype(np.float16)
    acts = ladder.inputs(cut, ["linear", "head", "stage7"])
    return acts, finetune.pooled_features(finetune.frozen_top("head").features, acts["head"]), np.arange(16) % 4


def train(rung, data, **kw):
    acts, pooled, labels = data
    return ladder.train_rung(rung, acts=acts, pooled=pooled, labels=labels, num_classes=4, **{"seed": 0, **BUDGET, **kw})


@pytest.mark.parametrize("rung", ["linear", "head", "stage7"])
def test_every_rung_gives_maps(rung, data):
    transform, head, key = train(rung, data)
    assert key == {"stage7": "stage7"}.get(rung, "head") and head.weight.shape == (4, 1280)
    maps, correct = ladder.rung_maps((transform, head, key), L.catalogue([1]), acts=data[0], labels=data[2], index=[1, 5])
    assert correct.shape == (2,) and all(m.shape[0] == 2 for m in maps.values())


def test_whole_network_rung_trains_from_images(tmp_path):
    from infocam.data.tiny_imagenet import load_tiny_imagenet, make_fixture

    tiny = load_tiny_imagenet(make_fixture(tmp_path, num_classes=2, n_train=2, n_val=1), "train")
    model = ladder.train_rung("all", paths=tiny.paths, labels=tiny.labels, num_classes=2, seed=0, **BUDGET)
    maps, correct = ladder.rung_maps(model, L.by_id(L.catalogue([1]), ["cam"]), labels=tiny.labels, index=[0], paths=tiny.paths)
    assert maps["cam"].shape == (1, 7, 7) and correct.shape == (1,)


def test_same_seed_same_weights_and_the_chapters_calls(data):
    acts, pooled, labels = data
    nets, seconds = ladder.train_ladder(["head", "linear"], [0, 1], acts=acts, pooled=pooled, labels=labels, num_classes=4, **BUDGET)
    assert list(nets) == [("head", 0), ("head", 1), ("linear", 0), ("linear", 1)] and set(seconds) == set(nets)
    again = train("head", data, seed=1)[1]
    assert torch.equal(again.weight, nets["head", 1][1].weight)
    assert not torch.equal(nets["head", 0][1].weight, nets["head", 1][1].weight)
    # The calls chapter 5 made before the ladder module: same seed, same weights.
    from infocam.heads import train_linear_head

    old = train_linear_head(pooled, labels, 4, optimizer="sgd", momentum=0.9, nesterov=True, schedule="cosine", epochs=1,
                            batch_size=8, lr=0.1, weight_decay=1e-4, seed=1, device="cpu")
    assert torch.equal(old.weight, nets["linear", 1][1].weight)
    top = finetune.finetune_lite0(acts["head"], labels, 4, trainable_from="head", epochs=1, batch_size=8, lr=0.01,
                                  head_lr_mult=10.0, weight_decay=1e-4, seed=1, device="cpu")
    assert torch.equal(top._fc.weight, again.weight)


@pytest.mark.parametrize("rung", ["linear", "head"])
def test_init_starts_the_new_head(rung, data):
    W, b = torch.randn(4, 1280), torch.randn(4)
    head = train(rung, data, init=(W, b), lr=1e-9)[1]
    torch.testing.assert_close(head.weight, W, atol=1e-6, rtol=0)
    torch.testing.assert_close(head.bias, b, atol=1e-6, rtol=0)


def test_conv_rungs_train_in_the_precision_asked_for(data):
    # bf16 autocast runs on every CPU (emulated where not native): the passes change, the weights stay float32
    _, head32, _ = train("head", data)
    transform, head16, _ = train("head", data, precision="bf16")
    assert head16.weight.dtype == torch.float32 and not torch.equal(head16.weight, head32.weight)
    torch.testing.assert_close(head16.weight, head32.weight, atol=0.05, rtol=0)
    assert all(p.dtype == torch.float32 for p in transform.__self__.parameters())  # transform = top.features
    _, lin16, _ = train("linear", data, precision="bf16")
    assert torch.equal(lin16.weight, train("linear", data)[1].weight)  # the linear rung stays float32


def test_on_epoch_watches_the_chosen_net(data):
    acts, pooled, labels = data
    seen = []
    ladder.train_ladder(["head"], [0, 1], on_epoch={("head", 1): lambda e, h, net: seen.append(e)}, acts=acts,
                        pooled=pooled, labels=labels, num_classes=4, **{**BUDGET, "epochs": 2})
    assert seen == [0, 1]


def test_bad_input_says_what_to_do(data):
    with pytest.raises(ValueError, match=r"unknown ladder rung\(s\) \['stage5'\]: choose from \['linear', 'head', 'stage7', 'all'\]"):
        ladder.train_ladder(["head", "stage5"], [0], acts=data[0], labels=data[2], num_classes=4, **BUDGET)
    with pytest.raises(ValueError, match="pass pooled"):
        ladder.train_rung("linear", labels=data[2], num_classes=4, seed=0, **BUDGET)
    with pytest.raises(ValueError, match="key 'stage7'"):
        ladder.train_rung("stage7", acts={"head": data[0]["head"]}, labels=data[2], num_classes=4, seed=0, **BUDGET)
    with pytest.raises(ValueError, match="on_epoch"):
        train("linear", data, on_epoch=print)


@pytest.mark.slow  # runs chapter 5 in a kernel (~40 s)
def test_chapter_5_runs_the_tiny_imagenet_ladder_on_generated_folders(tmp_path):
    """`-p tiny_finetune=true` trains every rung on the Tiny-ImageNet training images and records the ladder."""
    import json
    import os
    import subprocess
    import sys

    from infocam.runs import REPO

    empty = tmp_path / "no-data"  # no dataset under it: the chapter runs on its generated folders
    empty.mkdir()
    env = {**os.environ, "INFOCAM_PROGRESS": "0"}
    out = subprocess.run([sys.executable, "-m", "infocam", "run", "05_trained_wsol", "--profile", "smoke", "-p", f"data_root={empty}",
                          "-p", "tiny_finetune=true", "-p", "tiny_epochs=1", "--runs-dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (results,) = (tmp_path / "runs" / "05_trained_wsol").glob("*/results.json")
    metrics = json.loads(results.read_text())["metrics"]
    tiny = metrics["tiny_ladder"]
    assert tiny["rungs"] == ["linear", "head", "stage7"] and tiny["training_images"] > 0
    assert [row["rung"] for row in tiny["Top-1 Loc"]] == tiny["rungs"]
    assert {f"tiny_ladder_{r}" for r in tiny["rungs"]} <= set(metrics["localisation"])
