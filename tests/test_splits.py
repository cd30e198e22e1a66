"""infocam.data.splits: the selection / report halves."""

import numpy as np

from infocam.data.splits import selection_report_halves


def test_halves_alternate_within_each_class_and_cover_everything():
    labels = np.array([2, 0, 2, 0, 2, 1, 0, 1])
    select, report = selection_report_halves(labels)
    assert sorted(np.r_[select, report]) == list(range(len(labels)))
    # class 2 at positions 0, 2, 4 → select 0 and 4, report 2; class 0 at 1, 3, 6 → select 1 and 6, report 3
    assert set(select) == {0, 4, 1, 6, 5} and set(report) == {2, 3, 7}
    for c in np.unique(labels):
        assert abs((labels[select] == c).sum() - (labels[report] == c).sum()) <= 1
