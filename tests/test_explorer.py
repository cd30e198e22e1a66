"""The threshold explorer: its data are the evaluator's, and the slider in a real browser shows them."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from infocam import browser, explorer, wsol
from infocam.editions import find_chromium

SIZE = (48, 40)
THRESHOLDS = wsol.default_thresholds(0.05)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(3)
    raw = rng.random((2, 6, 5)).astype(np.float32)
    maps = {"CAM": wsol.prepare(raw, SIZE), "infoCAM": wsol.prepare(raw**3, SIZE)}
    images = [rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8), rng.random(SIZE)]
    truth = [np.array([5, 8, 30, 40]), np.array([[0, 0, 10, 12], [20, 20, 39, 47]])]
    return images, maps, truth, {"CAM": 0.3, "infoCAM": 0.52}


@pytest.fixture(scope="module")
def data(inputs):
    return explorer.explorer_data(*inputs[:3], THRESHOLDS, inputs[3])


def test_ious_are_the_evaluators(inputs, data):
    _, maps, truth, _ = inputs
    for m in data["methods"]:
        for components, key in (("largest", "iou"), ("all", "iou_all")):
            curves = wsol.iou_curves(maps[m["name"]], truth, THRESHOLDS, components=components)
            np.testing.assert_allclose([p[key] for p in m["panels"]], curves)


def test_boxes_and_mask_are_the_evaluators(inputs, data):
    _, maps, _, _ = inputs
    heat = maps["infoCAM"][1]
    table = wsol.reference_box_table(heat, THRESHOLDS)
    panel = data["methods"][1]["panels"][1]
    u8 = np.frombuffer(base64.b64decode(panel["u8"]), dtype=np.uint8).reshape(SIZE)
    for k, (all_boxes, largest) in enumerate(table):
        assert panel["boxes"][k] == all_boxes.astype(int).tolist()
        assert panel["largest"][k] == largest.astype(int).tolist()
        _, mask = cv2.threshold(wsol.to_uint8(heat)[0], panel["cutoffs"][k], 255, cv2.THRESH_BINARY)
        np.testing.assert_array_equal(u8 > panel["cutoffs"][k], mask > 0)  # what the widget dims is what was contoured


def test_chosen_tau_is_the_nearest_grid_point(data):
    assert [m["tau_index"] for m in data["methods"]] == [6, 10]  # 0.3 and 0.52 on a 0.05 grid


@pytest.mark.parametrize("change, message", [
    (lambda a: {**a, "taus": {"CAM": 0.3}}, "taus must name the same methods"),
    (lambda a: {**a, "taus": {"CAM": 1.5, "infoCAM": 0.2}}, "outside the threshold grid"),
    (lambda a: {**a, "images": a["images"][:1]}, "one image and one box"),
    (lambda a: {**a, "heatmaps": {"CAM": a["heatmaps"]["CAM"][:, :10]}, "taus": {"CAM": 0.3}}, "at the maps' size"),
    (lambda a: {**a, "heatmaps": {}}, "at least one method"),
])
def test_bad_input_is_one_clear_error(inputs, change, message):
    images, maps, truth, taus = inputs
    args = change({"images": images, "heatmaps": maps, "gt_boxes": truth, "taus": taus})
    with pytest.raises(ValueError, match=message):
        explorer.explorer_data(thresholds=THRESHOLDS, **args)


def test_displays_as_html_and_a_static_png(data):
    shown = explorer.ThresholdExplorer(data, title="birds")
    html = shown._repr_html_()
    assert "<script" in html and "http" not in html.replace("http://www.w3.org", "")  # nothing fetched from a CDN
    assert shown._repr_png_().startswith(b"\x89PNG")
    assert shown.html() != explorer.ThresholdExplorer(data).html()  # two widgets on one page get distinct ids


@pytest.mark.skipif(find_chromium() is None, reason="no chromium on PATH: the browser test needs Debian's `chromium`")
def test_slider_shows_the_evaluators_iou(tmp_path, inputs, data):
    _, maps, truth, _ = inputs
    page = tmp_path / "explorer.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'></head><body>"
                    + explorer.render_html(data) + "</body></html>")
    curve = wsol.iou_curves(maps["infoCAM"][:1], truth[:1], THRESHOLDS)[0]
    start = data["methods"][1]["tau_index"]
    target = next(k for k in range(len(THRESHOLDS)) if round(curve[k], 3) != round(curve[start], 3))
    shown = browser.probe(page, f"""
        var panel = document.querySelectorAll('.tx-panel')[1], slider = panel.querySelector('input');
        var read = function () {{ return [panel.querySelector('.tx-tau').textContent, panel.querySelector('.tx-iou').textContent]; }};
        var before = read();
        slider.value = {target}; slider.dispatchEvent(new Event('input'));
        return {{before: before, after: read()}};""", width=900)
    assert shown["before"] == [f"{THRESHOLDS[start]:.2f}", f"{curve[start]:.3f}"]
    assert shown["after"] == [f"{THRESHOLDS[target]:.2f}", f"{curve[target]:.3f}"]
    assert shown["after"][1] != shown["before"][1]
