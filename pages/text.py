"""Text explanations: which words made the model decide, and do two models decide for the same reasons?"""

from dataclasses import replace

import streamlit as st

from components import active_slice, cached, precomputed, present, state
from components.widgets import require_kind, scenario_test_split
from components.feedback import guarded, transient_progress
from components.params_form import params_form
from components.figures.text import deletion_figure, probabilities_figure, stability_figure
from components.text_view import show_explanation
from components.samples import sample_label
from core.lecture import defaults
from core import browse
from core.text.lime_text import LimeParams
from core.text.text_methods import (
    METHOD_TITLES,
    deletion_curves,
    explain_many,
    explain_text,
    lime_stability,
    submodular_pick,
    summarize,
    supported_methods,
)

EXAMPLE = ("From: reader@example.edu (A. Reader)\nSubject: Re: where does morality come from?\n"
           "NNTP-Posting-Host: example.edu\n\nI do not see why morality needs a god. People were kind to each "
           "other long before any church told them to be, and reason explains it well enough.")

sel = state.current()
spec = sel.spec
st.title("Text explanations")
st.caption("LIME removes words at random thousands of times and fits a weighted linear model to how the "
           "prediction changes: each word's weight is its local effect on the probability of the explained class. "
           "Two models can be equally accurate for very different reasons.")
require_kind(sel, "text", ":material/article:")
adapter, splits, test, test_proba = scenario_test_split(sel)
slow = defaults.slow_text_model(adapter)

present.example_bar("text", sel)

# -- the document -----------------------------------------------------------------------------------
with present.controls('Document and LIME settings'):
    source = st.radio("Document", ["A test document", "Your own text"], horizontal=True, key="text_source")
    if source == "A test document":
        c1, c2, c3 = st.columns([1.6, 1.4, 1.4])
        classes = c1.multiselect("True class", list(range(len(spec.class_names))), key="text_classes",
                                 format_func=lambda i: spec.class_names[i], placeholder="all classes")
        correctness = c2.radio("Predictions", browse.CORRECTNESS, horizontal=True, key="text_correctness")
        sort = c3.selectbox("Order", browse.SORTS, key="text_sort",
                            help="'confidence: high first' with 'incorrect' lists the most confident mistakes first")
        shown = active_slice.keep(sel, browse.select_samples(test.y, test_proba, classes, correctness, sort))
        active_slice.caption(sel, "test", "documents")
        if len(shown) == 0:
            st.info("No test document matches these filters" + (" in the active slice." if active_slice.active() else "."), icon=":material/filter_alt_off:")
            st.stop()
        subjects = test.display["subject"] if test.display is not None else None
        index = st.selectbox(
            f"Test document ({len(shown)} match)", [int(i) for i in shown], key="text_doc",
            format_func=lambda i: sample_label(i, test.y, test_proba, spec.class_names)
            + (f" · {subjects.iloc[i][:70]}" if subjects is not None else ""),
        )
        text = str(test.x[index])
    else:
        text = st.text_area("Paste a text (headers optional)", EXAMPLE, height=180, max_chars=50_000, key="text_custom")
        if not text.strip():
            st.info("Type or paste some text to explain.", icon=":material/edit_note:")
            st.stop()

    with st.expander("LIME settings", icon=":material/tune:"):
        *fields, s5 = st.columns(5)
        params = params_form(LimeParams, "lime", defaults.text_form_context(adapter), st, columns=fields)
        target_choice = s5.selectbox("Explain the probability of", ["predicted", *range(len(spec.class_names))],
                                     key="lime_target",
                                     format_func=lambda t: "the predicted class" if t == "predicted" else spec.class_names[t])


doc_index = index if source == "A test document" else None  # a test document: read from a precompute if any


def lime_for(model_adapter, label: str, at: int | None = None):
    with guarded(), transient_progress(f"LIME on {label}") as progress:
        return precomputed.text_explanation(model_adapter, test, at, text, "lime", params, target_choice, progress)


def reliance_caption(explanation, k: int = 6) -> str:
    s = summarize(explanation, k)
    top = ", ".join(f"**{w}**" for w in s["top"])
    if explanation.doc.header_words() == set():
        return f"Relies most on: {top}."
    if s["from_header"]:
        header = ", ".join(f"**{w}**" for w in s["from_header"])
        return (f"Relies most on: {top}. :orange[{len(s['from_header'])} of its top {len(s['top'])} words appear only "
                f"in the Usenet header ({header}): they say where a post came from, not what it argues.]")
    return f"Relies most on: {top}. None of its top {len(s['top'])} words comes from the Usenet header."


# -- 1. the selected model ----------------------------------------------------------------------------
main, main_read = lime_for(adapter, sel.model, doc_index)
variant = f" [{sel.variant}]" if sel.variant else ""
st.subheader(f"{sel.model}{variant}: predicts {main.class_names[main.predicted]} "
             f"({main.proba[main.predicted]:.1%}); explaining P({main.target_name})")
left, right = st.columns([2.2, 1])
with left:
    show_explanation(main, "lime_main", params.num_features)
with right:
    st.plotly_chart(present.figure(probabilities_figure(main.proba, main.class_names)), key="text_proba")
    st.metric("Local fit (weighted R²)", f"{main.score:.3f}",
              help="how well the linear surrogate matches the model on the perturbed samples; low means the "
                   "weights describe the model poorly here")
    st.metric("Intercept", f"{main.intercept:.3f}", help="the surrogate's prediction with every word removed")
    st.caption(reliance_caption(main))
    route = "one sparse matrix, one classifier call" if main.path == "sklearn-sparse" else "texts in batches"
    st.caption(f"{params.num_samples:,} samples ({route}), seed {params.seed}.")
    if slow:
        st.caption(f":material/speed: {sel.model} is a transformer on the CPU: it reads the first "
                   f"{adapter.info.extra.get('max_tokens')} tokens of a text, and LIME opens on "
                   f"{defaults.SLOW_TEXT_LIME_SAMPLES:,} samples instead of lime's 5,000 so that it answers in seconds. "
                   "Raise the samples in the LIME settings for less sampling noise.")
    precomputed.caption(main_read, what="LIME")

# -- 2. which model do you trust? -------------------------------------------------------------------
st.divider()
st.subheader("Which model do you trust? Two models, the same document")
st.caption("The lecture's demonstration: a random forest trained on raw posts and a logistic regression trained "
           "on posts with the headers removed can both be right, for very different reasons.")
combos = [(m, v) for v in (spec.variants or (None,)) for m in spec.model_names]
default_b = ("logreg", "no-headers") if (sel.model, sel.variant) != ("logreg", "no-headers") else ("forest", "headers")
if default_b not in combos:
    default_b = next((c for c in combos if c != (sel.model, sel.variant)), combos[0])  # an upload has one model
other = st.selectbox("Compare with", combos, index=combos.index(default_b), key="text_compare",
                     format_func=lambda c: f"{c[0]}" + (f" [{c[1]}]" if c[1] else ""))
with guarded():
    other_model = cached.trained_model(sel.scenario, other[0], other[1])
other_expl, _ = lime_for(other_model.adapter, other[0])
col_a, col_b = st.columns(2)
for col, expl, name, key in ((col_a, main, f"{sel.model}{variant}", "cmp_a"),
                             (col_b, other_expl, f"{other[0]}" + (f" [{other[1]}]" if other[1] else ""), "cmp_b")):
    with col:
        correct = ""
        if source == "A test document":
            correct = " ✓ correct" if expl.predicted == int(test.y[index]) else " ✗ wrong"
        st.markdown(f"#### {name}: {expl.class_names[expl.predicted]} ({expl.proba[expl.predicted]:.1%}){correct}")
        st.caption(reliance_caption(expl))
        show_explanation(expl, key, min(params.num_features, 10))

# -- 3. other methods ------------------------------------------------------------------------------
st.divider()
st.subheader("Same document, other explanation methods")
support = supported_methods(adapter)
available = [m for m, why in support.items() if not why]
for method, why in support.items():
    if why:
        st.caption(f"{METHOD_TITLES[method]} is not available for {sel.model}: {why}")
# SHAP costs about a thousand model calls; on a slow model so does leave-one-word-out (one call per word): a click away.
costly = {"shap_partition", "occlusion"} if slow else {"shap_partition"}
chosen = st.multiselect("Methods", available, default=[m for m in available if m not in costly],
                        key="text_methods", format_func=lambda m: METHOD_TITLES[m],
                        help="SHAP (partition) costs about a thousand model calls (and, on a transformer on the CPU, leave-one-word-out "
                             "one per word): add them when you want them; "
                             "the Shapley values page compares it with LIME in detail")
explanations = {"lime": main}
methods_read = {}
for method in chosen:
    if method not in explanations:
        with guarded(), transient_progress(METHOD_TITLES[method]) as progress:
            explanations[method], hit = precomputed.text_explanation(adapter, test, doc_index, text, method, params,
                                                                     main.target, progress)
        if hit is not None:
            methods_read[method] = (hit, 1)
precomputed.caption(methods_read, METHOD_TITLES)
if chosen:
    columns = st.columns(len(chosen))
    for col, method in zip(columns, chosen):
        with col:
            st.markdown(f"#### {METHOD_TITLES[method]}")
            # Occlusion, gradients and SHAP weight every word; shade as many words as LIME shows.
            show_explanation(explanations[method], f"method_{method}", min(params.num_features, 10),
                             shade=None if method == "lime" else params.num_features)

# -- 4. trust checks ---------------------------------------------------------------------------------
st.divider()
st.subheader("Can this explanation be trusted?")
t1, t2 = st.columns(2)
with t1:
    st.markdown("**Stability**: the same explanation with 5 seeds. Long error bars or a low overlap mean the "
                "top words are partly sampling noise: raise the number of samples.")
    # On a slow model the check is a click away: it costs five LIME runs.
    if not slow or st.toggle(f"Run the stability check ({defaults.TEXT_STABILITY_SEEDS} LIME runs of "
                             f"{params.num_samples:,} samples)", key="stability_run"):
        with guarded(), transient_progress("Stability (LIME with 5 seeds)") as progress:
            stability = lime_stability(adapter, text, params, main.target, n_seeds=defaults.TEXT_STABILITY_SEEDS,
                                       progress=progress)
        st.plotly_chart(present.figure(stability_figure(stability)), key="lime_stability")
with t2:
    steps = st.slider("Words to delete", 2, 30, defaults.TEXT_DELETION_STEPS, key="deletion_steps")
    st.markdown("**Faithfulness**: delete words in the order of importance of each method chosen above. A "
                "faithful ranking makes the probability fall fast; the mean drop is the score (higher is better).")
    orders = {}
    with guarded(), transient_progress("Deletion curves") as progress:
        # LIME ranks every word here (feature selection "none"), as occlusion and gradients do.
        full = explain_text(adapter, text, "lime", replace(params, feature_selection="none"), main.target, progress)
        orders["lime"] = full.ranking()
        for method in chosen:
            if method != "lime":
                orders[method] = explanations[method].ranking()  # computed or read above
        curves = deletion_curves(adapter, text, main.target, orders, steps=int(steps))
    st.plotly_chart(present.figure(deletion_figure(curves, {**METHOD_TITLES, "random": "Random order (mean of 10)"},
                                    main.target_name)), key="deletion_curves")

st.markdown("**SP-LIME**: a few test documents whose explanations together cover the words the model relies on "
            "most across many documents: a short reading list for judging the model as a whole.")
f1, f2, f3 = st.columns([1, 1, 2])
n_docs = f1.number_input("Documents to explain", 5, 200, 20, step=5, key="sp_docs",
                         help="the first documents of the filtered list above (or of the test split)")
budget = f2.number_input("Documents to pick (B)", 1, 10, 4, key="sp_budget")
if f3.toggle("Run SP-LIME", key="sp_run", help="explains every listed document once (cached afterwards)"):
    pool = [int(i) for i in (shown if source == "A test document" else range(len(test)))][: int(n_docs)]
    with guarded(), transient_progress(f"SP-LIME: explaining {len(pool)} documents") as progress:
        many = explain_many(adapter, [str(test.x[i]) for i in pool], params, progress)
        pick = submodular_pick(many, int(budget))
    st.caption(f"Picked {len(pick.picked)} of {len(pool)} documents; they cover {pick.coverage[-1]:.2f} of "
               f"{pick.total:.2f} total word importance ({pick.coverage[-1] / pick.total:.0%}).")
    for rank, p in enumerate(pick.picked, start=1):
        i = pool[p]
        expl = many[p]
        label = sample_label(i, test.y, test_proba, spec.class_names)
        with st.expander(f"{rank}. {label} · covers {pick.coverage[rank - 1] / pick.total:.0%} cumulative · "
                         f"top words: {', '.join(w for w, _ in expl.top(5))}", expanded=rank == 1):
            show_explanation(expl, f"sp_{rank}", min(params.num_features, 10))
