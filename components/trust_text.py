"""The trust checks for text models: randomisation, deletion / insertion, agreement, LIME across seeds.

The image page's checks (:mod:`pages.trust`) applied to word weights. Every number comes from
:mod:`core.trust.sanity_text` (explanations cached on disk by content); this module only draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from components import active_slice, present, state
from components.feedback import degenerate_summary, guarded, transient_progress
from components.figures.sanity import agreement_figure, faithfulness_figure, similarity_figure
from components.figures.text import stability_figure
from components.samples import sample_label
from components.widgets import scenario_test_split
from core.lecture import defaults
from core.trust.degenerate import degenerate_reason, is_degenerate, judged_mean
from core.text.lime_text import LimeParams
from core.trust.sanity_text import (
    COMPARISON_LIME,
    available_methods,
    text_agreement,
    text_explanations,
    text_faithfulness_curves,
    text_randomization_test,
)
from core.text.text_methods import METHOD_TITLES, lime_stability
from core.text.words import WordDocument

DEFAULT_METHODS = ["lime", "occlusion", "gradient_x_embedding"]
# A transformer on the CPU (core/lecture/defaults.py): every tab's check runs each method on every picked document
# at every randomisation stage, so the page opens on the gradient methods (a forward and backward pass or 32 each)
# and two documents; LIME and leave-one-word-out (thousands and hundreds of passes per document) stay one click away.
SLOW_DEFAULT_METHODS = ["gradient_x_embedding", "integrated_gradients"]
SLOW_DEFAULT_DOCS = 2
TOP_WORDS = 5


def top_words(weights: np.ndarray, words: tuple[str, ...], k: int = TOP_WORDS) -> str:
    """The ``k`` words with the largest |weight|, signed, as one line (shown per randomisation stage)."""
    order = np.argsort(-np.abs(weights), kind="stable")[:k]
    return ", ".join(f"{words[j]} ({weights[j]:+.2f})" for j in order)


def render(sel: state.Selection) -> None:
    adapter, _splits, test, test_proba = scenario_test_split(sel)
    names = adapter.class_names
    with present.controls('Documents and methods'):
        offered = active_slice.offered(sel, len(test), "trust_text_picks", 4)  # plus linked / curated ones beyond 500
        if not offered:
            st.info("No test document lies in the active slice.", icon=":material/filter_alt_off:")
            st.stop()
        active_slice.caption(sel, "test", "documents")
        c1, c2 = st.columns([3, 2])
        slow = defaults.slow_text_model(adapter)
        picks = c1.multiselect("Test documents (the numbers are averaged over them)", offered,
                               default=offered[:SLOW_DEFAULT_DOCS if slow else 4], max_selections=8,
                               key="trust_text_picks",
                               format_func=lambda i: sample_label(i, test.y, test_proba, names))
        available = available_methods(adapter)
        methods = c2.multiselect("Methods", available,
                                 default=[m for m in (SLOW_DEFAULT_METHODS if slow else DEFAULT_METHODS) if m in available],
                                 key="trust_text_methods", format_func=METHOD_TITLES.get,
                                 help="LIME here weighs every word (no feature selection, 2,000 samples) so that rank "
                                      "correlations see all words; SHAP (partition) is slower")
        if slow:
            st.caption(f":material/speed: {sel.model} is a transformer on the CPU: the checks open on its gradient "
                       f"methods and {SLOW_DEFAULT_DOCS} documents, and its encoder is randomised block by block. LIME "
                       "and leave-one-word-out cost thousands of forward passes per document and stage: add them "
                       "when you want them.")
    if not picks or not methods:
        st.info("Pick at least one document and one method.", icon=":material/touch_app:")
        st.stop()
    rows = np.asarray(picks, dtype=int)
    texts = [str(test.x[i]) for i in rows]
    targets = test_proba[rows].argmax(axis=1)
    labels = [sample_label(int(i), test.y, test_proba, names) for i in rows]
    with guarded(), transient_progress("Explaining the documents") as progress:
        explanations = text_explanations(adapter, texts, methods, targets, progress=progress)
    for m in methods:  # all-zero word weights can neither pass nor fail: say which, before any verdict
        blank = [is_degenerate(e.weights) for e in explanations[m]]
        first = blank.index(True) if any(blank) else 0
        degenerate_summary(METHOD_TITLES[m], blank, degenerate_reason(explanations[m][first].weights, METHOD_TITLES[m],
                                                                       "word weights"), labels, noun="explanation")

    tab_random, tab_faithful, tab_agree, tab_stable = st.tabs(
        ["Randomisation", "Deletion / insertion", "Agreement", "Stability"])
    with tab_random:
        _randomisation(sel, adapter, texts, methods, labels)
    with tab_faithful:
        steps = st.select_slider("Steps", [5, 10, 20], 10, key="trust_text_steps")
        curves = {}
        with guarded(), transient_progress("Deleting and inserting words") as progress:
            for m in methods:
                curves[m] = text_faithfulness_curves(adapter, texts, targets, [e.weights for e in explanations[m]],
                                                     method=m, steps=int(steps), progress=progress)
        left, right = st.columns(2)
        left.plotly_chart(present.figure(faithfulness_figure(curves, METHOD_TITLES, "deletion")), key="trust_text_deletion")
        right.plotly_chart(present.figure(faithfulness_figure(curves, METHOD_TITLES, "insertion")), key="trust_text_insertion")
        table = pd.DataFrame([{"method": METHOD_TITLES[m], **c.areas()} for m, c in curves.items()])
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={k: st.column_config.NumberColumn(format="%.3f") for k in table.columns
                                    if k != "method"})
        for m, c in curves.items():
            st.markdown(f"- **{METHOD_TITLES[m]}**: {c.verdict()}.")
        st.caption("Deleting a word removes every occurrence of it (the bag of words LIME perturbs). Insertion starts "
                   "from the empty document, whose prediction is the model's prior: when that already favours the "
                   "explained class, insertion curves start high and say little.")
    with tab_agree:
        if len(methods) < 2:
            st.info("Pick two or more methods to compare them.", icon=":material/compare:")
        else:
            order, rho, top = text_agreement(explanations)
            which = st.radio("Measure", ["Spearman", "top-10 words overlap"], horizontal=True,
                             key="trust_text_agreement")
            matrix = rho if which == "Spearman" else top
            st.plotly_chart(present.figure(agreement_figure(order, judged_mean(matrix, axis=2), METHOD_TITLES, which, "|word weights|",
                                             "documents")), key="trust_text_agreement_matrix")
            shown = st.selectbox("Top words of one document", list(range(len(rows))), key="trust_text_agree_doc",
                                 format_func=lambda i: labels[i])
            words = explanations[methods[0]][int(shown)].doc.words
            st.dataframe(pd.DataFrame({"method": [METHOD_TITLES[m] for m in methods],
                                       "top words": [top_words(explanations[m][int(shown)].weights, words)
                                                     for m in methods]}), hide_index=True, width="stretch")
    with tab_stable:
        _stability(adapter, texts, labels)


def _randomisation(sel: state.Selection, adapter, texts: list[str], methods: list[str], labels: list[str]) -> None:
    if adapter.torch_module() is None:
        torch_models = [m.name for m in sel.spec.models if m.framework in ("torch", "transformer")]
        pick = (f"pick the {' or '.join(torch_models)} model in the sidebar." if torch_models else
                "this scenario has none (models opened with their weights, like TorchScript, are torch models).")
        st.info("The randomisation test re-initialises the model's weights layer by layer, which needs a torch model: "
                + pick, icon=":material/info:")
        return
    r1, r2, r3 = st.columns(3)
    mode = r1.radio("Randomise", ["cascading", "independent"], horizontal=True, key="trust_text_mode",
                    help="cascading: from the output layer down, cumulatively; independent: one layer at a time")
    metric = r2.radio("Similarity", ["spearman", "top_k"], horizontal=True, key="trust_text_metric",
                      format_func={"spearman": "Spearman", "top_k": "top-10 words"}.get)
    shown = r3.selectbox("Top words for document", list(range(len(texts))), key="trust_text_strip_doc",
                         format_func=lambda i: labels[i])
    with guarded(), transient_progress("Randomising layers") as progress:
        randomized = text_randomization_test(adapter, texts, methods, mode=mode, progress=progress)
    st.plotly_chart(present.figure(similarity_figure(randomized, METHOD_TITLES, metric)), key="trust_text_similarity")
    for m, result in randomized.items():
        st.markdown(f"- **{METHOD_TITLES[m]}** {result.verdict()}.")
    words = WordDocument.parse(texts[int(shown)]).words
    strip = pd.DataFrame({"stage": list(next(iter(randomized.values())).stages)})
    for m, result in randomized.items():
        strip[METHOD_TITLES[m]] = [top_words(result.heatmaps[s, int(shown)], words) for s in range(len(strip))]
    st.dataframe(strip, hide_index=True, width="stretch")
    st.caption(f"Each row: the {TOP_WORDS} words with the largest |weight| once the model's layers up to that stage "
               "are re-initialised (the explained class stays the original model's prediction).")


def _stability(adapter, texts: list[str], labels: list[str]) -> None:
    s1, s2 = st.columns(2)
    shown = s1.selectbox("Document", list(range(len(texts))), key="trust_text_stability_doc",
                         format_func=lambda i: labels[i])
    run = s2.toggle("Run LIME with 5 seeds", False, key="trust_text_stability_run",
                    help="LIME samples perturbations at random: a word whose weight flips with the seed is noise")
    if not run:
        st.caption("Turn on to see how much LIME's top words move across random seeds (5 runs, 10 words each).")
        return
    params = LimeParams(num_samples=COMPARISON_LIME.num_samples, num_features=10)
    with guarded(), transient_progress("LIME across seeds") as progress:
        stability = lime_stability(adapter, texts[int(shown)], params, progress=progress)
    st.plotly_chart(present.figure(stability_figure(stability)), key="trust_text_stability_figure")
    st.markdown(f"Mean Jaccard similarity of the selected word sets across seeds: **{stability.jaccard:.2f}** "
                "(1 = the same words every time).")
