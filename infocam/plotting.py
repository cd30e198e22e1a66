"""The book's one house style for figures (seaborn), and the colours that name each method.

Call :func:`use_house_style` once at the top of a chapter. Methods keep the same colour in every
chapter through :data:`METHOD_COLORS` (use :func:`color`).
"""

from __future__ import annotations

import matplotlib as mpl
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
