"""AppTest runs of app.py and the Home page for every scenario and model.

AppTest quirk (streamlit 1.67): after a widget interaction with st.navigation, the sidebar's
elements are missing from the test tree, so the selection is set through session_state before
a run, which is what the sidebar widgets read.
"""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import scenarios
from tests.conftest import require_dataset
from tests.pages.helpers import open_app, sidebar_state

TIMEOUT = 240  # first use trains the model inside the run


def run_app(scenario: str | None = None, model: str | None = None, variant: str | None = None, **state) -> AppTest:
    """app.py's first run (Home) with the sidebar's selection and ``state`` set before it."""
    return open_app(None, state={**sidebar_state(scenario, model, variant), **state}, timeout=TIMEOUT)


def metric(at: AppTest, label: str) -> str:
    for m in at.metric:
        if m.label == label:
            return m.value
    raise AssertionError(f"no metric {label!r}; have {[m.label for m in at.metric]}")


def test_default_app_shows_digits_home_with_sidebar():
    at = run_app()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Digits (8x8)"
    assert at.selectbox(key="tl_scenario").value == "digits"
    assert at.selectbox(key="tl_model").value == "cnn"
    assert any("Device:" in c.value for c in at.sidebar.caption)
    # the image browser's first page: 48 thumbnails, each captioned with true and predicted class
    assert len(at.get("image")) == 48


CASES = [(s.name, m, v) for s in scenarios.SCENARIOS.values() for m in s.model_names for v in (s.variants[:1] or (None,))]


@pytest.mark.parametrize("scenario,model,variant", CASES, ids=[f"{s}-{m}" for s, m, _ in CASES])
def test_home_page_for_every_model(scenario, model, variant):
    spec = scenarios.get_spec(scenario)
    require_dataset(spec.dataset)
    at = run_app(scenario, model, variant)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == spec.title
    assert at.subheader[0].value == f"Model card: {model}"
    # The card's accuracy (the page's cached predictions, argmax) equals the one training measured with
    # adapter.predict, which tests/core/test_scenarios.py checks against an independent recomputation. Not a
    # third pass over the test split here: on minilm it cost 30 s of a CI worker (717 posts, 128 tokens each).
    loaded = scenarios.load_model(scenario, model, variant)
    assert metric(at, "Test accuracy") == f"{loaded.metrics['test_accuracy']:.1%}"
    assert any(loaded.adapter.fingerprint[:16] in m.value for m in at.markdown)
    assert metric(at, "Parameters") == f"{loaded.adapter.info.n_parameters:,}"


def test_incorrect_filter_shows_only_mistakes():
    at = run_app("digits", "logreg", home_correctness="incorrect")
    assert not at.exception
    captions = [c.value for c in at.caption]
    summary = next(c for c in captions if "samples match" in c)
    n_match = int(summary.split(" of ")[0])
    test = scenarios.load_data("digits")["test"]
    loaded = scenarios.load_model("digits", "logreg")
    assert n_match == int(np.sum(loaded.adapter.predict(test.x) != test.y))
    assert n_match > 0


def test_text_browser_shows_the_selected_document_verbatim():
    require_dataset("newsgroups")
    at = run_app("newsgroups", "logreg", "headers", home_correctness="incorrect")
    assert not at.exception
    test = scenarios.load_data("newsgroups", "headers")["test"]
    texts = [c.value for c in at.main.code]
    assert texts, "the first matching document should be shown"
    # st.code drops one trailing newline; everything else (spaces, header lines) is kept.
    stored = {t.removesuffix("\n"): t for t in test.x}
    assert texts[0] in stored, "the document is shown exactly as stored"
    assert test.y[list(test.x).index(stored[texts[0]])] != scenarios.load_model("newsgroups", "logreg", "headers").adapter.predict([stored[texts[0]]])[0]


def test_missing_data_shows_an_error_with_a_hint_not_a_traceback(monkeypatch, tmp_path):
    import sklearn.datasets

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("TRUSTLENS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    monkeypatch.setattr(scenarios, "_data_cache", {})
    from components import cached

    cached.scenario_data.clear()
    try:
        at = run_app("titanic", "logreg")
    finally:
        cached.scenario_data.clear()
    assert not at.exception, at.exception
    assert at.error and "TRUSTLENS_DATA_DIR" in at.error[0].value
    assert any("Try:" in i.value for i in at.info)
