"""The threshold explorer: a slider for τ over a few images, their maps and boxes, offline.

The WSOL protocol turns a heat map into a box with one threshold τ: the pixels above τ times the
map's maximum form regions, each region's contour gives a box, and the largest contour's box is
scored against the truth (IoU). :func:`threshold_explorer` computes all of that for every τ of
the grid with the project's evaluator (:func:`infocam.wsol.reference_box_table` and
:func:`infocam.wsol.iou`), embeds it in one self-contained HTML fragment (a small dependency-free
script, no CDN, no kernel) and shows, per method side by side: the map over the image, the
region kept at τ, every contour's box, the largest contour's box, the ground truth, the IoU, and
where the τ chosen on the selection half sits. The kept region is drawn from the embedded uint8
score image and the evaluator's integer cut-off for that τ (a pixel is kept when it is strictly
above it, ``cv2.THRESH_BINARY``), so it is the mask the evaluator contoured.

The object it returns displays as that HTML in the book (``text/html``) and as a static PNG of
every panel at its chosen τ where HTML cannot run (``image/png``: PDF and LaTeX builds). Used in
chapter 4.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json

import numpy as np

from infocam import wsol

_IDS = itertools.count()
COLOURS = {"truth": "#00e000", "largest": "#ff2020", "contour": "#ffd000"}


def _png_uri(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _rgb(image, size) -> np.ndarray:
    """An image (H, W) or (H, W, 3), uint8 or in [0, 1], as uint8 RGB of ``size`` = (H, W)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[:2] != tuple(size) or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"explorer: every image must be (H, W) or (H, W, 3) at the maps' size {tuple(size)}, "
                         f"got {img.shape}; resize the images to the maps' size")
    return img


def _overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The heat map in matplotlib's ``jet`` over the image, as the book's localisation figures draw it."""
    from matplotlib import colormaps

    colour = colormaps["jet"](heat)[..., :3] * 255
    return ((1 - alpha) * rgb + alpha * colour).round().astype(np.uint8)


def _check(images, heatmaps: dict, gt_boxes, thresholds, taus: dict):
    if not heatmaps:
        raise ValueError("explorer: give at least one method's maps, e.g. {'CAM': maps}")
    maps = {name: np.asarray(m, dtype=np.float32) for name, m in heatmaps.items()}
    shapes = {m.shape for m in maps.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"explorer: every method needs maps of one shape (N, H, W), got {sorted(shapes)}")
    n, h, w = next(iter(shapes))
    if len(images) != n or len(gt_boxes) != n:
        raise ValueError(f"explorer: {n} maps per method but {len(images)} images and {len(gt_boxes)} ground-truth "
                         "entries; give one image and one box (or list of boxes) per map")
    if set(taus) != set(maps):
        raise ValueError(f"explorer: taus must name the same methods as the maps: {sorted(taus)} vs {sorted(maps)}")
    t = np.asarray(thresholds, dtype=np.float64)
    for name, tau in taus.items():
        if not t.min() <= tau <= t.max():
            raise ValueError(f"explorer: τ {tau} of {name!r} lies outside the threshold grid [{t.min():g}, {t.max():g}]")
    return maps, (h, w), t


def explorer_data(images, heatmaps: dict, gt_boxes, thresholds, taus: dict) -> dict:
    """Everything the widget shows, computed by the evaluator for every τ of ``thresholds``.

    ``images``: N images at the maps' size; ``heatmaps``: method → (N, H, W) normalised maps
    (:func:`infocam.wsol.prepare`); ``gt_boxes``: xyxy, (N, 4) or a list of (m_i, 4) at the maps'
    size; ``taus``: method → the τ chosen on the selection half. Per method and image: the overlay
    (PNG), the uint8 score image (base64), and per τ the cut-off, every contour's box, the largest
    contour's box, its IoU with the truth and the best IoU over every contour (the evaluator's
    ``components="largest"`` and ``"all"``).
    """
    maps, size, t = _check(images, heatmaps, gt_boxes, thresholds, taus)
    rgbs = [_rgb(img, size) for img in images]
    truths = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in gt_boxes]
    methods = []
    for name, stack in maps.items():
        u8 = wsol.to_uint8(stack)
        panels = []
        for i, heat in enumerate(stack):
            table = wsol.reference_box_table(heat, t)
            gt = truths[i]
            panels.append({
                "overlay": _png_uri(_overlay(rgbs[i], heat)),
                "u8": base64.b64encode(u8[i].tobytes()).decode(),
                "cutoffs": (t * float(u8[i].max())).astype(np.int64).tolist(),
                "boxes": [all_boxes.astype(int).tolist() for all_boxes, _ in table],
                "largest": [largest.astype(int).tolist() for _, largest in table],
                "iou": [float(wsol.iou(largest[None], gt).max()) for _, largest in table],
                "iou_all": [float(wsol.iou(all_boxes[:, None], gt[None]).max()) for all_boxes, _ in table],
            })
        chosen = int(np.argmin(np.abs(t - taus[name])))
        methods.append({"name": str(name), "tau": float(taus[name]), "tau_index": chosen, "panels": panels})
    return {"thresholds": t.round(6).tolist(), "size": list(size), "truth": [b.astype(int).tolist() for b in truths],
            "methods": methods}


_SCRIPT = r"""
(function () {
  var root = document.getElementById(ROOT_ID), D = JSON.parse(root.querySelector("script.tx-data").textContent);
  var H = D.size[0], W = D.size[1], S = SCALE, current = 0, bytes = {};
  function decode(b64) { var s = atob(b64), a = new Uint8Array(s.length); for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); return a; }
  function box(ctx, b, colour, width) { ctx.strokeStyle = colour; ctx.lineWidth = width;
    ctx.strokeRect(b[0] * S + 0.5, b[1] * S + 0.5, (b[2] - b[0] + 1) * S - 1, (b[3] - b[1] + 1) * S - 1); }
  function draw(m) {
    var method = D.methods[m], panel = method.panels[current], el = root.querySelectorAll(".tx-panel")[m];
    var k = +el.querySelector("input").value, canvas = el.querySelector("canvas"), ctx = canvas.getContext("2d");
    var img = new Image();
    img.onload = function () {
      ctx.imageSmoothingEnabled = false; ctx.drawImage(img, 0, 0, W * S, H * S);
      var key = m + ":" + current, u8 = bytes[key] || (bytes[key] = decode(panel.u8)), cut = panel.cutoffs[k];
      ctx.fillStyle = "rgba(0,0,0,0.55)";
      for (var y = 0; y < H; y++) for (var x = 0; x < W; x++) if (u8[y * W + x] <= cut) ctx.fillRect(x * S, y * S, S, S);
      panel.boxes[k].forEach(function (b) { box(ctx, b, COLOURS.contour, 1); });
      box(ctx, panel.largest[k], COLOURS.largest, 2.5);
      D.truth[current].forEach(function (b) { box(ctx, b, COLOURS.truth, 2); });
    };
    img.src = panel.overlay;
    var out = el.querySelector(".tx-readout");
    out.querySelector(".tx-tau").textContent = D.thresholds[k].toFixed(2);
    out.querySelector(".tx-iou").textContent = panel.iou[k].toFixed(3);
    out.querySelector(".tx-iou").setAttribute("data-iou", panel.iou[k]);
    var n = panel.boxes[k].length;
    out.querySelector(".tx-n").textContent = n === 1 ? "the 1 contour's box" : "all " + n + " contours' boxes";
    out.querySelector(".tx-iou-all").textContent = panel.iou_all[k].toFixed(3);
    out.querySelector(".tx-hit").textContent = panel.iou[k] >= 0.5 ? "a hit (IoU ≥ 0.5)" : "a miss (IoU < 0.5)";
  }
  root.querySelectorAll(".tx-panel").forEach(function (el, m) {
    var input = el.querySelector("input");
    input.addEventListener("input", function () { draw(m); });
    el.querySelector("button").addEventListener("click", function () { input.value = D.methods[m].tau_index; draw(m); });
  });
  root.querySelectorAll(".tx-pick button").forEach(function (b, i) {
    b.addEventListener("click", function () { current = i;
      root.querySelectorAll(".tx-pick button").forEach(function (o, j) { o.setAttribute("aria-pressed", String(j === i)); });
      D.methods.forEach(function (_, m) { draw(m); }); });
  });
  D.methods.forEach(function (_, m) { draw(m); });
})();
"""

_STYLE = """
.tx-root{font-size:0.9em;margin:0.5em 0 1em}
.tx-panels{display:flex;flex-wrap:wrap;gap:1em}
.tx-panel{flex:1 1 240px;max-width:300px}
.tx-panel canvas{width:100%;height:auto;display:block;image-rendering:pixelated}
.tx-panel input[type=range]{width:100%;margin:0.3em 0 0}
.tx-mark{position:relative;height:1.2em;font-size:0.8em;color:#555}
.tx-mark span{position:absolute;transform:translateX(-50%);white-space:nowrap}
.tx-readout{margin-top:0.2em;line-height:1.4}
.tx-pick{margin-bottom:0.5em}
.tx-pick button,.tx-panel button{font-size:0.85em;margin-right:0.3em}
.tx-pick button[aria-pressed=true]{font-weight:bold}
.tx-legend span{font-weight:bold}
@media print{.tx-pick,.tx-panel input,.tx-panel button,.tx-mark{display:none}}
"""


def render_html(data: dict, title: str = "") -> str:
    """The widget as one HTML fragment (style, markup, embedded data, script), its ids unique in the page."""
    root_id = f"infocam-tx-{next(_IDS)}"
    t, last = data["thresholds"], len(data["thresholds"]) - 1
    h, w = data["size"]
    scale = max(1, round(260 / w))  # canvas pixels per map pixel: about 260 px wide
    panels = []
    for m in data["methods"]:
        k = m["tau_index"]
        frac = k / last if last else 0  # the thumb's centre runs from 8 px to the width − 8 px
        panels.append(
            f'<div class="tx-panel"><div><b>{html.escape(m["name"])}</b></div>'
            f'<canvas width="{w * scale}" height="{h * scale}" role="img" '
            f'aria-label="{html.escape(m["name"])} map, regions and boxes at the chosen threshold"></canvas>'
            f'<input type="range" min="0" max="{last}" step="1" value="{k}" '
            f'aria-label="threshold τ for {html.escape(m["name"])}">'
            f'<div class="tx-mark"><span style="left:calc(8px + (100% - 16px) * {frac:.4f})" title="τ chosen on the selection half">▲</span></div>'
            f'<div class="tx-readout">τ = <span class="tx-tau"></span> (▲ chosen on the selection half: {t[k]:.2f})<br>'
            'IoU of the largest contour\'s box: '
            '<b class="tx-iou"></b>, <span class="tx-hit"></span><br>'
            'best IoU over <span class="tx-n"></span>: <span class="tx-iou-all"></span></div>'
            '<button type="button">back to the chosen τ</button></div>')
    picks = "".join(f'<button type="button" aria-pressed="{str(i == 0).lower()}">image {i + 1}</button>'
                    for i in range(len(data["truth"])))
    legend = (f'<div class="tx-legend"><span style="color:{COLOURS["truth"]}">■</span> ground truth · '
              f'<span style="color:{COLOURS["largest"]}">■</span> largest contour\'s box (scored) · '
              f'<span style="color:{COLOURS["contour"]}">■</span> every contour\'s box · dimmed: below τ</div>')
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    script = (_SCRIPT.replace("ROOT_ID", json.dumps(root_id))
              .replace("COLOURS", json.dumps(COLOURS)).replace("SCALE", str(scale)))
    heading = f"<div><b>{html.escape(title)}</b></div>" if title else ""
    return (f'<div class="tx-root" id="{root_id}"><style>{_STYLE}</style>{heading}'
            f'<div class="tx-pick">{picks}</div>{legend}<div class="tx-panels">{"".join(panels)}</div>'
            f'<script type="application/json" class="tx-data">{payload}</script><script>{script}</script></div>')


def static_figure(data: dict):
    """A matplotlib figure of every image (rows) and method (columns) at its chosen τ: the widget's first view."""
    import matplotlib.pyplot as plt
    from PIL import Image

    from infocam import plotting

    rows, cols = len(data["truth"]), len(data["methods"])
    fig, axes = plotting.subplots(rows, cols, width=2.2, height=2.3)
    h, w = data["size"]
    for c, m in enumerate(data["methods"]):
        k = m["tau_index"]
        for r, panel in enumerate(m["panels"]):
            ax = axes[r, c]
            rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(panel["overlay"].split(",", 1)[1]))), dtype=np.float64)
            below = np.frombuffer(base64.b64decode(panel["u8"]), dtype=np.uint8).reshape(h, w) <= panel["cutoffs"][k]
            rgb[below] *= 0.45
            ax.imshow(rgb.astype(np.uint8))
            for b in panel["boxes"][k]:
                plotting.draw_box(ax, b, color=COLOURS["contour"], lw=0.7)
            plotting.draw_box(ax, panel["largest"][k], color=COLOURS["largest"], lw=1.6)
            for b in data["truth"][r]:
                plotting.draw_box(ax, b, color=COLOURS["truth"], lw=1.2)
            ax.set_title(f"{m['name']}, τ = {data['thresholds'][k]:.2f}: IoU {panel['iou'][k]:.2f}", fontsize=7)
            ax.axis("off")
    plt.close(fig)
    return fig


class ThresholdExplorer:
    """Displays as the interactive widget (``text/html``) and, where HTML cannot run, as the static figure."""

    def __init__(self, data: dict, title: str = ""):
        self.data, self.title = data, title

    def html(self) -> str:
        return render_html(self.data, self.title)

    def png(self) -> bytes:
        buf = io.BytesIO()
        static_figure(self.data).savefig(buf, format="png", dpi=110, bbox_inches="tight")
        return buf.getvalue()

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_png_(self) -> bytes:
        return self.png()


def threshold_explorer(images, heatmaps: dict, gt_boxes, thresholds, taus: dict, title: str = "") -> ThresholdExplorer:
    """The explorer of ``images`` under each method's maps (see :func:`explorer_data`); ``display()`` it."""
    return ThresholdExplorer(explorer_data(images, heatmaps, gt_boxes, thresholds, taus), title)
