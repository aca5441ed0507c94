"""core.uncertainty.report.rows_summary: one stress set's numbers on a slice of its inputs, against numpy and
scikit-learn computed on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.bundle import DataBundle
from core.uncertainty.report import rows_summary, score_set
from core.uncertainty.stress import StressSet


def _result(n=300, members=5, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(members, n, classes)) + rng.normal(size=(1, n, classes)) * 2
    proba = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    y = rng.integers(0, classes, n)
    bundle = DataBundle("tabular", rng.normal(size=(n, 3)).astype(np.float32), y, tuple("abcd"))
    return score_set(StressSet("clean", "clean test", bundle, False, "synthetic"), proba.astype(np.float32)), y


def test_rows_summary_matches_a_direct_computation():
    result, y = _result()
    rows = np.arange(0, 300, 3)
    out = rows_summary(result, rows)
    inside = np.zeros(300, bool)
    inside[rows] = True
    correct = result.mean.argmax(axis=1) == y
    mi = result.scores["mutual_information"]
    assert out["n"] == 100
    assert out["accuracy_inside"] == pytest.approx(correct[inside].mean())
    assert out["accuracy_outside"] == pytest.approx(correct[~inside].mean())
    assert out["score_inside"] == pytest.approx(mi[inside].mean())
    assert out["score_outside"] == pytest.approx(mi[~inside].mean())
    assert out["error_auroc_inside"] == pytest.approx(roc_auc_score(~correct[inside], mi[inside]))


def test_rows_summary_without_mistakes_or_rest_gives_nan_not_a_number_made_up():
    result, y = _result()
    correct = np.flatnonzero(result.mean.argmax(axis=1) == y)
    out = rows_summary(result, correct)
    assert out["accuracy_inside"] == 1.0 and np.isnan(out["error_auroc_inside"])
    everything = rows_summary(result, np.arange(300))
    assert np.isnan(everything["accuracy_outside"]) and np.isnan(everything["score_outside"])
