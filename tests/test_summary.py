"""The reproduction table is filled from chapter metric files, claim by claim."""

from __future__ import annotations

import json

import pytest

from infocam import runs, summary

CH2 = {
    "seeds": [0, 1, 2],
    "log_k_minus_h": 0.119,
    "paper_bias": {
        "softmax_d1_balanced": 0.004, "softmax_d10_balanced": -0.01,
        "pc_softmax_d1_balanced": 0.004, "pc_softmax_d10_balanced": -0.01,
        "softmax_d1_imbalanced": 0.12, "softmax_d10_imbalanced": 0.11,
        "pc_softmax_d1_imbalanced": 0.01, "pc_softmax_d10_imbalanced": -0.02,
    },
}
CH3 = {
    "mnist_train_counts": [30, 300, 30, 300, 30, 300, 30, 300, 30, 300],
    "mnist_summary": {"softmax": {"mean per-class accuracy": [0.90, 0.01]},
                      "pc_softmax": {"mean per-class accuracy": [0.93, 0.005]}},
    "mnist_pc_minus_softmax_mean_class_accuracy": 0.03,
    "cub": {"backbone": "efficientnet_lite0", "image_size": 224, "train_test": {"imbalanced": [700, 500]},
            "summary": {"imbalanced/pc_softmax": {"accuracy": [0.70, 0.01], "mean per-class accuracy": [0.69, 0.01]}},
            "pc_minus_softmax_mean_class_accuracy_imbalanced": 0.02},
}


def loc(seeds=(0,), **methods):
    """A localisation record as :func:`infocam.localisation.record` writes it: id -> (label, role, metrics)."""
    roles = {"cam": "cam", "centre": "prior"}
    return {"seeds": list(seeds), "methods": {
        mid: {"label": label, "role": roles.get(mid, "infocam" if mid.startswith("infocam") else "other"), **values}
        for mid, (label, values) in methods.items()}}


LOC = dict(cam=("CAM", {"top1_loc": 0.30, "maxboxacc_v2": 0.40, "top1_loc_sd": 0.01, "maxboxacc_v2_sd": 0.02}),
           **{"infocam-mean-others-k3": ("infoCAM mean-others k=3", {"top1_loc": 0.45, "maxboxacc_v2": 0.55}),
              "infocam-mean-others-k3-faithful": ("infoCAM mean-others k=3 faithful", {"top1_loc": 0.99, "maxboxacc_v2": 0.99})},
           centre=("centre Gaussian (no network)", {"top1_loc": 0.50, "maxboxacc_v2": 0.60}))
CH4 = {"seeds": 2, "localisation": {"cluttered_mnist": loc((0, 1), **LOC), "cub": loc((0, 1), **LOC)}}


def row(table, claim_start):
    rows = table[table["claim"].str.startswith(claim_start)]
    assert len(rows) == 1, claim_start
    return rows.iloc[0]


def test_every_claim_of_the_issue_has_a_row():
    table = summary.reproduction_table({})
    assert len(table) == 9
    assert (table["verdict"] == summary.NOT_RUN).all()
    assert table["note"].str.contains("not run in this build").all()
    papers = " ".join(table["paper"])
    for number in ("89.73", "87.69", "55.83", "43.34"):
        assert number in papers


def test_rows_are_filled_from_metric_files(tmp_path):
    for name, metrics in {"02_synthetic_mi": CH2, "03_imbalanced": CH3, "04_infocam": CH4}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(metrics))
    table = summary.reproduction_table(summary.load_metrics(tmp_path), {"03_imbalanced": {"seed": 0, "seeds": 5}})
    bal = row(table, "softmax log K")
    assert bal["verdict"] == "reproduced" and "-0.010" in bal["ours"] and bal["seeds"].startswith("3 ")
    assert row(table, "PC-softmax estimates")["verdict"] == "reproduced"
    mnist = row(table, "PC-softmax raises")
    assert mnist["verdict"] == "reproduced" and "+3.00 points" in mnist["ours"] and mnist["seeds"] == "5 (0–4)"
    assert "93.00 ± 0.50" in mnist["ours"] and "1650 training digits" in mnist["scale"]
    cub = row(table, "PC-softmax on imbalanced CUB")
    assert cub["verdict"] == "reproduced in direction only" and "70.0 ± 1.0 %" in cub["ours"]
    clutter = row(table, "infoCAM localises")
    assert clutter["verdict"] == "reproduced in direction only" and "CAM 40.0 ± 2.0 %" in clutter["ours"]
    assert "centre prior 60.0" in clutter["ours"] and "infoCAM > CAM; neither beats the network-free centre prior" in clutter["note"]
    birds = row(table, "infoCAM on CUB birds, frozen")
    assert "45.0 %" in birds["ours"] and "99" not in birds["ours"]  # the faithful row is not the headline
    assert "CAM 30.0 ± 1.0 %" in birds["ours"] and birds["seeds"] == "2 (0–1)"
    assert birds["verdict"] == "reproduced in direction only"
    assert row(table, "infoCAM on Tiny")["verdict"] == summary.NOT_RUN


def test_wrong_direction_and_missing_keys_are_said(tmp_path):
    worse = json.loads(json.dumps(CH3))
    worse["mnist_pc_minus_softmax_mean_class_accuracy"] = -0.01
    del worse["cub"]
    biased = json.loads(json.dumps(CH2))
    biased["paper_bias"]["pc_softmax_d10_imbalanced"] = 0.2
    table = summary.reproduction_table({"03_imbalanced": worse, "02_synthetic_mi": biased})
    assert row(table, "PC-softmax raises")["verdict"] == "not reproduced"
    assert row(table, "PC-softmax estimates")["verdict"] == "not reproduced"
    cub = row(table, "PC-softmax on imbalanced CUB")
    assert cub["verdict"] == summary.NOT_RUN and "recorded no 'cub'" in cub["note"]


def test_localisation_with_another_backbone_is_at_best_direction_only():
    cam = ("CAM", {"top1_loc": 0.40})
    rows = loc(cam=cam, **{"infocam-mean-others-k4": ("k=4", {"top1_loc": 0.5583})})  # the paper's number exactly
    tiny = loc(cam=cam, **{"infocam-mean-others-k4": ("k=4", {"top1_loc": 0.30})})
    table = summary.reproduction_table({"05_trained_wsol": {"localisation": {"cub": rows, "tiny_imagenet": tiny}}})
    assert row(table, "infoCAM on CUB birds, trained")["verdict"] == "reproduced in direction only"
    assert row(table, "infoCAM on Tiny")["verdict"] == "not reproduced"


def test_a_lead_inside_the_noise_is_not_a_reproduction():
    cam = ("CAM", {"top1_loc": 0.428})
    rows = loc(cam=cam, **{"infocam-mean-others-k3": ("k=3", {"top1_loc": 0.4306})})
    table = summary.reproduction_table({"05_trained_wsol": {"localisation": {"tiny_imagenet": rows}, "tiny_report_images": 5000}})
    tiny = row(table, "infoCAM on Tiny")
    assert tiny["verdict"] == "not reproduced" and "within twice its noise" in tiny["note"]
    far = loc(cam=cam, **{"infocam-mean-others-k3": ("k=3", {"top1_loc": 0.46})})
    table = summary.reproduction_table({"05_trained_wsol": {"localisation": {"tiny_imagenet": far}, "tiny_report_images": 5000}})
    assert row(table, "infoCAM on Tiny")["verdict"] == "reproduced in direction only"
    seeds = loc((0, 1, 2), cam=("CAM", {"top1_loc": 0.40, "top1_loc_sd": 0.01}),
                **{"infocam-least-likely-k1": ("k=1", {"top1_loc": 0.41, "top1_loc_sd": 0.01})})
    table = summary.reproduction_table({"05_trained_wsol": {"localisation": {"cub": seeds}}})
    assert row(table, "infoCAM on CUB birds, trained")["verdict"] == "not reproduced"


def test_load_metrics_without_a_folder_is_empty(tmp_path):
    assert summary.load_metrics(None) == {}
    assert summary.load_metrics(tmp_path / "absent") == {}


def test_record_writes_the_chapter_file_in_the_book_build(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "_RECORDED", {})
    monkeypatch.delenv(runs.RESULTS_ENV, raising=False)
    monkeypatch.setenv(runs.METRICS_DIR_ENV, str(tmp_path / "metrics"))
    monkeypatch.setenv(runs.CHAPTER_ENV, "02_synthetic_mi")
    runs.record(log_k_minus_h=0.1)
    runs.record(seeds=[0])
    assert summary.load_metrics(tmp_path / "metrics") == {"02_synthetic_mi": {"log_k_minus_h": 0.1, "seeds": [0]}}


def test_record_writes_no_file_outside_the_book_build(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "_RECORDED", {})
    monkeypatch.delenv(runs.RESULTS_ENV, raising=False)
    monkeypatch.setenv(runs.METRICS_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(runs.CHAPTER_ENV, raising=False)
    runs.record(x=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["paper_bias/absent", "cub/summary"])
def test_get_names_the_missing_key(path):
    with pytest.raises(summary.NotRecorded, match=path.split("/")[0]):
        summary.get({"paper_bias": {}}, path)


def test_recorded_claims_reads_every_chapters_claims_from_the_build(tmp_path, monkeypatch):
    from infocam.claims import claim

    monkeypatch.delenv(runs.RESULTS_ENV, raising=False)
    monkeypatch.delenv(runs.CLAIMS_ENV, raising=False)
    monkeypatch.setenv(runs.METRICS_DIR_ENV, str(tmp_path))
    for chapter, holds in (("02_b", True), ("01_a", True)):
        monkeypatch.setattr(runs, "_RECORDED", {})
        monkeypatch.setenv(runs.CHAPTER_ENV, chapter)
        claim(f"{chapter}-claim", f"what {chapter} says", holds, x=1.0)
        runs.record(other=1)
    table = summary.recorded_claims(summary.load_metrics(tmp_path))
    assert table.to_dict("records") == [
        {"chapter": "01_a", "id": "01_a-claim", "statement": "what 01_a says", "holds": True},
        {"chapter": "02_b", "id": "02_b-claim", "statement": "what 02_b says", "holds": True},
    ]
    assert list(summary.recorded_claims({}).columns) == ["chapter", "id", "statement", "holds"]


def test_ladder_row_needs_every_rung_beyond_its_noise():
    rung = lambda name, gain, sd, centre=False: {"rung": name, "gain": gain, "gain_sd": sd, "seeds": 3,  # noqa: E731
                                                 "infocam_beats_centre": centre}
    held = {"ladder": {"Top-1 Loc": [rung("linear", 0.15, 0.01), rung("head", 0.03, 0.01, True)], "trend": "t"}}
    r = row(summary.reproduction_table({"05_trained_wsol": held}), "infoCAM > CAM at every rung")
    assert r["verdict"] == "reproduced in direction only" and "linear +15.0 ± 1.0; head +3.0 ± 1.0" in r["ours"]
    assert "beats the network-free centre prior at head" in r["note"]
    shrunk = {"ladder": {"Top-1 Loc": [rung("linear", 0.15, 0.01), rung("stage7", 0.01, 0.02)]}}
    assert row(summary.reproduction_table({"05_trained_wsol": shrunk}), "infoCAM > CAM at every rung")["verdict"] == "not reproduced"
