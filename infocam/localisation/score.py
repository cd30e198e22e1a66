"""Scoring many methods at once, one τ rule for every dataset.

**The τ rule.** The scored images (a test split with boxes) are halved within each class
(:func:`halves`: 1st, 3rd, … image of a class → selection half; 2nd, 4th, … → report half). τ is
chosen on the selection half (largest contour, IoU ≥ 0.5, Choe et al. 2020: never on the images
reported); every number is reported on the other half. Chapters 4 and 5, ``infocam train`` and
the summary use this one rule.

**One pass, two protocols.** :func:`score` runs :func:`infocam.wsol.evaluate` once per method:
the reference protocol (wsolevaluation's rules: GT-known / Top-1 Loc at τ, MaxBoxAcc, MaxBoxAccV2)
and the original code's (τ = 0.2 fixed, optionally a running average over batches) read from the
same IoU curves.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from infocam import wsol
from infocam.data.splits import selection_report_halves
from infocam.localisation.methods import Method

METRICS = ("gt_known_loc", "top1_loc", "maxboxacc", "maxboxacc_v2")
ORIGINAL_METRICS = ("original_gt_known_loc", "original_top1_loc")


def halves(labels) -> tuple[np.ndarray, np.ndarray]:
    """(selection, report) positions of a labelled set, stratified per class (see the module docstring)."""
    select, report = selection_report_halves(labels)
    if len(report) == 0 or len(select) == 0:
        raise ValueError(f"{len(np.asarray(labels))} labelled images cannot be halved: need at least 2 images "
                         "of one class (one to choose τ on, one to report)")
    return select, report


def score(maps: Mapping[str, np.ndarray], boxes, correct, image_size, split, *, methods=None, thresholds=None,
          running_batch: int | None = None, curves: dict | None = None) -> pd.DataFrame:
    """Every method's maps scored on one selection / report split: one row per method id.

    ``maps`` (id → raw maps (N, h, w)), ``boxes`` (N, 4) xyxy at ``image_size`` (or a list of
    (m, 4)), ``correct`` (N,) top-1 hits, ``split`` = (selection, report) positions (:func:`halves`).
    Columns: ``method`` (label), ``role``, ``tau``, GT-known / Top-1 Loc, MaxBoxAcc, MaxBoxAccV2
    (fractions), the original protocol's numbers, ``images`` (report half) and its top-1 accuracy.
    A dict passed as ``curves`` receives each method's report-half accuracy curve over τ (IoU ≥ 0.5).
    """
    select, report = (np.asarray(s) for s in split)
    if not len(maps):
        raise ValueError("no maps to score: pass at least one method's maps")
    info = {m.id: m for m in (methods or [])}
    correct = np.asarray(correct, dtype=bool)
    pick = (lambda b, i: [b[j] for j in i]) if isinstance(boxes, list) else (lambda b, i: np.asarray(b)[i])
    rows = []
    for mid, m in maps.items():
        r = wsol.evaluate(m[select], pick(boxes, select), m[report], pick(boxes, report), correct[report], image_size,
                          thresholds, running_average=running_batch, original=True)
        curve = r.pop("curve")
        if curves is not None:
            curves[mid] = curve
        method: Method | None = info.get(mid)
        rows.append({"id": mid, "method": method.label if method else mid, "role": method.role if method else "other",
                     **r, "images": len(report), "top1_accuracy": float(correct[report].mean())})
    return pd.DataFrame(rows).set_index("id")


__all__ = ["METRICS", "ORIGINAL_METRICS", "halves", "score"]
