"""Plotly selection events on the map -> rows of the map, and what the page says about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def selected_rows(event: Any) -> np.ndarray:
    """Map rows (``customdata[0] >= 0``) of every selected point, unique, in selection order.

    Works with Streamlit's event object and with a plain dict (item access only), as AppTests pass;
    overlay points (negative customdata) and points without customdata are ignored.
    """
    if event is None:
        return np.empty(0, dtype=np.int64)
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return np.empty(0, dtype=np.int64)
    rows: list[int] = []
    for point in points or ():
        custom = point.get("customdata") if hasattr(point, "get") else None
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        try:
            row = int(float(custom))
        except (TypeError, ValueError):
            continue
        if row >= 0:
            rows.append(row)
    if not rows:
        return np.empty(0, dtype=np.int64)
    _, first = np.unique(np.asarray(rows), return_index=True)
    return np.asarray(rows, dtype=np.int64)[np.sort(first)]


@dataclass(frozen=True)
class SelectionSummary:
    """Per-class counts of a selection: right and wrong predictions, and the overall accuracy."""

    n: int
    accuracy: float
    correct: np.ndarray  # (n_classes,) selected points of each true class predicted right
    wrong: np.ndarray  # (n_classes,) ... predicted wrong
    majority: int  # most frequent true class


def summarise(rows: np.ndarray, y: np.ndarray, pred: np.ndarray, n_classes: int) -> SelectionSummary:
    """Class histogram and accuracy of the selected ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    right = pred[rows] == y[rows]
    correct = np.bincount(y[rows][right], minlength=n_classes)
    wrong = np.bincount(y[rows][~right], minlength=n_classes)
    total = correct + wrong
    return SelectionSummary(len(rows), float(right.mean()) if len(rows) else float("nan"), correct, wrong,
                            int(total.argmax()) if len(rows) else -1)


def region_rows(event: Any, coords: np.ndarray) -> np.ndarray | None:
    """Every map row inside the event's boxes and lassos (over all ``coords``, not only the drawn points),
    sorted; None when the event holds no region (a click: use :func:`selected_rows`)."""
    from core.precompute.maps import select_box, select_polygon

    try:
        selection = event["selection"]
    except (KeyError, TypeError):
        return None
    parts = []
    for box in _get(selection, "box"):
        x, y = _get(box, "x"), _get(box, "y")
        if len(x) >= 2 and len(y) >= 2:
            parts.append(select_box(coords, (min(x), max(x)), (min(y), max(y))))
    for lasso in _get(selection, "lasso"):
        x, y = _get(lasso, "x"), _get(lasso, "y")
        if len(x) >= 3:
            parts.append(select_polygon(coords, x, y))
    if not parts:
        return None
    return np.unique(np.concatenate(parts))


def _get(mapping: Any, key: str) -> list:
    try:
        value = mapping[key]
    except (KeyError, TypeError, IndexError):
        return []
    return list(value or [])
