"""AppTest of pages/uncertainty.py: tables against the engine, published scores, click -> sample, sources.

Small settings keep it fast (K=2 members, T=5 passes); the members use the scenario's full recipe.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from components.uncertainty_view import as_number
from core.uncertainty import load_source
from core.uncertainty.report import uncertainty_report
from tests.conftest import ROOT

TIMEOUT = 300  # first use trains the members inside the run
PAGE = "pages/uncertainty.py"


def open_page(scenario: str = "digits", model: str | None = None, uploads: list[str] | None = None,
              **widgets) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    if uploads:
        at.session_state["tl_uploads"] = uploads
    at.session_state["tl_scenario"] = scenario
    if model:
        at.session_state["tl_model"] = model
    at.run()
    for key, value in widgets.items():
        at.session_state[key] = value
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Uncertainty"
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def chart_titles(at: AppTest) -> list[str]:
    return [c["layout"]["title"]["text"] for c in charts(at)]


def test_digits_deep_ensemble_tables_match_the_engine():
    at = open_page(unc_members=2, unc_autoencoder=False)
    expected = uncertainty_report(load_source("digits", "cnn", None, "deep", 2), epsilon=0.1, autoencoder=False)
    accuracy = at.dataframe[0].value
    assert list(accuracy["set"]) == [r.set.title for r in expected.sets]
    for title, row in zip(accuracy["set"], expected.rows()):
        got = accuracy.loc[accuracy["set"] == title].iloc[0]
        assert as_number(got["accuracy (mean ensemble)"]) == pytest.approx(row["accuracy_mean"], abs=1e-3) if \
            row["accuracy_mean"] is not None else got["accuracy (mean ensemble)"] == "—"  # a dash, never "None"
    # an independent error AUROC: sklearn on the members' own predictions of the clean test split
    from sklearn.metrics import roc_auc_score

    from core import scenarios

    test = scenarios.load_data("digits")["test"]
    source = load_source("digits", "cnn", None, "deep", 2)
    proba = np.stack([a.predict_proba(test.x) for a in source.adapters])
    mean = proba.mean(axis=0)
    entropy = -(mean * np.log(np.where(mean > 0, mean, 1))).sum(axis=1)
    wrong = mean.argmax(axis=1) != test.y
    auroc = at.dataframe[1].value
    row = auroc.loc[auroc["score"] == "predictive entropy (total)"].iloc[0]
    assert as_number(row["clean test"]) == pytest.approx(roc_auc_score(wrong, entropy), abs=1e-3)
    assert "FGSM ε=0.1" in auroc.columns
    titles = chart_titles(at)
    assert any(t.startswith("Aleatoric vs epistemic") for t in titles)
    assert any(t.startswith("Saliency") for t in titles)
    assert any(t.startswith("Share of test inputs") for t in titles)
    published = at.session_state["uncertainty_scores"]
    assert (published["scenario"], published["model"], published["variant"]) == ("digits", "cnn", None)
    mi = published["scores"]["mutual information (epistemic)"]
    assert len(mi) == len(test)
    np.testing.assert_allclose(mi, expected.get("clean").scores["mutual_information"], atol=1e-9)


def test_clicking_a_point_selects_that_input_and_the_shift_table_lists_shifted_sets():
    at = open_page(unc_members=2, unc_autoencoder=False, unc_sets=["noise"])
    at.session_state["unc_scatter"] = {"selection": {"points": [{"customdata": [7]}], "point_indices": [7],
                                                     "box": [], "lasso": []}}
    at.session_state["unc_auroc_of"] = "shift"
    at.run()
    assert not at.exception and not at.error
    assert any(m.value.startswith("**Selected: uniform noise #7**") for m in at.markdown)
    columns = list(at.dataframe[1].value.columns)
    assert "clean test" not in columns and "uniform noise" in columns
    heatmap = next(c for c in charts(at) if c["layout"]["title"]["text"] == "Every member's probabilities")
    assert heatmap["data"][0]["y"] == ["member 1", "member 2", "mean"]


def test_mc_dropout_source_runs_and_says_why_there_are_no_member_maps():
    at = open_page(unc_source="mc_dropout", unc_samples=5, unc_autoencoder=False)
    assert any("stochastic passes have no fixed members" in c.value for c in at.caption)
    assert not any(t.startswith("Saliency") for t in chart_titles(at))
    assert at.session_state["uncertainty_scores"]["source"] == "mc_dropout"


def test_sklearn_model_offers_bagging_only():
    at = open_page(model="logreg", unc_members=2, unc_autoencoder=False)
    assert at.session_state["unc_source"] == "bootstrap"
    assert any("scikit-learn models" in c.value for c in at.caption)
    assert "FGSM ε=0.1" not in list(at.dataframe[0].value["set"])  # no gradients, no attack
    assert "uniform noise" in list(at.dataframe[0].value["set"])


def test_text_scenario_points_to_the_image_scenarios():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["tl_scenario"] = "breast-cancer"
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert any("image scenario" in i.value for i in at.info)
