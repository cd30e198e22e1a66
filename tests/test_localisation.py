"""The one localisation pipeline (infocam.localisation): catalogue, map collection, scoring, results."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from infocam import localisation as L, wsol
from infocam.cam import class_maps
from infocam.data.cub import boxes_at_size, load_cub, make_fixture


def test_catalogue_ids_roles_and_order():
    ms = L.catalogue((1, 3), faithful_window=3)
    assert [m.id for m in ms] == ["cam", "infocam-mean-others-k1", "infocam-mean-others-k3", "infocam-least-likely-k1",
                                  "infocam-least-likely-k3", "infocam-mean-others-k3-faithful", "centre"]
    assert [m.role for m in ms] == ["cam", *["infocam"] * 5, "prior"]
    assert ms[2].label == "infoCAM mean-others k=3" and ms[5].label.endswith("faithful")
    assert [m.id for m in L.catalogue((1,), roles=("cam", "prior"))] == ["cam", "centre"]
    with pytest.raises(KeyError, match="no method with id"):
        L.by_id(ms, ["gradcam"])
    with pytest.raises(ValueError, match="windows"):
        L.catalogue(())


def _features():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(10, 6, 4, 4, generator=g).numpy()
    return feats, torch.randn(3, 6, generator=g), torch.randn(3, generator=g), np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])


def test_maps_from_features_equal_class_maps():
    feats, W, b, labels = _features()
    index = np.array([1, 4, 7, 8])
    ms = L.catalogue((1, 3))
    maps, correct = L.maps_from_features(feats, labels, W, b, ms, index=index, batch_size=3)
    x = torch.from_numpy(feats[index])
    logits = x.mean((2, 3)) @ W.T + b
    np.testing.assert_allclose(maps["cam"], class_maps(x, W, labels[index], variant="none", window=1), rtol=1e-5)
    np.testing.assert_allclose(maps["infocam-least-likely-k3"],
                               class_maps(x, W, labels[index], logits, variant="least-likely", window=3), rtol=1e-5)
    assert (maps["centre"] == maps["centre"][0]).all() and maps["centre"][0, 1:3, 1:3].min() > 0.6
    np.testing.assert_array_equal(correct, logits.argmax(1).numpy() == labels[index])
    doubled, _ = L.maps_from_features(feats, labels, W, b, ms[:1], transform=lambda f: 2 * f, index=index)
    np.testing.assert_allclose(doubled["cam"], 2 * maps["cam"], rtol=1e-5)


class _GAP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Conv2d(1, 6, 3, padding=1)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_maps_from_model_equal_maps_from_features_and_read_boxes():
    torch.manual_seed(0)
    net, X, y = _GAP().eval(), torch.randn(7, 1, 5, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    ms = L.catalogue((1, 3))
    out = L.maps_from_model(net, (X, y), ms, batch_size=3)
    with torch.no_grad():
        feats = net.features(X)
    ref, correct = L.maps_from_features(feats.numpy(), y.numpy(), net.fc.weight, net.fc.bias, ms)
    for mid in ref:
        np.testing.assert_allclose(out["maps"][mid], ref[mid], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["correct"], correct)
    assert out["boxes"] is None and (out["labels"] == y.numpy()).all()
    boxes = torch.tensor([[0, 0, 4, 4]] * 7)
    assert L.maps_from_model(net, torch.utils.data.TensorDataset(X, y, boxes), ms[:1])["boxes"].shape == (7, 4)


def _blob_maps(boxes, size, shift=0):
    maps = np.zeros((len(boxes), size, size), np.float32)
    for m, (x0, y0, x1, y1) in zip(maps, boxes.astype(int)):
        m[y0 + shift : y1 + 1 + shift, x0 + shift : x1 + 1 + shift] = 1
    return maps


def test_halves_are_stratified_and_refuse_what_cannot_be_halved():
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0])
    select, report = L.halves(labels)
    assert set(select) | set(report) == set(range(8)) and not set(select) & set(report)
    assert sorted(labels[report]) == [0, 1, 2] and sorted(labels[select]) == [0, 0, 1, 1, 2]
    with pytest.raises(ValueError, match="cannot be halved"):
        L.halves(np.array([0, 1, 2]))


def test_score_one_pass_both_protocols_and_results():
    rng = np.random.default_rng(0)
    x0, y0 = rng.integers(0, 20, (2, 40))
    boxes = np.stack([x0, y0, x0 + 15, y0 + 15], 1).astype(float)
    labels, correct = np.arange(40) % 4, np.arange(40) % 2 == 0
    split = L.halves(labels)
    ms = [L.CAMMethod("cam", "CAM"), L.infocam("mean-others", 3)]
    maps = {"cam": _blob_maps(boxes, 40), "infocam-mean-others-k3": _blob_maps(boxes, 40, shift=9)}
    curves = {}
    t = L.score(maps, boxes, correct, (40, 40), split, methods=ms, running_batch=3, curves=curves)
    assert list(t.index) == ["cam", "infocam-mean-others-k3"] and t.loc["cam", "method"] == "CAM"
    assert t.loc["cam", "gt_known_loc"] == 1.0 and t.loc["cam", "top1_loc"] == 0.5 and t.loc["cam", "images"] == 20
    assert t.loc["infocam-mean-others-k3", "gt_known_loc"] < 0.5 and set(curves) == set(maps)
    rep = split[1]
    for mid, m in maps.items():  # the original protocol equals wsol.evaluate's own, from the same curves
        o = wsol.evaluate(None, None, m[rep], boxes[rep], correct[rep], (40, 40), protocol="original")
        ra = wsol.evaluate(None, None, m[rep], boxes[rep], correct[rep], (40, 40), protocol="original", running_average=3)
        assert t.loc[mid, "original_top1_loc"] == o["top1_loc"] and t.loc[mid, "original_top1_loc_running"] == ra["top1_loc"]
    with pytest.raises(ValueError, match="no maps"):
        L.score({}, boxes, correct, (40, 40), split)


def _long():
    rows = []
    for seed, (cam, info, centre) in enumerate([(0.40, 0.45, 0.50), (0.42, 0.44, 0.52), (0.41, 0.47, 0.49)]):
        for mid, label, role, v in (("cam", "CAM", "cam", cam), ("infocam-mean-others-k1", "infoCAM mean-others k=1",
                                    "infocam", info), ("centre", "centre", "prior", centre)):
            rows.append({"seed": seed, "id": mid, "method": label, "role": role, "maxboxacc_v2": v, "top1_loc": v / 2,
                         "tau": 0.3})
    return pd.DataFrame(rows)


def test_comparison_verdict_record_and_table():
    long = _long()
    c = L.comparison(long, "maxboxacc_v2")
    assert c["best_infocam"] == "infocam-mean-others-k1" and c["gain"] == pytest.approx(0.0433333, abs=1e-6)
    assert c["gain_min"] == pytest.approx(0.02) and not c["infocam_beats_centre"] and not c["cam_beats_centre"]
    assert L.verdict(c) == "infoCAM > CAM; neither beats the network-free centre prior"
    flipped = long.copy()
    flipped.loc[(flipped.seed == 1) & (flipped.id == "cam"), "maxboxacc_v2"] = 0.9
    assert L.verdict(L.comparison(flipped)).startswith("infoCAM ≈ CAM")
    rec = L.record(long)
    assert rec["seeds"] == [0, 1, 2] and rec["methods"]["centre"]["role"] == "prior"
    assert rec["methods"]["cam"]["maxboxacc_v2"] == pytest.approx(0.41) and rec["methods"]["cam"]["maxboxacc_v2_sd"] > 0
    json.dumps(rec)
    table = L.display_table(long)
    assert list(table.index) == ["CAM", "infoCAM mean-others k=1", "centre"] and table.iloc[0, -1] == "0.30"


def test_fixture_boxes_at_size(tmp_path):
    cub = load_cub(make_fixture(tmp_path, num_classes=3, n_train=4, n_test=5))
    test = np.flatnonzero(~cub.is_train)
    select, report = L.halves(cub.labels[test])
    assert len(select) == 9 and len(report) == 6
    boxes = boxes_at_size(cub, test[report], 50)
    assert boxes.shape == (6, 4) and (boxes[:, 2:] <= 50).all() and (boxes[:, 2:] > boxes[:, :2]).all()


def test_train_results_say_not_run_and_read_localisation(tmp_path):
    names = ["vgg16_gap-cub", "resnet50-tiny_imagenet"]
    empty = L.train_results("", names)
    for column in ("ours: top-1 accuracy", "ours: CAM Top-1 Loc", "ours: best infoCAM Top-1 Loc", "ours: centre prior Top-1 Loc"):
        assert (empty[column] == "not run").all()
    assert empty.loc["resnet50-tiny_imagenet", "dataset"] == "Tiny-ImageNet"
    assert empty.loc["resnet50-tiny_imagenet", "paper: infoCAM Top-1 Loc on the dataset"] == 43.34
    (tmp_path / "a").mkdir()
    loc = {"methods": {"cam": {"role": "cam", "top1_loc": 0.4321}, "centre": {"role": "prior", "top1_loc": 0.5},
                       "infocam-mean-others-k3": {"role": "infocam", "top1_loc": 0.4501}}}
    (tmp_path / "a" / "results.json").write_text(json.dumps(
        {"recipe": {"name": "vgg16_gap-cub"}, "test_top1": 0.7512, "localisation": loc}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text("{broken")
    table = L.train_results(tmp_path, names)
    row = table.loc["vgg16_gap-cub"]
    assert (row["ours: top-1 accuracy"], row["ours: CAM Top-1 Loc"], row["ours: best infoCAM Top-1 Loc"],
            row["ours: centre prior Top-1 Loc"]) == (75.12, 43.21, 45.01, 50.0)
    assert table.loc["resnet50-tiny_imagenet", "ours: top-1 accuracy"] == "not run"


DUMMY = """
from dataclasses import dataclass

import torch

from infocam.localisation import Method, register


@register
@dataclass(frozen=True)
class Uniform(Method):
    @classmethod
    def instances(cls, windows=(1, 3), faithful_window=None):
        return [cls("uniform", "uniform map (test method)")]

    def maps(self, features, weight, class_idx, logits):
        return torch.ones(len(features), *features.shape[2:])
"""


def test_a_method_added_in_one_file_appears_in_the_catalogue(tmp_path, monkeypatch):
    (tmp_path / "dummy_method.py").write_text(textwrap.dedent(DUMMY))
    code = ("from infocam import localisation as L; print([m.id for m in L.catalogue((1,))])")
    env = {"PYTHONPATH": str(tmp_path), L.methods.METHODS_ENV: "dummy_method"}
    import os

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert out.returncode == 0, out.stderr
    assert "'uniform'" in out.stdout and out.stdout.index("'centre'") < out.stdout.index("'uniform'")
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, L.methods.METHODS_ENV: "no_such_module_here"})
    assert bad.returncode != 0 and "INFOCAM_METHODS names module 'no_such_module_here'" in bad.stderr
