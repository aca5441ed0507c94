"""The Shapley page's image section: SHAP values of pixels (expected gradients) beside Integrated Gradients."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import streamlit as st

from components import active_slice, cached, present
from components.feedback import guarded, transient_progress
from components.figures.attributions import attribution_grid
from components.samples import sample_label
from components.state import Selection
from core.lecture import defaults
from core.attribution import get_method
from core.attribution.expected_gradients import ExpectedGradientsParams
from core.attribution.gradients import IntegratedGradientsParams


def image_shap_section(sel: Selection) -> None:
    spec = sel.spec
    st.header(f"SHAP on the pixels of {spec.title} / {sel.model}")
    st.caption("For images, SHAP values are estimated with expected gradients (shap's GradientExplainer): Integrated "
               "Gradients averaged over baselines drawn from the training images, so the values add up to the "
               "model's score minus its mean score over those images. Integrated Gradients from a single black "
               "baseline is beside it. Every other image method is on the Image explanations page.")
    with guarded():
        splits = cached.scenario_data(sel.scenario, sel.variant)
        loaded = cached.trained_model(sel.scenario, sel.model, sel.variant)
    adapter = loaded.adapter
    reason = get_method("expected_gradients").unsupported(adapter)
    if reason:
        st.info(f"Expected gradients need a differentiable model: {reason}", icon=":material/info:")
        return
    test = splits["test"]
    proba = cached.predictions(sel.scenario, sel.model, sel.variant, "test")
    c1, c2, c3 = st.columns([3, 1, 1])
    offered = active_slice.offered(sel, len(test), "shap_image_picks", 3)
    if not offered:
        st.info("No test image lies in the active slice.", icon=":material/filter_alt_off:")
        return
    picks = c1.multiselect("Test images", offered, default=offered[:3], max_selections=6,
                           key="shap_image_picks", format_func=lambda i: sample_label(i, test.y, proba, spec.class_names))
    samples = c2.select_slider("Samples", [50, 100, 200, 500, 1000], defaults.SHAP_IMAGE_SAMPLES, key="shap_image_samples",
                               help="(background image, path point) pairs per image")
    background = c3.select_slider("Background images", [10, 50, 100, 250, 1000], defaults.SHAP_IMAGE_BACKGROUND,
                                  key="shap_image_background")
    if not picks:
        st.info("Pick at least one image.", icon=":material/touch_app:")
        return
    rows = np.asarray(picks, dtype=int)
    images = np.asarray(test.x[rows], dtype=np.float32)
    targets = tuple(int(t) for t in proba[rows].argmax(axis=1))
    chosen = {"expected_gradients": ExpectedGradientsParams(samples=int(samples), background_size=int(background)),
              "integrated_gradients": IntegratedGradientsParams()}
    key = tuple((m, json.dumps(asdict(p), sort_keys=True)) for m, p in chosen.items())
    with guarded(), transient_progress("Expected gradients") as progress:
        results = cached.image_attributions(sel.scenario, sel.model, sel.variant, images, targets, key, 256,
                                            _progress=progress)
    labels = [sample_label(int(i), test.y, proba, spec.class_names) for i in rows]
    titles = {m: get_method(m).title for m in chosen}
    st.plotly_chart(present.figure(attribution_grid(images, results, titles, labels, proba[rows], spec.class_names)),
                    key="shap_image_grid")
    e = results["expected_gradients"].extras
    m = st.columns(3)
    m[0].metric("Mean base value", f"{np.mean(e['base_value']):.3f}",
                help="the model's mean score (logit) for the explained class over the background images")
    m[1].metric("Mean |efficiency gap|", f"{np.mean(np.abs(e['efficiency_gap'])):.3f}",
                help="|base value + sum of SHAP values - score|: Monte Carlo error, shrinks with more samples")
    m[2].metric("Gap / |score - base|", f"{np.sum(np.abs(e['efficiency_gap'])) / np.sum(np.abs(e['output'] - e['base_value'])):.1%}")
    st.page_link("pages/images.py", label="All image methods side by side: Image explanations", icon=":material/image_search:")
