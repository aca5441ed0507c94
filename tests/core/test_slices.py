"""Slices, group metrics and weak slices (issue 23): the grammar, Fairlearn as the oracle, a planted weak slice."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.bundle import DataBundle
from core.calibration import expected_calibration_error, top_label_curve
from core.slices import (
    SliceError,
    fairlearn_disparities,
    group_report,
    parse_slice,
    slice_frame,
    slice_metrics,
    weak_slices,
)


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "sex": ["Female", "Male", "Female", "Male", None],
        "age": [25, 40, 31, 60, 22],
        "age band": ["25-44", "25-44", "25-44", "45-64", "under 25"],
        "correct": [True, False, True, True, False],
    })


# -- grammar ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, rows", [
    ("sex == Female", [0, 2]),
    ("sex == Female and age < 30", [0]),
    ("`age band` == 25-44 and sex != Female", [1]),
    ("`age band` in [under 25, 45-64]", [3, 4]),
    ("age >= 31 and age <= 40", [1, 2]),
    ("correct == false", [1, 4]),
    ("sex == \"(missing)\"", [4]),
    ("sex not in [Female, Male]", [4]),
    ("  SEX == Male  AND age > 50", None),  # a column name is case-sensitive: refused below
])
def test_a_slice_selects_its_rows_and_reads_back_from_its_own_text(text, rows):
    data = frame()
    s = parse_slice(text)
    if rows is None:
        with pytest.raises(SliceError, match="(?s)'SEX'.*did you mean 'sex'"):
            s.mask(data)
        return
    assert np.flatnonzero(s.mask(data)).tolist() == rows
    again = parse_slice(s.text)  # the deep link carries the canonical text
    assert again == s and again.text == s.text


@pytest.mark.parametrize("text, message", [
    ("age < thirty", "holds numbers, and thirty is text"),
    ("sex > 3", "holds text, and 3 is a number"),
    ("sex == 3", "quote the value"),
    ("correct == yes", "true / false"),
    ("sex == Martian", "matches no sample"),
    ("age < 10 and age > 90", "matches no sample"),
    ("colour == red", "does not have: 'colour'"),
])
def test_bad_slices_are_refused_with_the_reason(text, message):
    with pytest.raises(SliceError) as info:
        parse_slice(text).mask(frame())
    assert message in f"{info.value.message} {info.value.hint}"


@pytest.mark.parametrize("text", ["sex ==", "== Female", "sex Female", "sex in Female", "age < 1 and", "a == [1, 2]",
                                  "sex == Female and"])
def test_unreadable_slices_say_how_to_write_one(text):
    with pytest.raises(SliceError, match="COLUMN OP VALUE|needs a list|takes one value|Cannot read"):
        parse_slice(text)


def test_an_empty_slice_is_every_sample():
    assert parse_slice("").mask(frame()).all() and parse_slice("").label == "all samples"


# -- metrics against Fairlearn ------------------------------------------------------------------------
def synthetic(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    group = rng.choice(np.array(["a", "b", "c"], dtype=object), n, p=[0.5, 0.3, 0.2])
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.5 + (y - 0.5) * rng.uniform(0.0, 0.9, n) + np.where(group == "c", 0.25, 0.0), 0.01, 0.99)
    proba = np.stack([1 - p1, p1], axis=1)
    return group, y, proba


def test_group_metrics_equal_fairlearns_metric_frame():
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score

    group, y, proba = synthetic()
    pred = proba.argmax(1)
    oracle = MetricFrame(metrics={"accuracy": accuracy_score, "selection_rate": selection_rate,
                                  "tpr": true_positive_rate, "fpr": false_positive_rate},
                         y_true=y, y_pred=pred, sensitive_features=group)
    report = group_report(pd.DataFrame({"g": group}), "g", proba, y, positive=1, n_boot=50)
    assert [g.label for g in report.groups] == ["g == a", "g == b", "g == c"]
    for g in report.groups:
        name = g.label.split(" == ")[1]
        for metric in ("accuracy", "selection_rate", "tpr", "fpr"):
            assert g.values[metric] == pytest.approx(oracle.by_group.loc[name, metric], abs=1e-12), (name, metric)
        assert g.values["error_rate"] == pytest.approx(1 - g.values["accuracy"])
        assert g.n == int((group == name).sum())
    assert report.disparities["demographic_parity_difference"] == pytest.approx(
        oracle.by_group["selection_rate"].max() - oracle.by_group["selection_rate"].min())


def test_disparities_are_fairlearns_and_match_a_hand_count():
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_ratio

    # group x: selects 3 of 4 (TPR 2/2, FPR 1/2); group y: selects 1 of 4 (TPR 1/2, FPR 0/2)
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    pred = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    groups = np.array(["x"] * 4 + ["y"] * 4, dtype=object)
    d = fairlearn_disparities(y, pred, groups, positive=1)
    assert d["demographic_parity_difference"] == pytest.approx(0.5)
    assert d["demographic_parity_ratio"] == pytest.approx(1 / 3)
    assert d["equalized_odds_difference"] == pytest.approx(0.5)  # max(TPR gap 0.5, FPR gap 0.5)
    assert d["equalized_odds_ratio"] == pytest.approx(0.0)  # min(TPR 0.5, FPR 0)
    assert d["demographic_parity_difference"] == demographic_parity_difference(y, pred, sensitive_features=groups)
    assert d["equalized_odds_ratio"] == equalized_odds_ratio(y, pred, sensitive_features=groups)


def test_slice_ece_equals_the_calibration_pages():
    group, y, proba = synthetic()
    mask = group == "b"
    m = slice_metrics(proba, y, mask, n_boot=0)
    expected = expected_calibration_error(top_label_curve(proba[mask], y[mask], n_bins=15))
    assert m.values["ece"] == pytest.approx(expected, abs=1e-12)
    assert m.intervals == {}


def test_bootstrap_intervals_hold_the_value_narrow_with_size_and_repeat_with_the_seed():
    group, y, proba = synthetic(n=6000)
    small = slice_metrics(proba, y, group == "c", positive=1, n_boot=200, seed=1)
    large = slice_metrics(proba, y, group == "a", positive=1, n_boot=200, seed=1)
    for m in (small, large):
        for name in ("accuracy", "ece", "selection_rate", "tpr", "fpr"):
            low, high = m.intervals[name]
            assert low <= m.values[name] <= high, (name, m.intervals[name])
            assert high > low or m.values[name] in (0.0, 1.0), (name, m.intervals[name])  # e.g. a TPR of 1 in every draw
    width = lambda m: m.intervals["accuracy"][1] - m.intervals["accuracy"][0]  # noqa: E731
    assert width(small) > 1.3 * width(large)  # 1,200 rows vs 3,000
    assert slice_metrics(proba, y, group == "c", positive=1, n_boot=200, seed=1).intervals == small.intervals


def test_a_group_column_with_one_group_says_so_and_computes_no_disparity():
    _, y, proba = synthetic(n=200)
    report = group_report(pd.DataFrame({"g": ["only"] * 200}), "g", proba, y, positive=1, n_boot=0)
    assert report.disparities is None and "has one group" in report.note


def test_a_numeric_sensitive_column_is_grouped_at_its_quartiles():
    rng = np.random.default_rng(0)
    _, y, proba = synthetic(n=400)
    ages = pd.Series(rng.integers(18, 90, 400))
    report = group_report(pd.DataFrame({"age": ages}), "age", proba, y, positive=1, n_boot=0)
    assert len(report.groups) == 4 and sum(g.n for g in report.groups) == 400
    assert "quartiles" in report.note


def test_a_missing_sensitive_column_is_named():
    _, y, proba = synthetic(n=5)
    with pytest.raises(SliceError, match="(?s)--sensitive names a column the data does not have: 'sexx'.*did you mean 'sex'"):
        group_report(frame(), "sexx", proba, y, positive=1)


# -- weak slices ----------------------------------------------------------------------------------------
def planted(n=6000, seed=0):
    """A table whose errors are 5 % everywhere, except 60 % where colour == red and size >= 0.6 (a conjunction)."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({
        "colour": rng.choice(np.array(["red", "green", "blue", "grey"], dtype=object), n),
        "size": rng.uniform(0, 1, n).round(3),
        "weight": rng.normal(70, 10, n).round(1),
        "flag": rng.random(n) < 0.5,
    })
    weak = (data["colour"] == "red").to_numpy() & (data["size"] >= 0.6).to_numpy()
    errors = rng.random(n) < np.where(weak, 0.6, 0.05)
    return data, errors, weak


def test_the_planted_weak_slice_is_found_first():
    data, errors, weak = planted()
    found = weak_slices(data, errors, max_conditions=2)
    best = found[0]
    (colour, size) = best.slice.conditions  # sorted by column: colour, then size
    assert (colour.column, colour.op, colour.value) == ("colour", "==", "red"), [w.slice.text for w in found[:5]]
    assert (size.column, size.op) == ("size", ">=") and abs(size.value - 0.6) < 0.01  # the quintile nearest 0.6
    hit = best.slice.mask(data)
    assert (hit & weak).sum() / (hit | weak).sum() > 0.98
    assert best.error_interval[0] > 0.5 and best.rest_error_rate < 0.1 and best.p_value < 1e-6
    assert best.excess_interval[0] > 0.4
    # a single condition that contains the slice ranks below it
    singles = [w for w in found if len(w.slice.conditions) == 1]
    assert singles and singles[0].score < best.score


def test_errors_spread_evenly_give_no_weak_slice():
    data, _, _ = planted()
    errors = np.random.default_rng(5).random(len(data)) < 0.1
    assert weak_slices(data, errors, max_conditions=2) == []


def test_outcome_columns_are_not_searched():
    data, errors, _ = planted()
    data["correct"] = ~errors
    data["confidence band"] = np.where(errors, "under 60%", "95% and over")
    data["map selection"] = errors  # a selection the user drew around the mistakes
    found = weak_slices(data, errors)
    assert all(c.column not in ("correct", "confidence band", "map selection") for w in found for c in w.slice.conditions)


def test_a_map_selection_is_a_column_of_the_frame_and_keys_the_report(tmp_path):
    from core import scenarios
    from core.slices.report import SliceParams, slices_report
    from core.store import ArtifactStore

    test = scenarios.load_data("breast-cancer")["test"]
    adapter = scenarios.load_model("breast-cancer", "logreg").adapter
    frame = slice_frame(test, adapter.predict_proba(test.x), selected=np.array([0, 5, 7]))
    assert np.flatnonzero(frame["map selection"]).tolist() == [0, 5, 7]
    assert parse_slice("`map selection` == true").mask(frame).sum() == 3
    store = ArtifactStore(tmp_path / "cache")
    params = SliceParams(slice="`map selection` == true", n_boot=0)
    first = slices_report(adapter, test, params, store=store, selected=np.array([0, 5, 7]))
    other = slices_report(adapter, test, params, store=store, selected=np.arange(20))
    assert first.slice["n"] == 3 and other.slice["n"] == 20  # the selection is part of the cache key


def test_the_slice_frame_of_texts_and_tables():
    texts = np.array(["From: a@b\nSubject: hi\n\nbody words here", "no header at all"], dtype=object)
    bundle = DataBundle("text", texts, np.array([0, 1]), ("x", "y"))
    f = slice_frame(bundle, np.array([[0.9, 0.1], [0.7, 0.3]]))
    assert f["has header"].tolist() == [True, False] and f["length (words)"].tolist() == [7, 4]
    assert f["correct"].tolist() == [True, False] and f["confidence band"].tolist() == ["80-95%", "60-80%"]
    assert f["true"].tolist() == ["x", "y"] and f["predicted"].tolist() == ["x", "x"]


# -- the CLI on a built-in table ------------------------------------------------------------------------
def test_slices_cli_on_breast_cancer(capsys, tmp_path, monkeypatch):
    from core.cli import main

    code = main(["slices", "breast-cancer", "--model", "logreg", "--sensitive", "mean radius", "--slice",
                 "`mean radius` >= 15", "--boot", "50", "--json", "--quiet"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["positive"] == "benign" and doc["n"] == 143
    assert doc["slice"]["slice"] == "`mean radius` >= 15" and doc["slice"]["n"] + doc["rest"]["n"] == 143
    group = doc["groups"][0]
    assert group["column"] == "mean radius" and len(group["groups"]) == 4 and group["disparities"] is not None
    code = main(["slices", "breast-cancer", "--slice", "radius >= 15", "--quiet"])
    assert code == 1
    assert "'mean radius'" in capsys.readouterr().err


def test_slices_of_an_uploaded_pipeline_find_the_planted_weak_slice_first(tmp_path, capsys):
    """A user's skops pipeline and a CSV whose extra raw columns (not model inputs) can be sliced: labels were
    flipped where region == north and f2 >= 0.6, and the search ranks that conjunction first."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from core.cli import main

    rng = np.random.default_rng(7)
    n = 3000
    rows = pd.DataFrame({"f1": rng.uniform(0, 1, n).round(4), "f2": rng.uniform(0, 1, n).round(4)})
    rows["region"] = rng.choice(np.array(["north", "south", "east", "west"], dtype=object), n)
    rows["target"] = (rows["f1"] > 0.5).astype(int)
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(rows[["f1", "f2"]], rows["target"])
    weak = (rows["region"] == "north") & (rows["f2"] >= 0.6)
    flip = weak & (rng.random(n) < 0.7)
    rows.loc[flip, "target"] = 1 - rows.loc[flip, "target"]
    (tmp_path / "m.skops").write_bytes(sio.dumps(model))
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code = main(["slices", "--upload", str(tmp_path / "m.skops"), "--data", str(tmp_path / "rows.csv"), "--boot", "0",
                 "--sensitive", "region", "--json", "--quiet"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(capsys.readouterr().out)
    assert "target" not in doc["columns"] and "region" in doc["columns"]  # the label column is `true`, not searched
    best = doc["weak_slices"][0]
    by_column = {c["column"]: c for c in best["conditions"]}
    assert set(by_column) == {"region", "f2"}, best["slice"]
    assert by_column["region"]["value"] == "north" and by_column["f2"]["op"] == ">="
    assert abs(by_column["f2"]["value"] - 0.6) < 0.03
    region = {g["slice"]: g for g in doc["groups"][0]["groups"]}
    assert region["region == north"]["error_rate"] > 2 * region["region == south"]["error_rate"]


def test_comparing_two_models_counts_their_disagreement_and_finds_where_it_concentrates():
    from core.slices.compare import compare_models

    data, _, weak = planted()
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, len(data))
    proba_a = np.where(y[:, None] == np.arange(2), 0.9, 0.1)  # always right
    pred_b = np.where(weak & (rng.random(len(data)) < 0.8), 1 - y, y)  # wrong mostly inside the planted slice
    proba_b = np.where(pred_b[:, None] == np.arange(2), 0.8, 0.2)
    out = compare_models(data, y, proba_a, proba_b, ("a", "b"), [parse_slice("colour == red")], positive=1, n_boot=20)
    first, red = out["slices"]
    assert first["slice"] == "all samples" and first["a"]["error_rate"] == 0.0
    assert first["difference"] == pytest.approx(np.mean(pred_b != y), abs=1e-6)
    assert out["disagreement"] == pytest.approx(np.mean(pred_b != y), abs=1e-6)
    assert red["n"] == int((data["colour"] == "red").sum()) and red["disagreement"] > first["disagreement"]
    where = out["disagreement_slices"][0]
    assert {c["column"] for c in where["conditions"]} == {"colour", "size"} and where["disagreement"] > 0.6


def test_slices_cli_compares_two_models(capsys):
    from core.cli import main

    assert main(["slices", "breast-cancer", "--model", "logreg", "--compare", "gboost", "--boot", "20", "--json",
                 "--quiet"]) == 0
    comparison = json.loads(capsys.readouterr().out)["comparison"]
    assert comparison["models"] == ["logreg", "gboost"] and comparison["slices"][0]["slice"] == "all samples"
    assert 0 <= comparison["disagreement"] < 0.2
    assert main(["slices", "breast-cancer", "--model", "logreg", "--compare", "logreg", "--quiet"]) == 1
    assert "--compare names the model itself" in capsys.readouterr().err
