"""Slices, groups and weak slices: can the data be trusted, and where does the model fail?

- :mod:`core.slices.conditions`: the slice grammar (``sex == Female and age < 30``), parsed and applied;
- :mod:`core.slices.frame`: the table slices are written against (data columns plus metadata);
- :mod:`core.slices.metrics`: metrics per slice and per group with bootstrap intervals, Fairlearn's disparities;
- :mod:`core.slices.search`: weak slices found by a search over conditions;
- :mod:`core.slices.report`: all of it for one model and split (the ``slices`` CLI verb).
"""

from core.slices.conditions import Condition, Slice, SliceError, parse_slice
from core.slices.frame import NOT_SEARCHED, OUTCOME_COLUMNS, slice_frame
from core.slices.metrics import GroupReport, SliceMetrics, fairlearn_disparities, group_report, slice_metrics
from core.slices.search import WeakSlice, weak_slices

__all__ = [
    "NOT_SEARCHED",
    "OUTCOME_COLUMNS",
    "Condition",
    "GroupReport",
    "Slice",
    "SliceError",
    "SliceMetrics",
    "WeakSlice",
    "fairlearn_disparities",
    "group_report",
    "parse_slice",
    "slice_frame",
    "slice_metrics",
    "weak_slices",
]
