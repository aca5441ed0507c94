"""AppTest of the image explanations page."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.pages.helpers import open_app


def open_page(**state) -> AppTest:
    """The page with ``state`` set before the first run (so the sidebar's widgets accept it)."""
    return open_app("pages/images.py", state=state, timeout=300)


def grid(at: AppTest):
    import json

    charts = at.get("plotly_chart")
    assert charts, "no chart on the page"
    return json.loads(charts[0].proto.spec)


def array(value) -> np.ndarray:
    """A plotly array from the figure JSON (plain list, or a typed array {dtype, bdata, shape})."""
    import base64

    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return out.reshape([int(s) for s in str(shape).split(",")]) if shape else out
    return np.asarray(value, dtype=float)


def test_text_scenario_points_to_the_image_scenarios():
    at = open_page(tl_scenario="breast-cancer")
    assert "pick an image scenario" in at.info[0].value and "Digits (8x8)" in at.info[0].value
    assert not at.get("plotly_chart")


def test_default_grid_is_the_lectures_and_its_numbers_are_the_engines():
    at = open_page()
    assert not at.error
    methods = at.multiselect(key="img_methods").value
    assert methods == ["gradient", "smoothgrad", "guided_backprop", "integrated_gradients"]
    spec = grid(at)
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert titles[:6] == ["Original", "Gradient", "SmoothGrad", "Guided BackProp", "Integrated Gradients",
                          "Class<br>probabilities"]
    picks = at.multiselect(key="img_picks").value
    assert picks == [0, 1, 2, 3]
    # Independent check of the completeness table: f(image) - f(black) from plain forward passes.
    from core import scenarios

    adapter = scenarios.load_model("digits", "cnn").adapter
    x = np.asarray(scenarios.load_data("digits")["test"].x[picks], dtype=np.float32)
    with torch.no_grad():
        logits = adapter.torch_module()(torch.as_tensor(x)).numpy()
    predicted = logits.argmax(axis=1)
    delta = logits[np.arange(4), predicted] - (adapter.torch_module()(torch.zeros_like(torch.as_tensor(x)))
                                               .detach().numpy()[np.arange(4), predicted])
    table = at.dataframe[0].value
    np.testing.assert_allclose(table["f(image) - f(baseline)"], delta, rtol=1e-4)
    assert (table["gap %"] < 2).all()
    # The heatmap shown for IG (column 5 overlay of row 1) holds the engine's values for image 0.
    from core.attribution import explain_images, image_context

    ig = explain_images(adapter, x[:1], predicted[:1], "integrated_gradients",
                        context=image_context(scenarios.load_data("digits")["train"]))
    shown = [t for t in spec["data"] if t["type"] == "heatmap" and "Integrated Gradients" in t.get("hovertemplate", "")]
    np.testing.assert_allclose(array(shown[0]["z"]), ig.heatmap()[0], rtol=1e-5, atol=1e-6)


def test_scikit_learn_model_offers_the_perturbation_methods_only_and_says_why():
    at = open_page(tl_model="logreg")
    assert not at.error
    assert at.multiselect(key="img_methods").value == ["occlusion"]
    assert at.multiselect(key="img_methods").options == ["Occlusion", "LIME"]
    captions = " ".join(c.value for c in at.caption)
    assert "Not available for this model" in captions and "not differentiable through torch" in captions
    assert any("Occlusion" in m.value and "patch" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) == 2  # the grid and the occlusion probability maps


def test_lime_column_shows_the_engines_superpixel_weights():
    from core import scenarios
    from core.attribution import explain_images
    from core.attribution.lime_image import LimeImageParams

    at = open_page(tl_model="logreg", img_methods=["occlusion", "lime"], img_picks=[0], lime_segment=4,
                   lime_samples=250)
    assert not at.error
    figure = grid(at)
    assert "LIME" in " ".join(a.get("text", "") for a in figure["layout"]["annotations"])
    adapter = scenarios.load_model("digits", "logreg").adapter
    x = np.asarray(scenarios.load_data("digits")["test"].x[[0]], dtype=np.float32)
    expected = explain_images(adapter, x, adapter.predict(x), "lime",
                              LimeImageParams(segment=4, num_samples=250)).heatmap()[0]
    # 8x8 digits with 4 px squares: 4 superpixels, so the map has at most 4 distinct values.
    assert len(np.unique(expected)) <= 4
    shown = [t for t in figure["data"] if t["type"] == "heatmap" and "LIME" in t.get("hovertemplate", "")]
    np.testing.assert_allclose(array(shown[0]["z"]), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.slow  # 3.8 s
def test_another_class_settings_and_mistakes():
    at = open_page(img_correctness="incorrect", img_sort="confidence: high first", img_target="another class",
                   img_target_class=3, img_methods=["occlusion", "grad_cam", "lrp", "integrated_gradients"],
                   occ_fill="mean", occ_window=3, occ_stride=2, ig_steps=100, lrp_rule="alpha_beta")
    assert not at.error
    picks = at.multiselect(key="img_picks").value
    from core import scenarios

    test = scenarios.load_data("digits")["test"]
    adapter = scenarios.load_model("digits", "cnn").adapter
    proba = adapter.predict_proba(test.x[picks])
    assert (proba.argmax(axis=1) != test.y[picks]).all()  # only mistakes
    assert list(proba.max(axis=1)) == sorted(proba.max(axis=1), reverse=True)  # most confident first
    occlusion_note = next(m.value for m in at.markdown if "probability of the explained class" in m.value)
    assert "3 px patch (mean fill)" in occlusion_note and "stride 2" in occlusion_note
    assert "100 steps" in " ".join(c.value for c in at.caption)
    spec = grid(at)
    red = [t["marker"]["color"] for t in spec["data"] if t["type"] == "bar"]
    assert all(colours[3] == "#b2182b" for colours in red)  # class 3 is the explained one in every row
    at = open_page(img_methods=["grad_cam", "guided_grad_cam"], gcam_layer="conv1")  # both at once, own settings
    assert not at.exception and at.selectbox(key="gcam_layer").value == "conv1"
    assert at.selectbox(key="cam_layer").value == "relu2"
    layer = at.selectbox(key="cam_layer")
    assert layer.value == "relu2"  # the last conv block's output, after its ReLU
    assert "conv2 (before its activation)" in layer.options and "relu2" in layer.options


@pytest.mark.slow  # 3 s
def test_default_grad_cam_maps_are_not_blank_and_a_blank_one_is_said():
    at = open_page(img_methods=["grad_cam"])
    assert not [w.value for w in at.warning if "blank" in w.value]
    assert "blank map" not in [a.get("text") for a in grid(at)["layout"]["annotations"]]
    # Wave 1's default layer (conv2, before its ReLU) gave blank maps: picked by hand, the page says so.
    from core.attribution.gradcam import GradCamParams

    at = open_page(img_methods=["grad_cam"], img_picks=[0, 1, 2, 3], cam_layer="conv2")
    from core import scenarios
    from core.attribution import explain_images

    adapter = scenarios.load_model("digits", "cnn").adapter
    x = np.asarray(scenarios.load_data("digits")["test"].x[:4], dtype=np.float32)
    blank = explain_images(adapter, x, adapter.predict(x), "grad_cam", GradCamParams(layer="conv2")).degenerate
    assert blank.any()
    warnings = [w.value for w in at.warning if "Grad-CAM" in w.value]
    assert warnings and f"{int(blank.sum())} of 4 maps are blank" in warnings[0] and "Try:" in warnings[0]
    marked = [a for a in grid(at)["layout"]["annotations"] if a.get("text") == "blank map"]
    assert len(marked) == int(blank.sum())


@pytest.mark.slow  # loads the MNIST ViT (85 s to train on first use)
def test_grad_cam_on_the_mnist_vit_reads_the_tokens_entering_the_last_attention():
    from tests.conftest import require_dataset

    require_dataset("mnist")
    at = open_page(tl_scenario="mnist", tl_model="vit", img_methods=["grad_cam"])
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    layer = at.selectbox(key="cam_layer")
    assert layer.value == "blocks.3.norm1"
    assert "blocks.3.norm1 (tokens entering block 4 of 4's attention)" in layer.options
    assert "patch_embed" in layer.options and not any("attn.probs" in o for o in layer.options)
    assert any(o.startswith("blocks.3.out (") and "blank maps" in o for o in layer.options)
    assert not [w.value for w in at.warning if "blank" in w.value]
    spec = grid(at)
    assert "Grad-CAM" in [a["text"] for a in spec["layout"]["annotations"]]
    assert "blank map" not in [a.get("text") for a in spec["layout"]["annotations"]]
    # The shown map is the engine's at the token layer: 4x4 patch grid, bilinear to 28x28.
    from core import scenarios
    from core.attribution import explain_images
    from core.attribution.gradcam import GradCamParams

    picks = at.multiselect(key="img_picks").value
    adapter = scenarios.load_model("mnist", "vit").adapter
    x = np.asarray(scenarios.load_data("mnist")["test"].x[picks], dtype=np.float32)
    expected = explain_images(adapter, x[:1], adapter.predict(x[:1]), "grad_cam", GradCamParams(layer="blocks.3.norm1"))
    shown = [t for t in spec["data"] if t["type"] == "heatmap" and "Grad-CAM" in t.get("hovertemplate", "")]
    np.testing.assert_allclose(array(shown[0]["z"]), expected.heatmap()[0], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # 3.2 s
def test_a_rerun_with_the_same_inputs_reuses_the_maps_without_errors():
    """Regression: results cached with st.cache_data replayed the progress bar's elements on a hit
    (CacheReplayClosureError); moving a display slider reruns the page with the same maps."""
    at = open_page(img_methods=["gradient", "occlusion"])
    at.slider(key="img_opacity").set_value(0.4).run()
    assert not at.exception, at.exception
    at.run()
    assert not at.exception, at.exception
    maps = [t for t in grid(at)["data"] if t["type"] == "heatmap" and "Gradient" in t.get("hovertemplate", "")]
    assert maps and all(t["opacity"] == 0.4 for t in maps)


def test_percentile_and_opacity_drive_the_colour_scale():
    at = open_page(img_methods=["gradient_x_input"], img_clip=100.0, img_opacity=1.0)
    spec = grid(at)
    maps = [t for t in spec["data"] if t["type"] == "heatmap" and "Gradient x input" in t.get("hovertemplate", "")]
    z = array(maps[0]["z"])
    assert maps[0]["zmax"] == pytest.approx(np.abs(z).max()) and maps[0]["zmin"] == pytest.approx(-np.abs(z).max())
    assert maps[0]["opacity"] == 1.0
    # No greyscale backdrop under an opaque map: Original + 1 map per row.
    assert sum(t["type"] == "heatmap" for t in spec["data"]) == 2 * 4


def test_expected_gradients_is_offered_in_the_grid_with_its_efficiency_table():
    at = open_page(img_methods=["expected_gradients"], eg_samples=100, eg_background=50)
    assert not at.error
    titles = [a["text"] for a in grid(at)["layout"]["annotations"]]
    assert "Expected Gradients (SHAP)" in titles
    table = at.dataframe[0].value
    assert list(table.columns) == ["image", "base value", "f(image)", "sum of values", "gap"]
    np.testing.assert_allclose(table["gap"], table["sum of values"] - (table["f(image)"] - table["base value"]), atol=1e-9)
    # A Monte Carlo estimate: on the trained digits CNN at 100 samples the gaps total 4% of |f(image) - base|
    # (one image 12%); a sign or scaling error would be of the order of 100%.
    assert np.abs(table["gap"]).sum() < 0.1 * np.abs(table["f(image)"] - table["base value"]).sum()
