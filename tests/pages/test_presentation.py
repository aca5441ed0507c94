"""Presentation mode: larger figures, folded controls, and a "next example" bar over curated examples."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from components import present
from core import scenarios
from core.lecture import curated
from tests.pages.helpers import open_app

FILES = {"calibration": "pages/calibration.py", "images": "pages/images.py", "shapley": "pages/shapley.py",
         "trust": "pages/trust.py", "embeddings": "pages/embeddings.py", "uncertainty": "pages/uncertainty.py",
         "text": "pages/text.py"}


def popovers(at: AppTest) -> list:
    found, todo = [], [at.main]
    while todo:
        node = todo.pop()
        if getattr(node, "type", None) == "popover":
            found.append(node)
        todo.extend(getattr(node, "children", {}).values())
    return found


def open_page(page: str, **query: str) -> AppTest:
    """The page opened by a link with ``query``."""
    return open_app(FILES[page], query=query)


def next_button(at: AppTest, page: str, which: str = "next"):
    return at.button(key=f"tl_{which}_{page}")


def bar_text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown if "Example" in m.value or "curated examples" in m.value)


def test_next_example_steps_through_the_curated_mistakes_on_the_image_page():
    at = open_page("images", scenario="digits", present="1", methods="gradient")
    assert "curated examples" in bar_text(at)
    expected = curated.examples("digits", "images", model=at.session_state["tl_model"])
    assert expected, "digits has mistakes to show"
    splits = scenarios.load_data("digits")
    for step in range(2):
        next_button(at, "images").click().run()
        assert not at.exception, at.exception
        example = expected[step]
        assert at.multiselect(key="img_picks").value == [example.index]
        assert f"Example {step + 1} of {len(expected)}" in bar_text(at)
        assert at.query_params["images"] in (str(example.index), [str(example.index)])  # the link follows
    # the first examples are mistakes: the page's own predicted label differs from the truth
    label = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert f"#{expected[1].index}" in json.dumps(label)
    assert int(splits["test"].y[expected[0].index]) != int(
        np.argmax(scenarios.load_model("digits", at.session_state["tl_model"]).adapter.predict_proba(
            splits["test"].x[[expected[0].index]]), axis=1)[0])


@pytest.mark.slow  # 2 s cold (the fast tier's budget)
def test_previous_from_the_start_wraps_to_the_last_example():
    at = open_page("images", scenario="digits", present="1", methods="gradient")
    expected = curated.examples("digits", "images", model=at.session_state["tl_model"])
    next_button(at, "images", "prev").click().run()
    assert at.multiselect(key="img_picks").value == [expected[-1].index]
    assert f"Example {len(expected)} of {len(expected)}" in bar_text(at)


def test_next_example_on_the_shapley_page_focuses_its_row():
    at = open_page("shapley", scenario="breast-cancer", present="1")
    expected = curated.examples("breast-cancer", "shapley", model=at.session_state["tl_model"])
    next_button(at, "shapley").click().run()
    assert not at.exception, at.exception
    assert at.session_state["shap_focus"] == expected[0].index
    assert any(f"Row {expected[0].index} (from the link" in c.value for c in at.caption)


def test_calibration_examples_put_their_model_first():
    at = open_page("calibration", scenario="digits", present="1")
    expected = curated.examples("digits", "calibration", model=at.session_state["tl_model"])
    next_button(at, "calibration").click().run()
    assert at.multiselect(key="cal_models").value[0] == expected[0].model
    assert at.selectbox(key="tl_model").value == expected[0].model


def test_presentation_mode_enlarges_figures_and_folds_controls():
    plain = open_page("calibration", scenario="digits")
    shown = open_page("calibration", scenario="digits", present="1")
    small = json.loads(plain.get("plotly_chart")[0].proto.spec)["layout"]
    large = json.loads(shown.get("plotly_chart")[0].proto.spec)["layout"]
    assert large["font"]["size"] == present.FONT_SIZE and small.get("font", {}).get("size") != present.FONT_SIZE
    assert large["height"] == int((small.get("height") or 450) * present.HEIGHT_SCALE)
    assert not popovers(plain) and not any("next" in (b.key or "") for b in plain.button)
    assert popovers(shown), "the controls are folded into a popover"
    assert popovers(shown)[0].slider(key="cal_bins"), "the bins slider is inside it"


def test_without_presentation_mode_there_is_no_example_bar():
    at = open_page("images", scenario="digits", methods="gradient")
    assert not bar_text(at)
    assert not [b for b in at.button if (b.key or "").startswith("tl_next")]


def test_example_titles_are_shown_literally():
    assert present._md("a *b* [c](http://x) <script>") == r"a \*b\* \[c\]\(http://x\) \<script\>"


@pytest.mark.slow  # 105 s cold: the curated uncertainty examples train the deep ensemble
def test_uncertainty_examples_select_the_disputed_input():
    at = open_page("uncertainty", scenario="digits", present="1")
    expected = curated.examples("digits", "uncertainty", model=at.session_state["tl_model"])
    next_button(at, "uncertainty").click().run()
    assert not at.exception, at.exception
    assert tuple(at.session_state["unc_pick"]) == ("clean", expected[0].index)
    assert "Example 1 of" in bar_text(at)


@pytest.mark.slow  # 8 s: curated text examples over the newsgroups models
def test_text_examples_open_their_document_with_their_model():
    from tests.conftest import require_dataset

    require_dataset("newsgroups")
    at = open_page("text", scenario="newsgroups", present="1")
    expected = curated.examples("newsgroups", "text", variant=at.session_state["tl_variant"],
                                model=at.session_state["tl_model"])
    next_button(at, "text").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="text_doc").value == expected[0].index
    if expected[0].model:
        assert at.selectbox(key="tl_model").value == expected[0].model
