"""Metrics of a slice and of the groups of a sensitive column, with bootstrap intervals.

Per slice: size, accuracy, error rate, ECE (15 equal-width bins on the top-label confidence, as on
the Calibration page), and, given a positive class, selection rate, TPR and FPR. Each comes with a
95 % percentile bootstrap interval from one set of resampled rows per slice (the metrics of one
draw come from the same rows). The point values of the group metrics equal Fairlearn's
``MetricFrame`` (tests/core/test_slices.py uses it as the oracle); the disparities between groups are
Fairlearn's own functions (``demographic_parity_difference`` / ``_ratio``,
``equalized_odds_difference`` / ``_ratio``), called here.

Why the group metrics are not MetricFrame's: the same code must score any slice (a mask, not a
column) and bootstrap every metric of a group from one draw, vectorised; MetricFrame's ``n_boot``
re-runs its pandas group-by per draw and per metric (bench/slices.py measures both side by side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ParameterError, check_int

N_BINS = 15
METRICS = ("accuracy", "error_rate", "ece", "selection_rate", "tpr", "fpr")
MAX_GROUPS = 50
NUMERIC_GROUPS = 4  # a sensitive numeric column with many values is cut at its quartiles


@dataclass(frozen=True)
class SliceMetrics:
    """Metrics of one slice; ``intervals[name] = (low, high)``; NaN where a metric is undefined
    (TPR of a slice without positives) or not asked for (no positive class)."""

    label: str
    n: int
    values: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"slice": self.label, "n": self.n}
        for name in METRICS:
            v = self.values.get(name, float("nan"))
            out[name] = None if v != v else round(float(v), 6)
            low, high = self.intervals.get(name, (float("nan"), float("nan")))
            out[f"{name}_interval"] = None if low != low else [round(float(low), 6), round(float(high), 6)]
        return out


def _draw_metrics(pred: np.ndarray, y: np.ndarray, confidence: np.ndarray, positive: int | None) -> dict[str, np.ndarray]:
    """Metrics of each row of 2-D (draws, n) arrays (one row = one sample of the slice), vectorised."""
    n = pred.shape[1]
    correct = pred == y
    out: dict[str, np.ndarray] = {"accuracy": correct.mean(axis=1)}
    out["error_rate"] = 1.0 - out["accuracy"]
    bins = np.minimum((confidence * N_BINS).astype(np.int64), N_BINS - 1)  # equal-width, right edge in the last bin
    draws = pred.shape[0]
    flat = (np.arange(draws)[:, None] * N_BINS + bins).ravel()
    gap = np.bincount(flat, weights=(confidence - correct).ravel(), minlength=draws * N_BINS).reshape(draws, N_BINS)
    out["ece"] = np.abs(gap).sum(axis=1) / n
    if positive is not None:
        said = pred == positive
        is_pos = y == positive
        out["selection_rate"] = said.mean(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["tpr"] = (said & is_pos).sum(axis=1) / is_pos.sum(axis=1)
            out["fpr"] = (said & ~is_pos).sum(axis=1) / (~is_pos).sum(axis=1)
    return out


def slice_metrics(proba: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None, label: str = "all samples",
                  positive: int | None = None, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> SliceMetrics:
    """Metrics of the rows in ``mask`` (all rows when None) with percentile bootstrap intervals."""
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n_boot = check_int("n_boot", n_boot, "slice_metrics", minimum=0)
    rows = np.arange(len(y)) if mask is None else np.flatnonzero(mask)
    n = len(rows)
    if n == 0:
        return SliceMetrics(label, 0, {m: float("nan") for m in METRICS})
    pred = proba[rows].argmax(axis=1)
    confidence = proba[rows, pred]
    y_s = y[rows]
    point = {k: float(v[0]) for k, v in _draw_metrics(pred[None], y_s[None], confidence[None], positive).items()}
    intervals: dict[str, tuple[float, float]] = {}
    if n_boot:
        rng = np.random.default_rng(seed)
        # bounded memory: at most ~4 M resampled rows at a time
        chunk = max(1, min(n_boot, 4_000_000 // n))
        per: dict[str, list[np.ndarray]] = {}
        for start in range(0, n_boot, chunk):
            take = rng.integers(0, n, (min(chunk, n_boot - start), n))
            for k, v in _draw_metrics(pred[take], y_s[take], confidence[take], positive).items():
                per.setdefault(k, []).append(v)
        alpha = (1 - level) / 2
        for k, parts in per.items():
            values = np.concatenate(parts)
            values = values[np.isfinite(values)]
            if len(values):
                low, high = np.quantile(values, [alpha, 1 - alpha])
                intervals[k] = (float(low), float(high))
    return SliceMetrics(label, n, point, intervals)


def group_labels(series: pd.Series, column: str) -> tuple[np.ndarray, str]:
    """Group names of a sensitive column (missing values are their own group), and a note on how they
    were formed; a numeric column with more than 10 values is cut at its quartiles."""
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and series.nunique(dropna=True) > 10:
        edges = np.unique(np.nanquantile(series.to_numpy(np.float64), np.linspace(0, 1, NUMERIC_GROUPS + 1)))
        cut = pd.cut(series, edges, include_lowest=True, right=False if len(edges) > 2 else True)
        labels = cut.astype("string").fillna("(missing)").to_numpy(object)
        # the top edge is excluded by right=False: put the maximum into the last band
        labels[(series == edges[-1]).to_numpy()] = str(cut.cat.categories[-1])
        return labels, f"{column!r} is numeric with {series.nunique()} values: grouped at its quartiles"
    return series.astype("string").fillna("(missing)").to_numpy(object), ""


@dataclass(frozen=True)
class GroupReport:
    column: str
    groups: list[SliceMetrics]
    disparities: dict[str, float] | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"column": self.column, "groups": [g.as_dict() for g in self.groups],
                "disparities": None if self.disparities is None else
                {k: None if v != v else round(float(v), 6) for k, v in self.disparities.items()},
                "note": self.note}


def group_report(frame: pd.DataFrame, column: str, proba: np.ndarray, y: np.ndarray, positive: int | None,
                 n_boot: int = 200, seed: int = 0) -> GroupReport:
    """Metrics per group of ``column`` and, with a positive class and two groups or more, Fairlearn's disparities."""
    from core.slices.conditions import check_column

    check_column(frame, column, "--sensitive")
    labels, note = group_labels(frame[column], column)
    series = frame[column]
    order = [str(c) for c in series.cat.categories] if isinstance(series.dtype, pd.CategoricalDtype) else []
    names = sorted(set(labels), key=lambda g: (g == "(missing)", order.index(g) if g in order else len(order), g))
    if len(names) > MAX_GROUPS:
        raise ParameterError(f"Column {column!r} has {len(names):,} groups; a sensitive column may have at most "
                             f"{MAX_GROUPS}.", hint="pick a column with fewer values, or a banded one.")
    groups = [slice_metrics(proba, y, labels == g, f"{column} == {g}", positive, n_boot, seed) for g in names]
    disparities = None
    if len(names) < 2:
        note = "; ".join(filter(None, [note, f"{column!r} has one group ({names[0] if names else 'none'}): "
                                              "no disparity computed"]))
    elif column == "true":
        note = "; ".join(filter(None, [note, "groups of the label: their error rates are the per-class recalls, and "
                                              "disparities between classes are not a fairness measure"]))
    elif positive is not None:
        disparities = fairlearn_disparities(y, proba.argmax(axis=1), labels, positive)
    else:
        note = "; ".join(filter(None, [note, "no positive class: selection rate, TPR, FPR and disparities need one "
                                              "(--positive CLASS)"]))
    return GroupReport(column, groups, disparities, note)


def fairlearn_disparities(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, positive: int) -> dict[str, float]:
    """Demographic parity and equalized odds, difference and ratio, from Fairlearn (positive class vs the rest)."""
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        equalized_odds_ratio,
    )

    y_bin = (np.asarray(y) == positive).astype(int)
    p_bin = (np.asarray(pred) == positive).astype(int)
    groups = np.asarray(groups, dtype=object)
    return {
        "demographic_parity_difference": float(demographic_parity_difference(y_bin, p_bin, sensitive_features=groups)),
        "demographic_parity_ratio": float(demographic_parity_ratio(y_bin, p_bin, sensitive_features=groups)),
        "equalized_odds_difference": float(equalized_odds_difference(y_bin, p_bin, sensitive_features=groups)),
        "equalized_odds_ratio": float(equalized_odds_ratio(y_bin, p_bin, sensitive_features=groups)),
    }
