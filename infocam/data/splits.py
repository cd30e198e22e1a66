"""Splits shared by the datasets' loaders and the training recipes."""

from __future__ import annotations

import numpy as np


def selection_report_halves(labels) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a labelled test set split into a selection half (τ, model choice) and a report half.

    Within each class, in the given order, images go alternately to the selection half (1st, 3rd,
    ...) and the report half (2nd, 4th, ...), so both halves keep the class balance. Used by
    ``infocam train`` and chapter 5 (through :func:`infocam.data.cub.cub_test_halves`).
    """
    labels = np.asarray(labels)
    rank = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rank[members] = np.arange(len(members))
    return np.flatnonzero(rank % 2 == 0), np.flatnonzero(rank % 2 == 1)
