"""Data checks (issue 23): missing values, balance, duplicates and leakage, drift, label errors (cleanlab)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.bundle import DataBundle
from core.slices.data_checks import class_balance, data_report, drift, duplicates, label_issues, missing_values


def table(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    display = pd.DataFrame({"a": rng.normal(shift, 1, n).round(3), "b": rng.uniform(0, 1, n).round(3),
                            "colour": rng.choice(np.array(["red", "blue"], dtype=object), n)})
    x = np.column_stack([display["a"], display["b"], (display["colour"] == "red")]).astype(np.float32)
    y = (display["a"] > shift).astype(int).to_numpy()
    return DataBundle("tabular", x, y, ("no", "yes"), ("a", "b", "colour"), display=display)


def test_missing_values_and_balance_are_counted_per_split():
    train = table(200, 0)
    display = train.display.copy()
    display.loc[[3, 7, 9], "colour"] = None
    train = DataBundle("tabular", train.x, train.y, train.class_names, train.feature_names, display=display)
    rows = missing_values({"train": train})
    assert {r["column"]: r["missing"] for r in rows} == {"a": 0, "b": 0, "colour": 3}
    balance = {r["class"]: r["n"] for r in class_balance({"train": train})}
    assert balance == {"no": int((train.y == 0).sum()), "yes": int((train.y == 1).sum())}
    texts = DataBundle("text", np.array(["a b", "  ", ""], dtype=object), None, ("x", "y"))
    assert missing_values({"test": texts})[0]["missing"] == 2


def test_test_rows_copied_from_train_are_found_with_their_labels():
    train, test = table(300, 0), table(100, 1)
    x = test.x.copy()
    y = test.y.copy()
    x[[5, 17, 40]] = train.x[[2, 9, 11]]
    y[[5, 40]] = train.y[[2, 11]]
    y[17] = 1 - train.y[9]  # the same input with another label
    test = DataBundle("tabular", x, y, test.class_names, test.feature_names)
    report = duplicates({"train": train, "test": test})
    leak = report["exact"]["test_in_train"]
    assert leak["count"] == 3 and sorted(leak["pairs"]) == [[5, 2], [17, 9], [40, 11]] and leak["different_label"] == 1
    assert report["exact"]["within"]["train"]["count"] == 0
    # a copy that differs in the 6th digit is a near duplicate, not an exact one
    x2 = x.copy()
    x2[60] = train.x[20] * (1 + 1e-6)
    near = duplicates({"train": train, "test": DataBundle("tabular", x2, y, test.class_names, test.feature_names)})
    assert near["exact"]["test_in_train"]["count"] == 3 and near["near"]["test_in_train"]["count"] == 4


def test_texts_that_differ_in_case_and_punctuation_are_near_duplicates():
    train = DataBundle("text", np.array(["Hello, World!", "another post"], dtype=object), np.array([0, 1]), ("a", "b"))
    test = DataBundle("text", np.array(["hello world", "something new"], dtype=object), np.array([0, 1]), ("a", "b"))
    report = duplicates({"train": train, "test": test})
    assert report["exact"]["test_in_train"]["count"] == 0 and report["near"]["test_in_train"]["pairs"] == [[0, 0]]


def test_drift_flags_a_shifted_feature_and_not_the_others():
    rows = {r["feature"]: r for r in drift(table(2000, 0), table(2000, 1, shift=0.5))}
    assert rows["a"]["drifted"] and rows["a"]["test"] == "Kolmogorov-Smirnov" and rows["a"]["p_value"] < 1e-10
    assert not rows["b"]["drifted"] and not rows["colour"]["drifted"] and rows["colour"]["test"] == "chi-square"
    from scipy.stats import ks_2samp

    assert rows["a"]["statistic"] == pytest.approx(ks_2samp(table(2000, 0).display["a"], table(2000, 1, 0.5).display["a"]).statistic)


def test_confident_learning_finds_planted_label_flips():
    """A good model's out-of-sample probabilities and 5 % of the labels flipped: the flips are found (recall)
    and what is flagged is mostly flips (precision)."""
    rng = np.random.default_rng(0)
    n, k = 4000, 3
    truth = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), truth] += 4.0
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = truth.copy()
    flipped = rng.choice(n, 200, replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, k, 200)) % k
    found = label_issues(proba, given, ("a", "b", "c"))
    flagged = set(found["indices"])
    recall = len(flagged & set(flipped.tolist())) / 200
    precision = len(flagged & set(flipped.tolist())) / max(1, len(flagged))
    assert recall >= 0.9 and precision >= 0.85, (recall, precision)
    first = found["samples"][0]  # ranked by the probability of the given label, lowest first
    assert first["given_probability"] == min(s["given_probability"] for s in found["samples"])
    assert first["given"] != first["suggested"]


def test_data_cli_on_breast_cancer(capsys):
    from core.cli import main

    assert main(["data", "breast-cancer", "--model", "logreg", "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sum(doc["splits"].values()) == 569 and doc["model"] == "logreg"
    assert len(doc["drift"]) == 30 and all("p_value" in r for r in doc["drift"])
    assert doc["label_issues"]["split"] == "test" and "indices" not in doc["label_issues"]
    assert doc["duplicates"]["exact"]["test_in_train"]["count"] == 0


def test_a_report_without_probabilities_has_no_label_check():
    report = data_report({"train": table(100, 0), "test": table(50, 1)})
    assert report.label_issues == {} and report.splits == {"train": 100, "test": 50}
