"""Pure functions behind the dataset browser: filtering, sorting, paging, confusion counts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import ParameterError, check_int

CORRECTNESS = ("all", "correct", "incorrect")
SORTS = ("index", "confidence: low first", "confidence: high first")
FILTER_BY = ("true", "predicted")


def select_samples(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[int] | None = None,
    correctness: str = "all",
    sort: str = "index",
    filter_by: str = "true",
) -> np.ndarray:
    """Indices of the samples to show, in display order.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
    proba : ndarray of shape (n_samples, n_classes)
    classes : sequence of int, optional
        Keep samples whose true (or predicted, see ``filter_by``) class is among these;
        None or empty keeps all.
    correctness : {"all", "correct", "incorrect"}
    sort : {"index", "confidence: low first", "confidence: high first"}
        Confidence is the probability of the predicted class; ties keep index order.
    """
    if correctness not in CORRECTNESS:
        raise ParameterError(f"correctness must be one of {CORRECTNESS}; got {correctness!r}.")
    if sort not in SORTS:
        raise ParameterError(f"sort must be one of {SORTS}; got {sort!r}.")
    if filter_by not in FILTER_BY:
        raise ParameterError(f"filter_by must be one of {FILTER_BY}; got {filter_by!r}.")
    y_true = np.asarray(y_true)
    proba = np.asarray(proba)
    if proba.shape[0] != y_true.shape[0]:
        raise ParameterError(f"{proba.shape[0]} probability rows for {y_true.shape[0]} labels.")
    y_pred = proba.argmax(axis=1)
    keep = np.ones(len(y_true), dtype=bool)
    if classes:
        keep &= np.isin(y_true if filter_by == "true" else y_pred, np.asarray(list(classes)))
    if correctness == "correct":
        keep &= y_pred == y_true
    elif correctness == "incorrect":
        keep &= y_pred != y_true
    idx = np.flatnonzero(keep)
    if sort != "index":
        confidence = proba[idx, y_pred[idx]]
        order = np.argsort(confidence if sort == "confidence: low first" else -confidence, kind="stable")
        idx = idx[order]
    return idx


def page_of(indices: np.ndarray, page: int, per_page: int) -> tuple[np.ndarray, int]:
    """The ``page``-th (1-based) slice of ``indices`` and the number of pages (>= 1).

    A page past the end is clamped to the last page, so a stale page number after a filter
    change still shows something.
    """
    per_page = check_int("per_page", per_page, "page_of")
    page = check_int("page", page, "page_of")
    n_pages = max(1, -(-len(indices) // per_page))
    page = min(page, n_pages)
    return indices[(page - 1) * per_page : page * per_page], n_pages


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of shape (n_classes, n_classes): rows true class, columns predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
