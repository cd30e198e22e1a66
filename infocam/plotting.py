"""The book's one house style for figures (seaborn), and the colours that name each method.

Call :func:`use_house_style` once at the top of a chapter. Methods keep the same colour in every
chapter through :data:`METHOD_COLORS` (use :func:`color`).
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import matplotlib.pyplot as plt
import seaborn as sns

_PALETTE = sns.color_palette("colorblind", 10)
METHOD_COLORS = {
    "exact": "0.15",
    "softmax": _PALETTE[0],
    "pc_softmax": _PALETTE[1],
    "logit_adjusted": _PALETTE[2],
    "balanced_softmax": _PALETTE[4],
    "class_weighted": _PALETTE[7],
    "mine": _PALETTE[3],
    "infonce": _PALETTE[9],
    "nwj": _PALETTE[5],
    "knn": _PALETTE[6],
    "cam": _PALETTE[0],
    "infocam": _PALETTE[1],
    "adl": _PALETTE[2],
    "infocam_adl": _PALETTE[3],
    "centre": "0.45",
}
NATS = "nats"


def use_house_style() -> None:
    """Seaborn 'whitegrid' at notebook scale, colour-blind palette, crisp inline figures."""
    sns.set_theme(context="notebook", style="whitegrid", palette=_PALETTE, font_scale=0.95)
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "figure.figsize": (6.4, 4.0),
            "figure.constrained_layout.use": True,
            "axes.titleweight": "bold",
            "axes.titlesize": "medium",
            "legend.frameon": False,
            "image.cmap": "viridis",
        }
    )


def color(method: str):
    """Colour of a method (e.g. ``"pc_softmax"``); unknown names get a neutral grey."""
    return METHOD_COLORS.get(method.lower().replace("-", "_").replace("+", "_"), "0.5")


def mi_axis(ax, which: str = "y", label: str = "mutual information") -> None:
    """Label an axis as an information quantity in nats."""
    (ax.set_ylabel if which == "y" else ax.set_xlabel)(f"{label} ({NATS})")


def subplots(nrows: int = 1, ncols: int = 1, width: float = 3.4, height: float = 3.0, **kwargs):
    """``plt.subplots`` with a figure size scaled to the grid."""
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kwargs)


def mean_sd_table(results, metrics: dict, by: str = "method", scale: float = 100.0, digits: int = 1):
    """A table of "mean ± sd" strings over the rows of ``results`` grouped by ``by`` (order kept).

    ``metrics`` maps a column of ``results`` to its printed name; values are multiplied by
    ``scale`` (100: fractions as percent). One row per group (sd 0 for a single row).
    """
    import pandas as pd

    g = results.groupby(by, sort=False)[list(metrics)]
    mean, sd = g.mean(), g.std().fillna(0.0)
    return pd.DataFrame({label: [f"{scale * m:.{digits}f} ± {scale * v:.{digits}f}" for m, v in zip(mean[c], sd[c])]
                         for c, label in metrics.items()}, index=mean.index)


def draw_box(ax, box, color: str = "red", lw: float = 1.3) -> None:
    """Draw a box (x0, y0, x1, y1) in :mod:`infocam.wsol`'s +1 convention (pixels x0..x1 inclusive)."""
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = box
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, ec=color, lw=lw))


def localisation_grid(images, heatmaps: dict, taus: dict, true_boxes, size: float = 1.6, show_image: bool = False):
    """Rows: images; columns: methods. Each panel: the normalised heatmap over the image, the box of
    its largest region at the method's τ (red, :func:`infocam.wsol.boxes_from_map`) and the true box
    (green). ``heatmaps`` maps a method name to (N, H, W) maps; ``show_image`` adds the bare image first.
    Used in chapter 4.
    """
    from infocam import wsol

    names = list(heatmaps)
    lead = int(show_image)
    fig, axes = subplots(len(images), len(names) + lead, width=size, height=size)
    for row, img in enumerate(images):
        cmap = "gray" if np.ndim(img) == 2 else None
        if show_image:
            axes[row, 0].imshow(img, cmap=cmap)
        for col, name in enumerate(names, start=lead):
            ax = axes[row, col]
            ax.imshow(img, cmap=cmap)
            ax.imshow(heatmaps[name][row], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            draw_box(ax, wsol.boxes_from_map(heatmaps[name][row], [taus[name]])[0][0])
            draw_box(ax, true_boxes[row], color="lime", lw=1.0)
            if row == 0:
                ax.set_title(name, fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    if show_image:
        axes[0, 0].set_title("image", fontsize=8)
    return fig


def threshold_curves(curves: dict, thresholds, ax=None):
    """Box accuracy (IoU ≥ 0.5) against τ for each method (``curves``: name → (T,) fractions)."""
    if ax is None:
        ax = subplots(1, 1, width=6.0, height=3.6)[1][0, 0]
    for name, curve in curves.items():
        key = ("cam" if name == "CAM" else "adl" if name.startswith("ADL") else "centre" if name.startswith("centre")
               else "infocam_adl" if name.startswith("infoCAM+") else "infocam")
        ax.plot(thresholds, 100 * np.asarray(curve), "--" if "least" in name else "-", color=color(key), label=name)
    ax.set_xlabel("threshold τ (fraction of the map's maximum)")
    ax.set_ylabel("report-half boxes with IoU ≥ 0.5 (%)")
    ax.legend(fontsize=8)
    return ax


def map_panel(ax, image, heat, tau: float, gt_box, title: str = "") -> None:
    """One panel: the image, a normalised map over it, its box at τ (red), the true box (green)."""
    from matplotlib.patches import Rectangle

    from infocam import wsol

    ax.imshow(image)
    ax.imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
    boxes = [*wsol.boxes_from_map(heat, [tau])[0], gt_box]
    for (x0, y0, x1, y1), colour in zip(boxes, ["red"] * (len(boxes) - 1) + ["lime"]):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, ec=colour, lw=1.2))
    ax.set_title(title, fontsize=7)
    ax.axis("off")


def ladder(tables: dict, rung_labels: dict | None = None):
    """The training ladder: per metric (``tables``: metric name → :func:`infocam.localisation.rungs`
    table), the paired gain infoCAM − CAM (± sd over seeds) against the rung, and CAM, the best
    infoCAM setting and the centre prior (a dashed line) against the rung, all in percent."""
    fig, axes = subplots(2, len(tables), width=3.6, height=2.6)
    for j, (metric, t) in enumerate(tables.items()):
        x = np.arange(len(t))
        labels = [(rung_labels or {}).get(r, r) for r in t.index]
        ax = axes[0, j]
        ax.axhline(0, color="0.6", lw=0.8)
        ax.errorbar(x, 100 * t["gain"], yerr=100 * t["gain_sd"], fmt="o-", color=color("infocam"), capsize=3)
        ax.set_ylabel(f"infoCAM − CAM, {metric} (points)")
        ax.set_title(metric, fontsize=9)
        ax = axes[1, j]
        for key, name in (("cam", "CAM"), ("infocam", "best infoCAM"), ("centre", "centre prior")):
            ax.errorbar(x, 100 * t[key].astype(float), yerr=100 * t[f"{key}_sd"].astype(float), capsize=3, label=name,
                        color=color(key), fmt="s--" if key == "centre" else "o-")
        ax.set_ylabel(f"{metric} (%)")
        ax.legend(fontsize=7)
        for a in axes[:, j]:
            a.set_xticks(x, labels, fontsize=7)
        axes[1, j].set_xlabel("trained part of the network (rung)")
    return fig, axes
