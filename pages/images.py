"""Image explanations: what did the model look at? Occlusion and gradient maps side by side."""

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import streamlit as st

from components import active_slice, cached, precomputed, present, state
from components.widgets import require_kind, scenario_test_split
from components.attribution_form import method_params
from components.feedback import degenerate_summary, guarded, transient_progress
from components.figures.attributions import attribution_grid, occlusion_probability_figure
from components.image_export import grid_png, maps_npz
from components.samples import sample_label
from core.lecture import defaults
from core import browse
from core.attribution import get_method, method_names, resolve_targets, supported_methods
from core.upload.image_upload import load_image

MAX_IMAGES = 8

sel = state.current()
spec = sel.spec
st.title("Image explanations")
st.caption("Which pixels made the model decide? Occlusion hides a patch and watches the class probability; "
           "gradient methods ask how the class score changes with each pixel. Seen side by side, as in the lecture, "
           "the maps agree on some things and not on others, and plain gradients are noisy.")
require_kind(sel, "image", ":material/image:")
adapter, splits, test, test_proba = scenario_test_split(sel)
class_names = adapter.class_names
image_shape = tuple(int(s) for s in np.asarray(test.x).shape[1:])

present.example_bar("images", sel)

# -- the images ----------------------------------------------------------------------------------
with present.controls('Images, methods and settings'):
    source = st.radio("Images", ["Test images", "Upload an image"], horizontal=True, key="img_source")
    if source == "Test images":
        c1, c2, c3 = st.columns([1.6, 1.4, 1.4])
        classes = c1.multiselect("True class", list(range(len(class_names))), key="img_classes",
                                 format_func=lambda i: class_names[i], placeholder="all classes")
        correctness = c2.radio("Predictions", browse.CORRECTNESS, horizontal=True, key="img_correctness")
        sort = c3.selectbox("Order", browse.SORTS, key="img_sort",
                            help="'confidence: high first' with 'incorrect' lists the most confident mistakes first")
        matching = active_slice.keep(sel, browse.select_samples(test.y, test_proba, classes, correctness, sort))
        active_slice.caption(sel, "test", "images")
        shown = matching[:500]
        # a linked or curated image beyond the first 500 matches stays on offer
        linked = set(st.session_state.get("img_picks", [])) & set(matching[500:])
        shown += [i for i in matching[500:] if i in linked]
        if not shown:
            st.info("No test image matches these filters" + (" in the active slice." if active_slice.active() else "."), icon=":material/filter_alt_off:")
            st.stop()
        # Keep only picks that the current filters still offer (a widget must not hold values outside its options).
        if "img_picks" in st.session_state:
            kept = [i for i in st.session_state["img_picks"] if i in shown][:MAX_IMAGES]
            st.session_state["img_picks"] = kept or shown[:defaults.IMAGE_PICKS]
        picks = st.multiselect(f"Test images ({len(shown)} match; up to {MAX_IMAGES})", shown,
                               default=shown[:defaults.IMAGE_PICKS],
                               max_selections=MAX_IMAGES, key="img_picks",
                               format_func=lambda i: sample_label(i, test.y, test_proba, class_names))
        if not picks:
            st.info("Pick at least one image.", icon=":material/touch_app:")
            st.stop()
        rows = np.asarray(picks, dtype=int)
        images = np.asarray(test.x[rows], dtype=np.float32)
        labels_true = np.asarray(test.y[rows])
        proba = test_proba[rows]
        row_labels = [sample_label(int(i), test.y, test_proba, class_names) for i in rows]
    else:
        u1, u2 = st.columns([3, 1])
        upload = u1.file_uploader("An image (PNG, JPEG, BMP, GIF)", type=["png", "jpg", "jpeg", "bmp", "gif"],
                                  key="img_upload", help=f"resized to the model's {image_shape[1]}x{image_shape[2]} input")
        invert = u2.radio("Invert grey values", ["auto", "yes", "no"], key="img_invert",
                          help="the digit models expect light strokes on black; 'auto' inverts dark-on-white images")
        if upload is None:
            st.info("Upload an image to explain, e.g. a photo of a hand-written digit.", icon=":material/upload:")
            st.stop()
        with guarded():
            decoded = load_image(upload.getvalue(), image_shape, {"auto": None, "yes": True, "no": False}[invert])
        images = decoded.x[None]
        rows, labels_true = None, None
        proba = adapter.predict_proba(images)
        predicted = int(proba[0].argmax())
        row_labels = [f"upload → {class_names[predicted]} ({proba[0, predicted]:.0%})"]
        u1.caption(f"{upload.name}: {decoded.original_size[0]}x{decoded.original_size[1]} px, shown to the model at "
                   f"{image_shape[1]}x{image_shape[2]}{', inverted' if decoded.inverted else ''}.")

    # -- target and methods ------------------------------------------------------------------------------
    t1, t2 = st.columns([2, 1])
    target_options = ["predicted class", "true class", "another class"] if labels_true is not None else \
        ["predicted class", "another class"]
    target_choice = t1.radio("Explain the score of the", target_options, horizontal=True, key="img_target")
    if target_choice == "another class":
        target_class = t2.selectbox("Class", list(range(len(class_names))), key="img_target_class",
                                    format_func=lambda i: class_names[i])
        target_spec = int(target_class)
    else:
        target_spec = "true" if target_choice == "true class" else "predicted"
    with guarded():
        targets = resolve_targets(adapter, images, target_spec, y=labels_true)

    support = supported_methods(adapter)
    available = [m for m in method_names() if support[m] is None]
    default = [m for m in defaults.IMAGE_METHODS if m in available] or available[:1]
    chosen = st.multiselect("Methods (columns)", available, default=default, key="img_methods",
                            format_func=lambda m: get_method(m).title)
    unavailable = {m: reason for m, reason in support.items() if reason}
    if unavailable:
        st.caption("Not available for this model: " + "; ".join(
            f"**{get_method(m).title}**: {reason}" for m, reason in unavailable.items()))
    if not chosen:
        st.info("Pick at least one method.", icon=":material/touch_app:")
        st.stop()

    layers, default_layer, pre_activation, token_notes = ([], None, set(), {})
    if any(m in ("grad_cam", "guided_grad_cam") for m in chosen):
        layers, default_layer, pre_activation, token_notes = cached.spatial_layers(sel.scenario, sel.model, sel.variant,
                                                                                  image_shape)
    with st.expander("Method settings", icon=":material/tune:"):
        params = {}
        for method in chosen:
            st.markdown(f"**{get_method(method).title}** · {get_method(method).description}")
            with guarded():
                params[method] = method_params(method, image_shape, layers, default_layer, st, pre_activation, token_notes)
        batch_size = st.select_slider("Batch size (rows per forward/backward pass)", [16, 32, 64, 128, 256, 512, 1024],
                                      defaults.IMAGE_BATCH, key="img_batch",
                                      help="images x samples / steps / patch positions per pass; halved automatically on "
                                           "out-of-memory. Changes speed and memory, never the result.")

    d1, d2, d3 = st.columns(3)
    opacity = d1.slider("Map opacity", 0.0, 1.0, 0.7, 0.05, key="img_opacity", help="0 shows the image, 1 the map alone")
    percentile = d2.slider("Clip colours at percentile", 90.0, 100.0, 99.0, 0.5, key="img_clip",
                           help="per map, of |value|: a few extreme pixels no longer wash out the rest")
    overlay = d3.toggle("Overlay on the image", True, key="img_overlay")

# -- compute and show ---------------------------------------------------------------------------------
methods_key = tuple((m, json.dumps(asdict(params[m]), sort_keys=True)) for m in chosen)
with guarded(), transient_progress("Computing attributions") as progress:
    results, read = precomputed.image_attributions(sel, test, rows, images, tuple(int(t) for t in targets),
                                                   methods_key, int(batch_size), _progress=progress)
titles = {m: get_method(m).title for m in chosen}
for m in chosen:  # a blank map is said, never shown as a silent flat tint
    blank = results[m].degenerate
    first = int(np.argmax(blank)) if blank.any() else 0
    degenerate_summary(titles[m], blank, results[m].degenerate_reason(first, titles[m]), row_labels, verdicts=False)

st.plotly_chart(present.figure(attribution_grid(images, results, titles, row_labels, proba, class_names, opacity=opacity,
                                 percentile=percentile, overlay=overlay)), key="img_grid")
precomputed.caption(read, titles, len(images))
signed = [titles[m] for m in chosen if results[m].signed]
st.caption(
    f"Red pushes the score of the explained class up, blue pushes it down ({', '.join(signed) or 'none'}); "
    "magnitude-only maps use the black-to-yellow scale. Colours are clipped per map at the chosen percentile; "
    "hover a pixel for its value. The bars: explained class in red, predicted class in blue."
)

if "integrated_gradients" in results:
    ig = results["integrated_gradients"]
    e = ig.extras
    st.markdown("**Integrated Gradients completeness**: the attributions should add up to f(image) - f(baseline).")
    st.dataframe(pd.DataFrame({
        "image": row_labels,
        "sum of attributions": e["attribution_sum"],
        "f(image) - f(baseline)": e["output_delta"],
        "gap": e["completeness_gap"],
        "gap %": 100 * np.abs(e["completeness_gap"]) / np.maximum(np.abs(e["output_delta"]), 1e-12),
    }), hide_index=True, width="stretch",
        column_config={"gap %": st.column_config.NumberColumn(format="%.2f %%")})
    st.caption(f"{ig.params['steps']} steps, {ig.params['rule']} quadrature, {ig.params['baseline']} baseline; more "
               "steps shrink the gap.")

if "expected_gradients" in results:
    eg = results["expected_gradients"].extras
    st.markdown("**Expected Gradients (SHAP) efficiency**: the values should add up, in expectation, to f(image) minus "
                "the base value (the mean output over the background images).")
    st.dataframe(pd.DataFrame({
        "image": row_labels,
        "base value": eg["base_value"],
        "f(image)": eg["output"],
        "sum of values": eg["attribution_sum"],
        "gap": eg["efficiency_gap"],
    }), hide_index=True, width="stretch")
    st.caption("The gap shrinks as the number of samples grows (it is a Monte Carlo estimate).")

if "occlusion" in results:
    occ = results["occlusion"]
    st.markdown(f"**Occlusion**: probability of the explained class with a {occ.params['window']} px patch "
                f"({occ.params['fill']} fill) at each position, stride {occ.params['stride']}. Dark = the patch hid "
                "something the model needed.")
    st.plotly_chart(present.figure(occlusion_probability_figure(occ, row_labels, class_names)), key="img_occlusion")

meta = {"scenario": sel.scenario, "model": sel.model, "variant": sel.variant, "targets": [int(t) for t in targets],
        "source": "test" if rows is not None else "upload"}
e1, e2 = st.columns(2)
e1.download_button("Download the grid (PNG)", grid_png(images, results, titles, row_labels, opacity=opacity,
                                                        percentile=percentile, overlay=overlay),
                   file_name=f"trustlens-{sel.scenario}-{sel.model}-attributions.png", mime="image/png",
                   icon=":material/image:", key="img_png")
e2.download_button("Download the raw maps (.npz)", maps_npz(images, results, rows=rows, proba=proba, meta=meta),
                   file_name=f"trustlens-{sel.scenario}-{sel.model}-attributions.npz",
                   mime="application/octet-stream", icon=":material/download:", key="img_npz")
