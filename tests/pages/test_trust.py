"""AppTest of the trust checks page."""

from __future__ import annotations

import json

import numpy as np
from streamlit.testing.v1 import AppTest

import pytest

from tests.conftest import require_dataset
from tests.pages.helpers import open_app
from tests.pages.test_images import array


def open_page(**state) -> AppTest:
    """The page with ``state`` set before the first run (so the sidebar's widgets accept it)."""
    return open_app("pages/trust.py", state=state, timeout=300)


@pytest.mark.slow  # 171 s cold: randomisation, deletion and stability runs on the digits CNN
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
    from core.trust.sanity import randomization_test

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
    # The two methods that need no gradients, so the agreement matrix has something to compare.
    assert at.multiselect(key="trust_methods").value == ["occlusion", "lime"]
    assert any("Occlusion" in m.value and ("faithful" in m.value or "random" in m.value) for m in at.markdown)
    assert any(m.value.startswith("- **LIME**: ") for m in at.markdown)
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    matrix = next(f for f in figures if f["layout"].get("title", {}).get("text", "").startswith("Agreement"))
    z = array(matrix["data"][0]["z"])
    assert z.shape == (2, 2) and -1 <= z[0, 1] < 1


@pytest.mark.slow  # the newsgroups bag model (20 s to train)
def test_newsgroups_bag_model_gets_every_check_with_the_engines_numbers():
    require_dataset("newsgroups")
    at = open_page(tl_scenario="newsgroups", tl_model="bag", tl_variant="headers", trust_text_picks=[0, 1])
    assert not at.error
    verdicts = [m.value for m in at.markdown if m.value.startswith("- **")]
    titles = ["LIME", "Leave one word out", "Gradient x embedding"]
    for title in titles:
        assert any(v.startswith(f"- **{title}** passes") or v.startswith(f"- **{title}** fails") for v in verdicts)
        assert any(v.startswith(f"- **{title}**: ") for v in verdicts), verdicts
    # The similarity curve and the deletion areas are the engine's for the same documents.
    from core import scenarios
    from core.trust.sanity_text import predicted_classes, text_explanations, text_faithfulness_curves, text_randomization_test

    adapter = scenarios.load_model("newsgroups", "bag", "headers").adapter
    texts = [str(t) for t in scenarios.load_data("newsgroups", "headers")["test"].x[[0, 1]]]
    expected = text_randomization_test(adapter, texts, ["occlusion"])["occlusion"].mean()
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    similarity = next(f for f in figures if f["layout"]["title"]["text"].startswith("Similarity"))
    occlusion = next(t for t in similarity["data"] if t["name"] == "Leave one word out")
    np.testing.assert_allclose(array(occlusion["y"]), expected, rtol=1e-9)
    targets = predicted_classes(adapter, texts)
    weights = [e.weights for e in text_explanations(adapter, texts, ["occlusion"], targets)["occlusion"]]
    areas = text_faithfulness_curves(adapter, texts, targets, weights, steps=10).areas()
    table = at.dataframe[1].value.set_index("method")
    assert table.loc["Leave one word out", "deletion"] == pytest.approx(areas["deletion"], abs=1e-12)
    assert list(table.index) == titles
    matrix = next(f for f in figures if f["layout"]["title"]["text"].startswith("Agreement"))
    np.testing.assert_allclose(np.diag(array(matrix["data"][0]["z"])), 1.0)
    assert "|word weights|" in matrix["layout"]["title"]["text"]


def test_newsgroups_scikit_learn_model_is_told_to_pick_the_torch_one():
    require_dataset("newsgroups")
    at = open_page(tl_scenario="newsgroups", tl_model="logreg", tl_variant="headers", trust_text_picks=[0])
    assert not at.error
    assert any("needs a torch model: pick the bag or minilm model in the sidebar" in i.value for i in at.info)
    assert at.multiselect(key="trust_text_methods").value == ["lime", "occlusion"]
    assert any(m.value.startswith("- **LIME**: ") for m in at.markdown)


@pytest.mark.slow  # trains the digits CNN on shuffled labels (55 s)
def test_data_randomisation_shows_the_shuffled_label_model():
    at = open_page(trust_methods=["gradient", "integrated_gradients"], trust_data_random=True)
    assert not at.error
    captions = " ".join(c.value for c in at.caption)
    assert "Trained on shuffled labels: test accuracy" in captions
    verdicts = [m.value for m in at.markdown if m.value.startswith("- **") and "shuffled labels" in m.value
                or "learned nothing" in m.value]
    assert len(verdicts) == 2, verdicts


def test_a_blank_original_map_never_passes(monkeypatch):
    """Wave 1's Grad-CAM at conv2 (before its ReLU) gave blank digits maps and a 'passes' verdict beside them."""
    from core import scenarios
    from core.attribution import explain_images
    from core.attribution import gradcam
    from core.attribution.gradcam import GradCamParams

    adapter = scenarios.load_model("digits", "cnn").adapter
    test = scenarios.load_data("digits")["test"]
    x = np.asarray(test.x[:60], dtype=np.float32)
    blank = explain_images(adapter, x, adapter.predict(x), "grad_cam", GradCamParams(layer="conv2")).degenerate
    picks = [int(i) for i in np.flatnonzero(blank)[:4]]
    assert len(picks) == 4
    monkeypatch.setattr(gradcam, "default_layer", lambda _adapter, _shape: "conv2")  # the old default
    at = open_page(trust_methods=["gradient", "grad_cam"], trust_picks=picks)
    assert not at.error
    warnings = [w.value for w in at.warning]
    assert any("Grad-CAM" in w and "4 of 4 maps are blank" in w for w in warnings), warnings
    verdicts = [m.value for m in at.markdown if m.value.startswith("- **")]
    cam = [v for v in verdicts if v.startswith("- **Grad-CAM**")]
    assert len(cam) == 2 and all("cannot judge" in v and "passes" not in v for v in cam), cam
    assert any(v.startswith("- **Gradient** passes") for v in verdicts), verdicts
    areas = at.dataframe[0].value.set_index("method")
    assert np.isnan(areas.loc["Grad-CAM", "deletion"]) and not np.isnan(areas.loc["Gradient", "deletion"])


@pytest.mark.slow  # the transformer: its test-split predictions (717 posts) on first use, 8 randomisation stages
def test_transformer_checks_open_on_gradient_methods_with_blocks_randomised():
    require_dataset("newsgroups")
    shortest = 225  # the shortest test post (115 characters): 8 stages x 2 methods stay quick
    at = open_page(tl_scenario="newsgroups", tl_model="minilm", tl_variant="headers", trust_text_picks=[shortest])
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.multiselect(key="trust_text_methods").value == ["gradient_x_embedding", "integrated_gradients"]
    assert any("minilm is a transformer on the CPU" in c.value for c in at.caption)
    strip = next(d.value for d in at.dataframe if "Integrated Gradients" in d.value.columns)
    stages = list(strip.iloc[:, 0])
    assert stages[:3] == ["original", "up to head", "up to model.encoder.layer.5"] and stages[-1] == "up to model.embeddings"
