"""AppTest of the trust checks page."""

from __future__ import annotations

import json

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from tests.pages.test_images import array


def open_page(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/trust.py").run()
    assert not at.exception, at.exception
    return at


def test_digits_cnn_checks_and_their_numbers_are_the_engines():
    at = open_page(trust_methods=["gradient", "integrated_gradients"], trust_stability_run=True)
    assert not at.error
    verdicts = [m.value for m in at.markdown if m.value.startswith("- **")]
    assert any(v.startswith("- **Gradient** passes") for v in verdicts), verdicts
    assert any("Integrated Gradients" in v and "fails" in v for v in verdicts), verdicts
    assert any("faithful" in v for v in verdicts)
    # The similarity curve shows the engine's numbers for the same images.
    from core import scenarios
    from core.attribution import image_context
    from core.sanity import randomization_test

    adapter = scenarios.load_model("digits", "cnn").adapter
    splits = scenarios.load_data("digits")
    x = np.asarray(splits["test"].x[[0, 1, 2, 3]], dtype=np.float32)
    expected = randomization_test(adapter, x, adapter.predict(x), {"gradient": None},
                                  context=image_context(splits["train"]))["gradient"].mean()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    np.testing.assert_allclose(array(figure["data"][0]["y"]), expected, rtol=1e-6)
    areas = at.dataframe[0].value
    assert list(areas["method"]) == ["Gradient", "Integrated Gradients"]
    assert (areas["deletion"] < areas["deletion_random"]).all()
    stability = at.dataframe[1].value
    assert list(stability.columns) == ["method", "max-sensitivity"] and (stability["max-sensitivity"] > 0).all()


def test_agreement_matrix_has_ones_on_the_diagonal():
    at = open_page(trust_methods=["gradient", "smoothgrad", "lrp"])
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    matrix = next(f for f in figures if f["layout"].get("title", {}).get("text", "").startswith("Agreement"))
    z = array(matrix["data"][0]["z"])
    np.testing.assert_allclose(np.diag(z), 1.0)


def test_scikit_learn_model_gets_faithfulness_but_not_randomisation():
    at = open_page(tl_model="logreg")
    assert not at.error
    assert any("needs a torch model" in i.value for i in at.info)
    assert at.multiselect(key="trust_methods").value == ["occlusion"]
    assert any("Occlusion" in m.value and ("faithful" in m.value or "random" in m.value) for m in at.markdown)


def test_text_scenario_points_to_the_text_page():
    at = open_page(tl_scenario="newsgroups")
    assert any("Text explanations page" in i.value for i in at.info)


def test_data_randomisation_shows_the_shuffled_label_model():
    at = open_page(trust_methods=["gradient", "integrated_gradients"], trust_data_random=True)
    assert not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "Trained on shuffled labels: test accuracy" in captions
    verdicts = [m.value for m in at.markdown if m.value.startswith("- **") and "shuffled labels" in m.value
                or "learned nothing" in m.value]
    assert len(verdicts) == 2, verdicts
