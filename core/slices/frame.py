"""The table slices are written against: one row per sample, the data's own columns plus metadata.

- tables: the display columns (raw values: categories as text, missing values kept), else the model's
  feature columns;
- texts: ``length (words)`` and ``has header`` (a Usenet header block before the first blank line);
- images: ``mean intensity``;
- every modality, when predictions are given: ``true`` and ``predicted`` (class names), ``correct``,
  ``confidence`` and ``confidence band``.

The outcome columns (``predicted``, ``correct``, ``confidence``, ``confidence band``) and the label
(``true``) can filter a slice but are never searched for weak slices (:data:`NOT_SEARCHED`): a slice of
wrong or unsure predictions has a high error rate by construction, and a slice of one class has the
error rate its recall says.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from core.bundle import DataBundle

OUTCOME_COLUMNS = ("predicted", "correct", "confidence", "confidence band")
# Never searched for weak slices: the outcome columns, and the label (a slice of one class has the error rate
# 1 - recall of that class, which the per-class groups already show).
# A selection saved from the Embeddings map (true for its samples): a filter the user drew, never searched.
MAP_SELECTION = "map selection"
NOT_SEARCHED = (*OUTCOME_COLUMNS, "true", MAP_SELECTION)
CONFIDENCE_BANDS = ((0.0, 0.6, "under 60%"), (0.6, 0.8, "60-80%"), (0.8, 0.95, "80-95%"), (0.95, 1.01, "95% and over"))
_HEADER = re.compile(r"^[A-Za-z][\w-]*: ", re.MULTILINE)


def slice_frame(bundle: DataBundle, proba: np.ndarray | None = None, selected: np.ndarray | None = None) -> pd.DataFrame:
    """The slice frame of ``bundle`` (aligned with it), with outcome columns when ``proba`` is given and a
    ``map selection`` column when ``selected`` (row indices of a selection saved from the Embeddings map) is."""
    if bundle.kind == "tabular":
        if bundle.display is not None and len(bundle.display) == len(bundle):
            frame = bundle.display.reset_index(drop=True).copy()
            if bundle.y is not None:  # an upload's label column: it is `true` below, and must not be searched
                frame = frame.drop(columns=[c for c in frame.columns if _is_label(frame[c], bundle)])
        else:
            names = bundle.feature_names or tuple(f"x{j}" for j in range(bundle.x.shape[1]))
            frame = pd.DataFrame(np.asarray(bundle.x), columns=list(names))
    elif bundle.kind == "text":
        texts = [str(t) for t in bundle.x]
        frame = pd.DataFrame({
            "length (words)": np.array([len(t.split()) for t in texts], dtype=np.int64),
            "has header": np.array([_has_header(t) for t in texts], dtype=bool),
        })
    else:
        frame = pd.DataFrame({"mean intensity": np.asarray(bundle.x, dtype=np.float64).reshape(len(bundle), -1).mean(1)})
    names = np.asarray(bundle.class_names, dtype=object)
    if bundle.y is not None:
        frame["true"] = names[np.asarray(bundle.y, dtype=np.int64)]
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        predicted = proba.argmax(axis=1)
        confidence = proba[np.arange(len(proba)), predicted]
        frame["predicted"] = names[predicted]
        if bundle.y is not None:
            frame["correct"] = predicted == np.asarray(bundle.y)
        frame["confidence"] = confidence
        frame["confidence band"] = confidence_band(confidence)
    return frame if selected is None else with_selection(frame, selected)


def with_selection(frame: pd.DataFrame, selected) -> pd.DataFrame:
    """``frame`` with its ``map selection`` column: true on the rows ``selected`` (indices), false elsewhere."""
    chosen = np.zeros(len(frame), dtype=bool)
    chosen[np.asarray(selected, dtype=np.int64)] = True
    frame[MAP_SELECTION] = chosen
    return frame


def confidence_band(confidence: np.ndarray) -> np.ndarray:
    out = np.empty(len(confidence), dtype=object)
    for low, high, label in CONFIDENCE_BANDS:
        out[(confidence >= low) & (confidence < high)] = label
    return out


def _is_label(series: pd.Series, bundle: DataBundle) -> bool:
    """Whether a display column holds the labels (as class names or indices) on every row."""
    y = np.asarray(bundle.y, dtype=np.int64)
    text = series.astype("string").str.strip().fillna("").to_numpy(object)
    names = np.asarray([str(c) for c in bundle.class_names], dtype=object)
    return bool((text == names[y]).all() or (text == y.astype(str).astype(object)).all())


def _has_header(text: str) -> bool:
    head, blank, _ = text.partition("\n\n")
    return bool(blank) and len(_HEADER.findall(head)) >= 2
