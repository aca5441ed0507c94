"""Map coordinates with their metadata as a table, CSV or Parquet."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from core.errors import ParameterError

FORMATS = ("csv", "parquet")


def map_table(coords: np.ndarray, labels: np.ndarray | None, proba: np.ndarray | None,
              class_names: tuple[str, ...], split: np.ndarray | None = None,
              position: np.ndarray | None = None, extra: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per point: index, split, position in its split, x, y (z), label, prediction, confidence, correct.

    Parameters
    ----------
    coords : ndarray of shape (n, 2) or (n, 3)
    labels : ndarray of shape (n,) of int, or None
    proba : ndarray of shape (n, n_classes), or None
    class_names : tuple of str
    extra : dict of name -> ndarray of shape (n,), optional
        More columns (uncertainty scores, ...).
    """
    coords = np.asarray(coords)
    n = len(coords)
    frame = {"index": np.arange(n)}
    if split is not None:
        frame["split"] = np.asarray(split).astype(str)
        frame["position"] = np.asarray(position if position is not None else np.arange(n), dtype=np.int64)
    for name, column in zip("xyz", coords.T):
        frame[name] = column.astype(np.float64)
    if labels is not None:
        labels = np.asarray(labels)
        frame["label"] = labels.astype(np.int64)
        frame["label_name"] = np.asarray(class_names, dtype=object)[labels]
    if proba is not None:
        pred = np.asarray(proba).argmax(axis=1)
        frame["prediction"] = pred.astype(np.int64)
        frame["prediction_name"] = np.asarray(class_names, dtype=object)[pred]
        frame["confidence"] = np.asarray(proba)[np.arange(n), pred].astype(np.float64)
        if labels is not None:
            frame["correct"] = pred == labels
    for name, column in (extra or {}).items():
        column = np.asarray(column)
        if len(column) != n:
            raise ParameterError(f"Extra column {name!r} has {len(column)} values for {n} points.")
        frame[name] = column
    return pd.DataFrame(frame)


def to_bytes(table: pd.DataFrame, fmt: str) -> bytes:
    """The table as CSV (UTF-8) or Parquet (pyarrow) bytes."""
    if fmt == "csv":
        return table.to_csv(index=False).encode("utf-8")
    if fmt == "parquet":
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        return buffer.getvalue()
    raise ParameterError(f"Export format must be one of {FORMATS}. Got {fmt!r} instead.")
