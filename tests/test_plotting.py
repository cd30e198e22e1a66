"""Plotting helpers: mean ± sd tables, +1-convention boxes, the localisation grid and threshold curves."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from infocam import plotting  # noqa: E402


def test_mean_sd_table():
    df = pd.DataFrame({"method": ["b", "a", "b", "a"], "acc": [0.5, 0.2, 0.7, 0.2]})
    table = plotting.mean_sd_table(df, {"acc": "accuracy (%)"})
    assert list(table.index) == ["b", "a"]  # order of first appearance
    assert table.loc["b", "accuracy (%)"] == f"60.0 ± {100 * np.std([0.5, 0.7], ddof=1):.1f}"
    assert table.loc["a", "accuracy (%)"] == "20.0 ± 0.0"
    single = plotting.mean_sd_table(df.iloc[:2], {"acc": "acc"})
    assert single.loc["a", "acc"] == "20.0 ± 0.0"


def test_draw_box_covers_inclusive_pixels():
    fig, ax = plt.subplots()
    plotting.draw_box(ax, (2, 3, 5, 3))
    rect = ax.patches[0]
    assert rect.get_xy() == (1.5, 2.5) and rect.get_width() == 4 and rect.get_height() == 1
    plt.close(fig)


def test_localisation_grid_and_curves():
    heat = np.zeros((2, 16, 16), np.float32)
    heat[:, 4:8, 5:9] = 1
    fig = plotting.localisation_grid(np.zeros((2, 16, 16)), {"a": heat, "b": heat}, {"a": 0.5, "b": 0.5},
                                     np.array([[5, 4, 8, 7]] * 2), show_image=True)
    axes = fig.axes
    assert len(axes) == 6 and axes[0].get_title() == "image" and axes[1].get_title() == "a"
    assert len(axes[1].patches) == 2  # predicted and true box
    assert axes[1].patches[0].get_xy() == (4.5, 3.5) and axes[1].patches[0].get_width() == 5  # x0 + w = 9
    plt.close(fig)
    ax = plotting.threshold_curves({"CAM": [0.1, 0.2], "infoCAM least-likely k=3": [0.3, 0.4]}, [0.0, 0.5])
    assert [line.get_linestyle() for line in ax.lines] == ["-", "--"]
    assert np.allclose(ax.lines[1].get_ydata(), [30, 40])
    plt.close(ax.figure)
