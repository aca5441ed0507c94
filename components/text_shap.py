"""The Shapley page's text section: SHAP word values next to LIME's for the same document."""

from __future__ import annotations

import numpy as np
import streamlit as st

from components import active_slice, cached
from components.feedback import guarded, transient_progress
from components.text_view import show_explanation
from components.samples import sample_label
from components.state import Selection
from core.lecture import defaults
from core.text.lime_text import LimeParams
from core.text.shap_text import TextShapParams, explain_text_shap, rank_agreement
from core.text.text_methods import explain_text

SHOWN_WORDS = 10


def text_shap_section(sel: Selection) -> None:
    spec = sel.spec
    st.header(f"SHAP on the words of {spec.title} / {sel.model}")
    st.caption("shap's partition explainer masks groups of neighbouring words with '...' and shares P(class) "
               "among them (Owen values over a hierarchy of the text); a word's value is the sum over its "
               "occurrences. LIME on the same document is beside it: do the two methods point at the same words?")
    with guarded():
        splits = cached.scenario_data(sel.scenario, sel.variant)
        loaded = cached.trained_model(sel.scenario, sel.model, sel.variant)
    test = splits["test"]
    proba = cached.predictions(sel.scenario, sel.model, sel.variant, "test")
    c1, c2 = st.columns([3, 1])
    offered = active_slice.keep(sel, range(len(test)))
    if not offered:
        st.info("No test document lies in the active slice.", icon=":material/filter_alt_off:")
        return
    if st.session_state.get("shap_text_doc") not in set(offered):
        st.session_state.pop("shap_text_doc", None)
    index = c1.selectbox("Test document", offered, key="shap_text_doc",
                         format_func=lambda i: sample_label(i, test.y, proba, spec.class_names))
    slow = defaults.slow_text_model(loaded.adapter)
    max_evals = c2.select_slider("SHAP evaluations", [300, 1000, 3000, 10000],
                                 defaults.SLOW_TEXT_SHAP_EVALS if slow else 1000, key="shap_text_evals",
                                 help="more evaluations split the text into finer groups (slower)")
    lime = LimeParams(feature_selection="none", **({"num_samples": defaults.SLOW_TEXT_LIME_SAMPLES} if slow else {}))
    if slow:
        st.caption(f":material/speed: {sel.model} is a transformer on the CPU: SHAP opens on "
                   f"{defaults.SLOW_TEXT_SHAP_EVALS} evaluations and LIME on {lime.num_samples:,} samples (each one a "
                   "forward pass of up to 128 tokens); raise the evaluations for finer groups.")
    text = str(test.x[index])
    with guarded(), transient_progress("SHAP (partition)") as progress:
        shap_expl = explain_text_shap(loaded.adapter, text, TextShapParams(max_evals=int(max_evals)), "predicted", progress)
    with guarded(), transient_progress("LIME") as progress:
        lime_expl = explain_text(loaded.adapter, text, "lime", lime, shap_expl.target, progress)
    agreement = rank_agreement(lime_expl, shap_expl, k=SHOWN_WORDS)
    m = st.columns(5)
    m[0].metric(f"P({shap_expl.target_name})", f"{shap_expl.proba[shap_expl.target]:.3f}")
    m[1].metric("Base value", f"{shap_expl.intercept:.3f}", help="P with every word masked: where SHAP starts")
    m[2].metric("Additivity error", f"{shap_expl.params['additivity_error']:.1e}",
                help="|base value + sum of SHAP values - model output|")
    rho = agreement["spearman"]
    m[3].metric("LIME vs SHAP: rank correlation", "n/a" if np.isnan(rho) else f"{rho:.2f}",
                help="Spearman correlation of all the words' weights (1 = same order; n/a when one side's weights "
                     "are all equal: they rank nothing)")
    m[4].metric(f"Top-{agreement['k']} words shared", f"{agreement['top_k_overlap']:.0%}",
                help=f"of the {agreement['k']} words with the largest |weight|; "
                     f"{agreement['sign_agreement']:.0%} of the shared ones have the same sign")
    left, right = st.columns(2)
    for col, expl, title, key in ((left, shap_expl, "SHAP (partition)", "shap_text"),
                                  (right, lime_expl, f"LIME (all words, {lime.num_samples:,} samples)", "lime_text")):
        with col:
            st.markdown(f"#### {title}")
            show_explanation(expl, key, SHOWN_WORDS, shade=SHOWN_WORDS)
