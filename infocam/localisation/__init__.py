"""One localisation pipeline for every network: chapters 4 and 5, ``infocam train`` and the summary.

* :mod:`~infocam.localisation.methods` — the catalogue: each method one object with a stable id
  (CAM, infoCAM variants × windows, the original code's full-padding window, the centre prior).
* :mod:`~infocam.localisation.collect` — maps of every method from cached features or from a model.
* :mod:`~infocam.localisation.score` — one τ rule (selection / report halves per class) and every
  method scored under the reference and the original protocol from the same IoU curves.
* :mod:`~infocam.localisation.results` — mean ± sd by method id, paired gains, the verdict against
  the centre prior, what chapters record, and the ``infocam train`` runs table.
"""

from infocam.localisation.collect import collect, feature_batches, maps_from_features, maps_from_model
from infocam.localisation.methods import (CAMMethod, CentrePrior, InfoCAMMethod, Method, by_id, catalogue, infocam,
                                          register)
from infocam.localisation.results import (best_infocam, comparison, display_table, paired, record, rungs,
                                          rungs_display, stack, summarise, train_results, trend, verdict)
from infocam.localisation.score import halves, score

__all__ = ["CAMMethod", "CentrePrior", "InfoCAMMethod", "Method", "best_infocam", "by_id", "catalogue", "collect",
           "comparison", "display_table", "feature_batches", "halves", "infocam", "maps_from_features",
           "maps_from_model", "paired", "record", "register", "rungs", "rungs_display", "score", "stack", "summarise", "train_results", "trend",
           "verdict"]
