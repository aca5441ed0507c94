"""Trust checks: can the explanations be trusted? Randomisation, faithfulness, agreement, stability.

Images here; text models are drawn by :mod:`components.trust_text`."""

import numpy as np
import pandas as pd
import streamlit as st

from components import active_slice, cached, present, state, trust_text
from core.lecture import defaults
from core.upload import byom
from components.feedback import degenerate_summary, guarded, transient_progress
from components.figures.sanity import (
    agreement_figure,
    faithfulness_figure,
    pair_strip,
    randomization_strip,
    similarity_figure,
)
from components.samples import sample_label
from components.widgets import require_kind, scenario_test_split
from core.attribution import explain_images, get_method, method_names, supported_methods
from core.trust.degenerate import degenerate_reason, degenerate_rows, judged_mean
from core.trust.sanity import (
    SEEDED,
    agreement,
    data_randomization_test,
    faithfulness_curves,
    max_sensitivity,
    randomization_test,
    seed_stability,
)


sel = state.current()
st.title("Trust checks")
st.caption("\"The method outputs a noisy image, you see something reasonable: should you be satisfied?\" A map that "
           "stays the same when the model's weights are replaced by random ones is not explaining the model; a map "
           "whose top pixels do not move the prediction when deleted is not faithful to it; two methods that "
           "disagree cannot both be right.")
present.example_bar("trust", sel)
if sel.spec.kind == "text":
    trust_text.render(sel)
    st.stop()
require_kind(sel, "image", ":material/image:")
adapter, splits, test, test_proba = scenario_test_split(sel)
context = cached.image_context(sel.scenario, sel.variant)
names = adapter.class_names

offered = active_slice.offered(sel, len(test), "trust_picks", defaults.IMAGE_PICKS)  # plus linked / curated images beyond the first 500
if not offered:
    st.info("No test image lies in the active slice.", icon=":material/filter_alt_off:")
    st.stop()
with present.controls("Images and methods"):
    c1, c2 = st.columns([3, 2])
    picks = c1.multiselect("Test images (the numbers are averaged over them)", offered,
                           default=offered[:defaults.IMAGE_PICKS], max_selections=8, key="trust_picks",
                           format_func=lambda i: sample_label(i, test.y, test_proba, names))
    active_slice.caption(sel, "test", "images")
    support = supported_methods(adapter)
    available = [m for m in method_names() if support[m] is None]
    methods = c2.multiselect("Methods", available,
                             default=[m for m in defaults.TRUST_METHODS if m in available] or available[:2],
                             key="trust_methods", format_func=lambda m: get_method(m).title)
if not picks or not methods:
    st.info("Pick at least one image and one method.", icon=":material/touch_app:")
    st.stop()
rows = np.asarray(picks, dtype=int)
x = np.asarray(test.x[rows], dtype=np.float32)
target = test_proba[rows].argmax(axis=1)
titles = {m: get_method(m).title for m in methods}
labels = [sample_label(int(i), test.y, test_proba, names) for i in rows]

with guarded(), transient_progress("Explaining") as progress:
    heatmaps = {m: explain_images(adapter, x, target, m, context=context, progress=progress).heatmap() for m in methods}
for m in methods:  # a blank map can neither pass nor fail: say which, before any verdict
    blank = degenerate_rows(heatmaps[m])
    first = int(np.argmax(blank)) if blank.any() else 0
    degenerate_summary(titles[m], blank, degenerate_reason(heatmaps[m][first], titles[m]), labels)

tab_random, tab_faithful, tab_agree, tab_stable = st.tabs(
    ["Randomisation", "Deletion / insertion", "Agreement", "Stability"])

# -- model parameter randomisation ------------------------------------------------------------------
with tab_random:
    if adapter.torch_module() is None:
        st.info("The randomisation test re-initialises the model's weights layer by layer, which needs a torch model: "
                "pick the CNN in the sidebar.", icon=":material/info:")
    else:
        r1, r2, r3 = st.columns(3)
        mode = r1.radio("Randomise", ["cascading", "independent"], horizontal=True, key="trust_mode",
                        help="cascading: from the output layer down, cumulatively; independent: one layer at a time")
        metric = r2.radio("Similarity", ["spearman", "ssim", "top_k"], horizontal=True, key="trust_metric",
                          format_func={"spearman": "Spearman", "ssim": "SSIM", "top_k": "top-10 %"}.get)
        shown = r3.selectbox("Strip for image", list(range(len(rows))), key="trust_strip_image",
                             format_func=lambda i: labels[i])
        with guarded(), transient_progress("Randomising layers") as progress:
            randomized = randomization_test(adapter, x, target, {m: None for m in methods}, mode=mode, context=context,
                                            progress=progress)
        st.plotly_chart(present.figure(similarity_figure(randomized, titles, metric)), key="trust_similarity")
        for method, result in randomized.items():
            st.markdown(f"- **{titles[method]}** {result.verdict()}.")
        st.plotly_chart(present.figure(randomization_strip(randomized, titles, int(shown))), key="trust_strip")
        st.caption("Each row: the method's |map| for the model, then with more and more of its layers re-initialised "
                   "(targets stay the original model's prediction). Hover a map for its rank correlation with the first.")
        st.subheader("Data randomisation")
        if byom.is_upload(sel.scenario):
            st.info("The data randomisation test retrains the model on shuffled labels with the scenario's training "
                    "recipe; an uploaded model comes without one. Train it on shuffled labels yourself and upload it as "
                    "a second model to compare.", icon=":material/info:")
        elif st.toggle("Compare with the same model trained on shuffled labels", False, key="trust_data_random",
                     help="the same recipe trained on the train split with its labels permuted: it learns nothing "
                          "about the classes, so a faithful explanation of it should look different"):
            with guarded():
                shuffled = cached.random_label_model(sel.scenario, sel.model, sel.variant)
            st.caption(f"Trained on shuffled labels: test accuracy {shuffled.metrics['test_accuracy']:.1%} "
                       f"(chance {1 / len(names):.0%}); the real model: "
                       f"{float(np.mean(test_proba.argmax(axis=1) == test.y)):.1%}.")
            with guarded(), transient_progress("Explaining the shuffled-label model") as progress:
                data_random = data_randomization_test(adapter, shuffled.adapter, x, target, {m: None for m in methods},
                                                      context=context, progress=progress)
            st.plotly_chart(present.figure(pair_strip(data_random, titles, int(shown))), key="trust_data_strip")
            for method, result in data_random.items():
                st.markdown(f"- **{titles[method]}** {result.verdict()}.")

# -- faithfulness -----------------------------------------------------------------------------------
with tab_faithful:
    f1, f2 = st.columns(2)
    steps = f1.select_slider("Steps", [10, 20, 50, 100], 20, key="trust_steps")
    fill = f2.selectbox("Deleted pixels become", ["zero", "mean", "blur"], key="trust_fill",
                        format_func={"zero": "black", "mean": "the dataset mean", "blur": "the blurred image"}.get)
    curves = {}
    with guarded(), transient_progress("Deleting and inserting pixels") as progress:
        for method in methods:
            curves[method] = faithfulness_curves(adapter, x, target, heatmaps[method], method=method, steps=int(steps),
                                                 fill=fill, context=context, progress=progress)
    left, right = st.columns(2)
    left.plotly_chart(present.figure(faithfulness_figure(curves, titles, "deletion")), key="trust_deletion")
    right.plotly_chart(present.figure(faithfulness_figure(curves, titles, "insertion")), key="trust_insertion")
    table = pd.DataFrame([{"method": titles[m], **{k: v for k, v in c.areas().items()}} for m, c in curves.items()])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={k: st.column_config.NumberColumn(format="%.3f") for k in table.columns if k != "method"})
    for method, c in curves.items():
        st.markdown(f"- **{titles[method]}**: {c.verdict()}.")

# -- agreement --------------------------------------------------------------------------------------
with tab_agree:
    if len(methods) < 2:
        st.info("Pick two or more methods to compare them.", icon=":material/compare:")
    else:
        order, rho, top = agreement(heatmaps)
        which = st.radio("Measure", ["Spearman", "top-10 % overlap"], horizontal=True, key="trust_agreement")
        matrix = rho if which == "Spearman" else top
        st.plotly_chart(present.figure(agreement_figure(order, judged_mean(matrix, axis=2), titles, which)),
                        key="trust_agreement_matrix")
        st.caption("Each cell compares two methods' |maps| pixel by pixel (rank correlation, or the share of one "
                   "method's top 10 % pixels that are also the other's), averaged over the chosen images; a blank "
                   "map is left out (an empty cell: no image left to compare).")

# -- stability --------------------------------------------------------------------------------------
with tab_stable:
    s1, s2 = st.columns(2)
    radius = s1.select_slider("Input noise (max per pixel)", [0.005, 0.01, 0.02, 0.05, 0.1], 0.02, key="trust_radius")
    run = s2.toggle("Measure stability", False, key="trust_stability_run",
                    help="explains 8 noisy copies of every image with every method (and 5 seeds of the sampling methods)")
    if run:
        out = []
        with guarded(), transient_progress("Explaining noisy copies") as progress:
            for method in methods:
                row = {"method": titles[method],
                       "max-sensitivity": float(judged_mean(max_sensitivity(adapter, x, target, method,
                                                                             radius=float(radius), context=context)))}
                if method in SEEDED:
                    row["agreement across 5 seeds"] = float(judged_mean(seed_stability(adapter, x, target, method,
                                                                                       context=context)))
                out.append(row)
        st.dataframe(pd.DataFrame(out), hide_index=True, width="stretch")
        if any(np.isnan(v) for row in out for v in row.values() if isinstance(v, float)):
            st.caption("An empty cell: cannot judge, every chosen image's map is blank for that method.")
        st.caption("Max-sensitivity: the largest change of a map (relative to its size) over 8 copies of the image with "
                   "uniform noise of the chosen size; small is stable. Seeds: mean rank correlation of the maps "
                   "computed with 5 different random seeds.")
    else:
        st.caption("Turn on to measure how much each map moves under small input noise and across random seeds.")
