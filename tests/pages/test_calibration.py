"""AppTest of pages/calibration.py: metrics table, bin browser, click-to-bin, recalibration toggle.

AppTest quirks (streamlit 1.67, see tests/pages/test_home.py): the selection (and every widget
value) is set through session_state before a run; a first run of app.py, then switch_page.
Plotly selections cannot be clicked in AppTest: the chart's key is given the event dict for
one run, which is what st.plotly_chart returns after a click in the browser.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import calibration, scenarios
from tests.conftest import require_dataset
from tests.pages.helpers import open_app, sidebar_state

TIMEOUT = 240  # first use trains the model inside the run
PAGE = "pages/calibration.py"
MAX_SHOWN = 24


def open_page(scenario: str | None = None, model: str | None = None, variant: str | None = None, **state) -> AppTest:
    return open_app(PAGE, state=sidebar_state(scenario, model, variant), page_state=state, timeout=TIMEOUT,
                    errors=True, title="Calibration")


def rerun(at: AppTest, **state) -> AppTest:
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def diagram_title(at: AppTest) -> str:
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    return next(t for t in titles if t.startswith("Reliability diagram"))


def decode(array) -> np.ndarray:
    """A Plotly JSON array: a list, or numpy's base64 encoding {"dtype", "bdata", "shape"}."""
    import base64

    if not isinstance(array, dict):
        return np.asarray(array)
    out = np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
    shape = array.get("shape")
    return out.reshape([int(v) for v in str(shape).split(",")]) if shape else out


def metrics_table(at: AppTest):
    return at.dataframe[0].value


def independent_report(scenario, model, variant=None, n_bins=15):
    """The test split's metrics from the model's own predictions, without the page or its caches."""
    loaded = scenarios.load_model(scenario, model, variant)
    test = scenarios.load_data(scenario, variant)["test"]
    proba = loaded.adapter.predict_proba(test.x)
    return proba, test, calibration.calibration_metrics(proba, test.y, n_bins)


def check_page(at: AppTest, scenario: str, variant: str | None):
    models = at.multiselect(key="cal_models").value
    assert models
    table = metrics_table(at)
    assert len(table) == 4 * len(models)
    assert list(table["model"]) == [m for m in models for _ in range(4)]
    versions = [v.split(" ")[0] for v in table["recalibration"]]
    assert versions == ["none", "temperature", "platt", "isotonic"] * len(models)
    for model in models:
        _, _, m = independent_report(scenario, model, variant)
        row = table[(table["model"] == model) & (table["recalibration"] == "none")].iloc[0]
        assert row["ECE"] == pytest.approx(m.ece, abs=1e-6)
        assert row["accuracy"] == pytest.approx(m.accuracy, abs=1e-9)
        assert row["NLL"] == pytest.approx(m.nll, abs=1e-6)
        assert row["ECE 95% interval"] == f"[{m.ece_interval[0]:.4f}, {m.ece_interval[1]:.4f}]"
    assert diagram_title(at) == "Reliability diagram (test split)"
    risk = [c for c in charts(at) if c["layout"]["title"]["text"].startswith("Risk-coverage")]
    assert len(risk) == 1 and [t["name"] for t in risk[0]["data"]] == models


def primary_curve(scenario, model, variant=None, n_bins=15, strategy="uniform"):
    proba, test, _ = independent_report(scenario, model, variant, n_bins)
    return calibration.top_label_curve(proba, test.y, n_bins, strategy)


# -- digits (default scenario, image samples) ---------------------------------------------------
def test_digits_default_page():
    at = open_page()
    assert at.multiselect(key="cal_models").value[0] == "cnn"
    check_page(at, "digits", None)
    # the default bin is the most over-confident non-empty bin, and its samples are shown
    curve = primary_curve("digits", "cnn")
    nonempty = np.flatnonzero(curve.counts > 0)
    options = at.selectbox(key="cal_bin").options
    assert len(options) == len(nonempty)
    for label, b in zip(options, nonempty):
        assert label.startswith(f"bin {b}: confidence {curve.edges[b]:.2f}-{curve.edges[b + 1]:.2f} ({curve.counts[b]} samples")
    default = int(nonempty[np.argmax(curve.gap[nonempty])])
    assert at.selectbox(key="cal_bin").value == default
    assert len(at.get("image")) == min(MAX_SHOWN, curve.counts[default])


def test_digits_two_models_and_bin_selection():
    at = open_page(cal_models=["cnn", "logreg"])
    assert at.multiselect(key="cal_models").value == ["cnn", "logreg"]
    check_page(at, "digits", None)
    curve = primary_curve("digits", "cnn")
    big = int(np.argmax(curve.counts))
    small = int(np.flatnonzero((curve.counts > 0) & (curve.counts < MAX_SHOWN))[0])
    for b in (big, small):
        rerun(at, cal_bin=b)
        assert at.selectbox(key="cal_bin").value == b
        n = int(curve.counts[b])
        assert len(at.get("image")) == min(MAX_SHOWN, n)
        mistakes = int(n - round(curve.accuracy[b] * n))
        assert any(c.value.startswith(f"{mistakes} mistakes among {n} samples; showing {min(MAX_SHOWN, n)}")
                   for c in at.caption)


def click_event(b: int, count: int = 5, confidence: float = 0.9) -> dict:
    return {"selection": {"points": [{"customdata": [b, count, confidence]}], "point_indices": [0], "box": [],
                          "lasso": []}}


def test_clicking_a_bar_selects_its_bin():
    at = open_page(cal_models=["cnn"])
    curve = primary_curve("digits", "cnn")
    nonempty = [int(b) for b in np.flatnonzero(curve.counts > 0)]
    default = at.selectbox(key="cal_bin").value
    target = next(b for b in nonempty if b != default)
    rerun(at, cal_reliability=click_event(target))
    assert at.selectbox(key="cal_bin").value == target
    assert len(at.get("image")) == min(MAX_SHOWN, curve.counts[target])
    # a click on an empty bin (or the diagonal: no customdata) keeps the current bin
    empty = int(np.flatnonzero(curve.counts == 0)[0])
    rerun(at, cal_reliability=click_event(empty))
    assert at.selectbox(key="cal_bin").value == target
    rerun(at, cal_reliability={"selection": {"points": [{"x": 0.2, "y": 0.2}], "point_indices": [0], "box": [],
                                             "lasso": []}})
    assert at.selectbox(key="cal_bin").value == target


@pytest.mark.parametrize("method,suffix", [("temperature", "after temperature scaling"), ("platt", "after platt"),
                                           ("isotonic", "after isotonic")])
def test_recalibration_control_changes_the_diagram(method, suffix):
    at = open_page(cal_models=["logreg"])
    before = charts(at)[0]
    rerun(at, cal_method=method)
    assert at.button_group(key="cal_method").value == method
    assert diagram_title(at) == f"Reliability diagram (test split {suffix})"
    after = charts(at)[0]
    assert after["data"] != before["data"]  # the bars now show the recalibrated predictions
    # the plotted curve is the report's curve for that method
    report = calibration.calibration_report(
        "logreg", *_val_test("digits", "logreg"), n_bins=15, n_boot=0)
    curve = report.curve(method, "uniform")
    acc = next(t for t in after["data"] if t.get("name") == "logreg: accuracy per bin")
    np.testing.assert_array_equal(decode(acc["customdata"])[:, 0].astype(int), np.flatnonzero(curve.counts > 0))
    np.testing.assert_allclose(decode(acc["y"]), curve.accuracy[curve.counts > 0])


def _val_test(scenario, model, variant=None):
    """The page's inputs: the cached, batched predictions of the validation and test splits.

    Platt scaling (a nearly unregularised logistic regression on log-probabilities, C=1e4) is
    unstable on digits' logreg: one unbatched predict_proba call of the whole split differs from
    the page's batches of 256 by 1e-7, and the recalibrated probabilities then differ by up to 0.45.
    """
    from core.inference import predict_proba_cached

    loaded = scenarios.load_model(scenario, model, variant)
    splits = scenarios.load_data(scenario, variant)
    return (predict_proba_cached(loaded.adapter, splits["val"]), splits["val"].y,
            predict_proba_cached(loaded.adapter, splits["test"]), splits["test"].y)


def test_equal_mass_bins_and_bin_count():
    at = open_page(cal_models=["logreg"], cal_strategy="quantile", cal_bins=8)
    assert diagram_title(at) == "Reliability diagram (test split)"
    curve = primary_curve("digits", "logreg", n_bins=8, strategy="quantile")
    assert len(at.selectbox(key="cal_bin").options) == int(np.sum(curve.counts > 0))
    table = metrics_table(at)
    _, _, m = independent_report("digits", "logreg", n_bins=8)
    assert table.iloc[0]["ECE"] == pytest.approx(m.ece, abs=1e-6)
    assert table.iloc[0]["ACE (equal mass)"] == pytest.approx(m.ace, abs=1e-6)


def test_no_model_selected_shows_a_hint():
    at = open_page(cal_models=[])
    assert any("Pick at least one model" in i.value for i in at.info)
    assert not at.get("plotly_chart")


# -- newsgroups (text samples) ------------------------------------------------------------------
def test_newsgroups_page_lists_the_documents_of_a_bin():
    require_dataset("newsgroups")
    at = open_page("newsgroups", "logreg", "headers", cal_models=["logreg"])
    check_page(at, "newsgroups", "headers")
    curve = primary_curve("newsgroups", "logreg", "headers")
    big = int(np.argmax(curve.counts))
    rerun(at, cal_bin=big)
    assert at.selectbox(key="cal_bin").value == big
    samples = at.dataframe[1].value
    assert len(samples) == min(MAX_SHOWN, curve.counts[big])
    proba, test, _ = independent_report("newsgroups", "logreg", "headers")
    index = samples["index"].to_numpy()
    assert set(index) <= set(curve.samples_in(big).tolist())
    np.testing.assert_allclose(samples["confidence"], proba[index].max(axis=1), atol=1e-6)
    np.testing.assert_array_equal(samples["correct"], proba[index].argmax(axis=1) == test.y[index])
    # mistakes first, then by decreasing confidence
    correct = samples["correct"].to_numpy()
    assert not np.any(correct[:-1] & ~correct[1:])
    for group in (correct, ~correct):
        assert np.all(np.diff(samples["confidence"].to_numpy()[group]) <= 1e-12)
    assert at.main.code, "the first listed document is shown"


def test_one_vs_rest_curve_for_a_class():
    # Class 3 vs rest: the bins are of P(3) over all test samples, checked against an
    # independent one-vs-rest curve, and the diagram says which probability it shows.
    at = open_page(cal_of=3)
    assert "P(3) against the label being 3" in diagram_title(at)
    splits = scenarios.load_data("digits")
    proba = scenarios.load_model("digits", "cnn").adapter.predict_proba(splits["test"].x)
    expected = calibration.reliability_curve(proba[:, 3], splits["test"].y == 3, 15, "uniform")
    chosen = at.selectbox(key="cal_bin").value
    assert expected.counts[chosen] > 0
    n = int(expected.counts[chosen])
    assert len(at.get("image")) == min(MAX_SHOWN, n)
