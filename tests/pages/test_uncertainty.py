"""AppTest of pages/uncertainty.py: tables against the engine, published scores, click -> sample, sources.

Small settings keep it fast (K=2 members, T=5 passes); the members use the scenario's full recipe.
The default source needs no training (MC dropout on the scenario's CNN); an ensemble trains only
after its button (or a link that names it), with the time estimated first.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from components.uncertainty_view import as_number
from core import scenarios
from core.store import MODEL_CACHE_ENV_VAR, default_store, model_store
from core.uncertainty import load_source
from core.uncertainty.report import uncertainty_report
from tests.pages.helpers import check, finish_jobs, open_app, sidebar_state

TIMEOUT = 300  # first use trains the members inside the run
PAGE = "pages/uncertainty.py"


def open_page(scenario: str = "digits", model: str | None = None, uploads: list[str] | None = None,
              train: bool = False, query: dict[str, str] | None = None, **widgets) -> AppTest:
    """The page with ``widgets`` set; ``train`` presses the training button when the source asks for one;
    ``query``: the page opened by a link with that query string."""
    state = {"tl_uploads": uploads} if uploads else {}
    at = open_app(PAGE, state={**state, **sidebar_state(scenario, model)}, page_state=widgets, page_query=query,
                  timeout=TIMEOUT, errors=True, title="Uncertainty")
    if train and any(b.key == "unc_train" for b in at.button):
        at.button(key="unc_train").click().run()  # starts the training job: the page follows its progress
        check(finish_jobs(at))
    return at


@pytest.fixture
def fresh_store(monkeypatch, tmp_path):
    """An empty store holding only the digits models (trained once where the session keeps its models), nothing
    in memory; TRUSTLENS_MODEL_CACHE_DIR is unset, so whatever the page trains lands in this store."""
    source = model_store()
    keys = [scenarios.load_model("digits", m).key for m in scenarios.get_spec("digits").model_names]
    for key in keys:
        target = tmp_path / "cache" / key[:2] / f"{key}.pkl"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source.path_for(key), target)
    monkeypatch.setenv("TRUSTLENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(MODEL_CACHE_ENV_VAR, raising=False)
    scenarios.forget_loaded_models()
    from core.uncertainty.members import forget_members

    forget_members()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield default_store()
    scenarios.forget_loaded_models()
    forget_members()
    st.cache_data.clear()
    st.cache_resource.clear()


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def chart_titles(at: AppTest) -> list[str]:
    return [c["layout"]["title"]["text"] for c in charts(at)]


def open_deep_ensemble(**widgets) -> AppTest:
    """The default view, then its one-click deep ensemble button (K=2), or the source control when the members
    are already trained (by an earlier test)."""
    at = open_page(unc_members=2, unc_autoencoder=False, **widgets)
    assert at.session_state["unc_source"] == "mc_dropout"
    offers = [b for b in at.button if b.key == "unc_train_ensemble"]
    if offers:
        assert offers[0].label.startswith("Train the deep ensemble (about ")
        offers[0].click().run()
    else:
        at.session_state["unc_source"] = "deep"
        at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["unc_source"] == "deep"
    return at


@pytest.mark.slow  # trains a 2-member deep ensemble of digits CNNs (about 1 min cold)
def test_digits_deep_ensemble_tables_match_the_engine():
    at = open_deep_ensemble()
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


@pytest.mark.slow  # the 2-member deep ensemble (about 1 min cold)
def test_clicking_a_point_selects_that_input_and_the_shift_table_lists_shifted_sets():
    at = open_deep_ensemble(unc_sets=["noise"])
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


def test_default_is_mc_dropout_on_the_scenario_model_and_its_passes_disagree(fresh_store):
    at = open_page(unc_samples=5)
    assert at.session_state["unc_source"] == "mc_dropout" and at.session_state["unc_autoencoder"] is False
    assert any("stochastic passes have no fixed members" in c.value for c in at.caption)
    assert not any(t.startswith("Saliency") for t in chart_titles(at))
    published = at.session_state["uncertainty_scores"]
    assert published["source"] == "mc_dropout"
    mi = published["scores"]["mutual information (epistemic)"]
    assert np.mean(mi > 0) > 0.9 and mi.max() > 0.05  # dropout really samples: not a degenerate, all-zero score
    assert not at.warning
    # nothing but the scenario's models was trained for the default view
    from core.uncertainty.members import members_trained
    from core.uncertainty.sources import autoencoder_ready

    assert not members_trained("digits", "cnn", None, "deep", 1, store=fresh_store)
    assert not autoencoder_ready("digits", None, store=fresh_store)
    # the deep ensemble: one click away, with what it trains and for how long, before it starts
    button = at.button(key="unc_train_ensemble")
    assert button.label.startswith("Train the deep ensemble (about ")
    offer = next(c.value for c in at.caption if c.value.startswith("Compare with an ensemble"))
    assert "trains 5 copies" in offer and "on this machine" in offer and "steps at" in offer
    # the autoencoder, off by default, says what switching it on trains
    assert "Not trained yet" in at.toggle(key="unc_autoencoder").help


def test_sklearn_model_offers_bagging_behind_a_button_with_its_time(fresh_store):
    at = open_page(model="logreg", unc_members=2, unc_autoencoder=False)
    assert at.session_state["unc_source"] == "bootstrap"
    assert not at.dataframe  # nothing trained, nothing shown until the button
    offer = at.info[0].value
    assert "trains 2 copies" in offer and "on this machine" in offer and "took to train here" in offer, offer
    assert "Every source this model offers needs training" in " ".join(c.value for c in at.caption)
    assert at.button(key="unc_train").label.startswith("Train the bootstrap ensemble (about ")
    at.button(key="unc_train").click().run()
    # the training runs as a job: the page answers at once with its progress, then shows the source
    assert not at.exception and not at.dataframe
    assert any("runs in the background" in i.value for i in at.info), [i.value for i in at.info]
    finish_jobs(at)
    assert not at.exception and not at.error
    assert any("scikit-learn models" in c.value for c in at.caption)
    assert "FGSM ε=0.1" not in list(at.dataframe[0].value["set"])  # no gradients, no attack
    assert "uniform noise" in list(at.dataframe[0].value["set"])


def test_a_link_that_names_an_ensemble_trains_it_without_asking(fresh_store):
    at = open_page(model="logreg", query={"source": "bootstrap", "members": "2", "autoencoder": "0"})
    assert not any(b.key == "unc_train" for b in at.button)
    finish_jobs(at)
    assert at.session_state["unc_source"] == "bootstrap"
    assert list(at.dataframe[0].value.columns)[:2] == ["set", "inputs"]
    # the next visit of the same session asks again before training more members
    at.session_state["unc_members"] = 3
    at.run()
    assert any(b.key == "unc_train" for b in at.button)


def test_text_scenario_points_to_the_image_scenarios():
    at = open_app(PAGE, state=sidebar_state("breast-cancer"), timeout=TIMEOUT)
    assert any("image scenario" in i.value for i in at.info)


def test_a_job_interrupted_by_a_restart_is_said_and_can_be_started_again(fresh_store, monkeypatch, tmp_path):
    """A server that stopped while training left a 'running' record; the next server marks it interrupted, the
    page says so (instead of offering a fresh start as if nothing had happened) and starts it again on request."""
    import os
    import socket
    import subprocess
    import sys

    from core import jobs
    from core.jobs import pool

    params = {"scenario": "digits", "model": "logreg", "variant": None, "kind": "bootstrap", "n": 2}
    gone = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    records = tmp_path / "jobs"
    records.mkdir()
    jid = jobs.job_id("uncertainty_source", params)
    (records / f"{jid}.json").write_text(json.dumps({
        "id": jid, "kind": "uncertainty_source", "title": "Training the bootstrap ensemble of digits/logreg (2 members)",
        "params": params, "status": "running", "fraction": 0.5, "message": "member 2 of 2", "submitted": 1.0,
        "started": 2.0, "finished": None, "error": None, "pid": gone, "host": socket.gethostname()}))
    assert gone != os.getpid()
    monkeypatch.setattr(pool, "_runner", pool.JobRunner(records=records))  # the restarted server's runner
    at = open_page(model="logreg", unc_members=2, unc_autoencoder=False)
    assert not at.exception
    assert any("was interrupted at 50%" in w.value for w in at.warning), [w.value for w in at.warning]
    assert not at.dataframe and not any(b.key == "unc_train" for b in at.button)
    at.button(key=f"job_restart_{jid[:12]}").click().run()
    assert any("runs in the background" in i.value for i in at.info)
    finish_jobs(at)
    assert not at.exception and not at.error and at.dataframe
    assert json.loads((records / f"{jid}.json").read_text())["status"] == "done"
