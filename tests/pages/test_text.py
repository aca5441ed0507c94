"""AppTest of the text explanations page."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import require_dataset
from tests.pages.helpers import open_app


def open_page(**state) -> AppTest:
    """The page with ``state`` set before the first run (so the sidebar's widgets accept it)."""
    return open_app("pages/text.py", state=state, timeout=300)


def newsgroups(**state) -> AppTest:
    require_dataset("newsgroups")
    values = {"tl_scenario": "newsgroups", "tl_variant": "headers", "lime_samples": 1000, **state}
    return open_page(**{k: v for k, v in values.items() if v is not None})


def html_bodies(at: AppTest) -> list[str]:
    return [element.proto.body for element in at.get("html")]


def test_non_text_scenario_points_to_the_text_scenario():
    at = open_page()
    assert "pick a text scenario" in at.info[0].value and "20 Newsgroups" in at.info[0].value
    assert not at.get("html")


@pytest.mark.slow  # 4.8 s: the newsgroups forest
def test_forest_on_a_post_with_headers_shows_header_words_and_the_surrogate_fit():
    from core import scenarios
    from core.text.lime_text import LimeParams, explain_lime

    at = newsgroups(tl_model="forest", text_doc=1)
    assert not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "appear only in the Usenet header" in captions
    assert "None of its top 6 words comes from the Usenet header" in captions  # logreg [no-headers]
    bodies = html_bodies(at)
    assert 'title="Posting: +' in bodies[0] and 'title="Host: +' in bodies[0]
    # The numbers shown are the core's, for the same document and settings.
    adapter = scenarios.load_model("newsgroups", "forest", "headers").adapter
    text = str(scenarios.load_data("newsgroups", "headers")["test"].x[1])
    expected = explain_lime(adapter, text, LimeParams(num_samples=1000))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Local fit (weighted R²)"] == f"{expected.score:.3f}"
    assert metrics["Intercept"] == f"{expected.intercept:.3f}"
    assert any("Gradient x embedding is not available for forest" in c.value for c in at.caption)


def test_pasted_text_is_escaped():
    hostile = '<script>alert(1)</script> God is <img src=x onerror="alert(2)"> love, says the church'
    at = newsgroups(tl_model="logreg", text_source="Your own text", text_custom=hostile)
    assert not at.error
    body = html_bodies(at)[0]
    assert "<script" not in body and "<img" not in body
    assert "&lt;" in body and "&quot;" in body
    # Read back as a browser would: the only tags are ours, and the text is the user's, verbatim.
    from html.parser import HTMLParser

    class Reader(HTMLParser):
        tags: set[str] = set()
        text = ""

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)

        def handle_data(self, data):
            self.text += data

    reader = Reader(convert_charrefs=True)
    reader.feed(body)
    assert reader.tags <= {"div", "span", "em"}
    assert hostile in reader.text


def test_empty_text_asks_for_some():
    at = newsgroups(tl_model="logreg", text_source="Your own text", text_custom="   ")
    assert "Type or paste some text" in at.info[0].value


def test_most_confident_mistake_comes_first():
    import numpy as np

    from core import scenarios
    from core.inference import predict_proba_cached

    at = newsgroups(tl_model="logreg", text_correctness="incorrect", text_sort="confidence: high first")
    test = scenarios.load_data("newsgroups", "headers")["test"]
    proba = predict_proba_cached(scenarios.load_model("newsgroups", "logreg", "headers").adapter, test)
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != test.y)
    assert len(wrong) > 0
    worst = int(wrong[np.argmax(proba[wrong, pred[wrong]])])
    box = at.selectbox(key="text_doc")
    assert box.value == worst and box.options[0].startswith(f"#{worst} ✗")
    assert len(box.options) == len(wrong)


def test_sp_lime_picks_documents_after_the_button():
    at = newsgroups(tl_model="logreg", sp_docs=5, sp_budget=2)
    assert not at.expander or all("covers" not in e.label for e in at.expander)
    at.toggle(key="sp_run").set_value(True).run()
    assert not at.exception, at.exception
    picked = [e for e in at.expander if "covers" in e.label]
    assert len(picked) == 2
    assert any("Picked 2 of 5 documents" in c.value for c in at.caption)


@pytest.mark.parametrize("selection", ["forward_selection", "none"])
def test_feature_selection_setting_reaches_the_explanation(selection):
    import re

    from core import scenarios
    from core.text.words import WordDocument

    at = newsgroups(tl_model="logreg", lime_selection=selection, lime_features=4, text_doc=2)
    assert not at.error
    shaded = set(re.findall(r'title="(\w+): [+-]', html_bodies(at)[0]))
    n_words = WordDocument.parse(str(scenarios.load_data("newsgroups", "headers")["test"].x[2])).n_words
    # forward selection keeps the 4 asked for; "none" weights every word of the document.
    assert len(shaded) == (4 if selection == "forward_selection" else n_words)


def test_shap_can_join_the_methods_and_the_deletion_curves():
    at = newsgroups(tl_model="logreg", text_doc=3, text_methods=["lime", "occlusion", "shap_partition"])
    assert not at.error and not at.exception
    headings = [m.value for m in at.markdown]
    assert any("SHAP (partition)" in h for h in headings)
    chart = [c for c in at.get("plotly_chart") if "SHAP (partition) (faithfulness" in c.proto.spec]
    assert chart, "the deletion chart has a SHAP line"


@pytest.mark.slow  # the transformer: its test-split predictions (717 posts) on first use, then 500 LIME samples
def test_transformer_opens_on_cpu_settings_and_says_so():
    from core.lecture import defaults

    at = newsgroups(tl_model="minilm", lime_samples=None, text_source="Your own text",
                    text_custom="God loves atheists too, says the NNTP-Posting-Host of the church")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.select_slider(key="lime_samples").value == defaults.SLOW_TEXT_LIME_SAMPLES
    assert any("minilm is a transformer on the CPU: it reads the first 128 tokens" in c.value for c in at.caption)
    methods = at.multiselect(key="text_methods").value
    assert {"integrated_gradients", "attention", "attention_rollout", "gradient_x_embedding"} <= set(methods)
    assert "occlusion" not in methods and "shap_partition" not in methods  # a click away on a slow model
    assert at.toggle(key="stability_run").value is False  # five LIME runs wait for the click
    charts = [c.proto.id for c in at.get("plotly_chart")]  # an element's id ends with its key
    assert any(i.endswith("-deletion_curves") for i in charts) and not any(i.endswith("-lime_stability") for i in charts)
    headings = [m.value for m in at.markdown if m.value.startswith("#### ")]
    assert "#### Integrated Gradients" in headings and "#### Attention rollout" in headings
