"""Uncertainty: where does the model not know? Ensembles, MC dropout, Bayes by backprop, stress sets."""

import numpy as np
import streamlit as st

from components import cached, jobs_view, present, state
from components.feedback import guarded
from components.figures.uncertainty import agreement_heatmap, member_heatmap, saliency_strip, uncertainty_scatter
from components.images import to_display
from components.uncertainty_parts import (ask_to_train, auroc_section, gallery_controls, image_gallery, inspect_button,
                                          keep_valid, picked_input, request_training, set_controls, slice_metrics,
                                          training_requested)
from components.uncertainty_upload import render as render_upload
from components.uncertainty_view import (accuracy_table, numbers, published_scores, scatter_points, train_label,
                                         training_offer)
from components.widgets import require_kind
from core.lecture import defaults
from core.upload import byom
from core.lecture.curated import default_uncertainty_source
from core.uncertainty.members import ENSEMBLE_KINDS, supported_sources
from core.uncertainty.report import SCORE_TITLES
from core.uncertainty.sources import SOURCES, autoencoder_ready, is_ready

EPSILONS = [0.02, 0.05, 0.1, 0.2, 0.3]

sel = state.current()
st.title("Uncertainty")
st.caption("\"I have no idea!\" Epistemic uncertainty shows when an ensemble's members disagree, or when dropout left "
           "on at test time makes the prediction wobble. Predictive entropy = expected entropy (aleatoric: every "
           "member is unsure) + mutual information (epistemic: the members disagree). Stress sets check whether the "
           "scores rise where the model should not be trusted: adversarial and out-of-distribution inputs.")
if byom.is_upload(sel.scenario):  # any data kind: sources and stress sets that need no training recipe
    render_upload(sel)
    st.stop()
require_kind(sel, "image", ":material/image:")
names = sel.spec.class_names
present.example_bar("uncertainty", sel)

with guarded():
    support = supported_sources(sel.scenario, sel.model)
default_kind, _ = default_uncertainty_source(sel.scenario, sel.model)  # MC dropout where it applies: nothing to train
with present.controls('Source, members and attack'):
    available = [k for k, reason in support.items() if reason is None]
    keep_valid("unc_source", available)
    kind = st.segmented_control("Source", available, default=default_kind, key="unc_source",
                                format_func=lambda k: SOURCES[k], help="; ".join(
                                    f"{SOURCES[k]}: {r}" for k, r in support.items() if r) or None) or default_kind
    c2, c3, c4 = st.columns([1.2, 1.6, 1.2])
    ensemble = kind in ENSEMBLE_KINDS
    if ensemble:
        n = c2.select_slider("Members K", [2, 3, 4, 5, 6, 8, 10], 5, key="unc_members",
                             help="members trained once (together) and cached; more members train only the new ones")
    else:
        n = c2.select_slider("Samples T", [5, 10, 20, 30, 50, 100], 30, key="unc_samples",
                             help="stochastic forward passes (dropout masks or weight samples)")
    epsilon = c3.select_slider("FGSM epsilon", EPSILONS, defaults.UNCERTAINTY_EPSILON, key="unc_epsilon",
                               help="largest change of any pixel (pixels in [0, 1]); the attack targets one model: "
                                    "member 1, or the deterministic model the stochastic source perturbs")
    autoencoder_help = ("reconstruction error of an autoencoder trained on the training images: low = familiar data")
    if not autoencoder_ready(sel.scenario, sel.variant):
        estimate = cached.autoencoder_estimate(sel.scenario, sel.variant)
        if estimate is not None:
            autoencoder_help += (f". Not trained yet: switching it on trains it first, {estimate.about} on this machine "
                                 f"({estimate.basis}), then it is cached")
    use_autoencoder = c4.toggle("Autoencoder score", False, key="unc_autoencoder", help=autoencoder_help)
    ready = is_ready(sel.scenario, sel.model, sel.variant, kind, int(n))
    asked = training_requested(kind)
    heavy = next((k for k in ENSEMBLE_KINDS if support.get(k) is None), None)
    members = int(st.session_state.get("unc_members", 5))
    if ready and not ensemble and heavy and not is_ready(sel.scenario, sel.model, sel.variant, heavy, members):
        # the heavy source, one click away: what it trains and for how long, said before it starts
        estimate = cached.uncertainty_estimate(sel.scenario, sel.model, sel.variant, heavy, members)
        o1, o2 = st.columns([3, 1.2], vertical_alignment="center")
        o1.caption(f"Compare with an ensemble. {training_offer(heavy, members, estimate)}")
        o2.button(train_label(heavy, estimate), key="unc_train_ensemble", on_click=request_training, args=(heavy,),
                  width="stretch")

# Training runs as a job (core.jobs): off this request, shared with any session asking for the same source, and
# found again by a reload. The page follows it until the source is in the store.
job_params = {"scenario": sel.scenario, "model": sel.model, "variant": sel.variant, "kind": kind, "n": int(n)}
job = None if ready else jobs_view.find("uncertainty_source", job_params)
if not ready and asked:
    with guarded():
        job = jobs_view.start("uncertainty_source", job_params,
                              title=f"Training the {SOURCES[kind]} of {sel.scenario}/{sel.model}"
                                    + (f" ({int(n)} members)" if ensemble else ""))
if not ready and job is not None and job.status != "done":
    estimate = cached.uncertainty_estimate(sel.scenario, sel.model, sel.variant, kind, int(n)) if job.active else None
    jobs_view.follow(job, estimate=f"{estimate.about} in all" if estimate is not None else None,
                     restart=request_training, restart_args=(kind,))
if not ready and not asked:
    with guarded():
        estimate = cached.uncertainty_estimate(sel.scenario, sel.model, sel.variant, kind, int(n))
    others = [SOURCES[k] for k in available if k != kind and is_ready(sel.scenario, sel.model, sel.variant, k,
                                                                       members if k in ENSEMBLE_KINDS else 30)]
    ask_to_train(kind, training_offer(kind, int(n), estimate),
                 train_label(kind, estimate),
                 "Nothing is trained until you press the button. " + (
                     f"Ready now, without training: {', '.join(others)} (the Source control above)." if others else
                     "Every source this model offers needs training" + (
                         " (not offered: " + "; ".join(f"{SOURCES[k]}, {r}" for k, r in support.items() if r) + ")."
                         if any(support.values()) else ".")))
with guarded():
    source = cached.uncertainty_source(sel.scenario, sel.model, sel.variant, kind, int(n))
with guarded():  # a job: the page shows its progress until the report is ready
    report = cached.uncertainty_report(sel.scenario, sel.model, sel.variant, kind, int(n), float(epsilon),
                                       bool(use_autoencoder))
st.session_state["uncertainty_scores"] = published_scores(report)  # the embeddings page colours by these

set_names = [r.name for r in report.sets]
set_titles = {r.name: r.set.title for r in report.sets}
clean, labels = report.get("clean"), [f"member {i + 1}" for i in range(report.n_members)] if ensemble else \
    [f"sample {i + 1}" for i in range(report.n_members)]
if not ensemble and not np.any(clean.scores["mutual_information"] > 0):
    st.warning(f"The {report.n_members} passes of the {SOURCES[kind]} give the same prediction for every clean test "
               "input, so every disagreement score is 0: the source says nothing here. Try another source.",
               icon=":material/visibility_off:")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Clean accuracy (mean ensemble)", f"{clean.accuracy('mean'):.1%}",
          help=f"{source.title}; single members: " + ", ".join(f"{a:.1%}" for a in source.member_accuracy))
if "fgsm" in set_names:
    adv = report.get("fgsm")
    m2.metric(f"FGSM ε={epsilon:g}: mean ensemble", f"{adv.accuracy('mean'):.1%}")
    m3.metric("FGSM: max-confidence ensemble", f"{adv.accuracy('max'):.1%}",
              delta=f"{(adv.accuracy('max') - adv.accuracy('mean')) * 100:+.1f} points vs mean")
m4.metric("Mean epistemic (MI) clean → noise",
          f"{clean.scores['mutual_information'].mean():.3f} → {report.get('noise').scores['mutual_information'].mean():.3f}")

slice_metrics(sel, clean)  # the sidebar's slice, on the clean test set (the first set)

# -- the table -------------------------------------------------------------------------------------
st.subheader("Accuracy and AUROC per stress set")
st.dataframe(numbers(accuracy_table(report)), hide_index=True, width="stretch", key="unc_accuracy")
st.caption("—: the set has no labels (a noise image or a turned digit is no digit), so it has no accuracy.")
auroc_section(report, ["errors", "shift"],
              {"errors": "the mean ensemble's mistakes (within each labelled set)",
               "shift": "adversarial / out-of-distribution inputs (against the clean test set)"},
              "AUROC 0.5: the score ranks the inputs at random; 1.0: every mistake (or shifted input) scores higher "
              "than every correct (clean) one. Max-confidence ensembling takes, per input, the member that is most sure.")

# -- scatter + details -----------------------------------------------------------------------------
st.subheader("Aleatoric vs epistemic, input by input")
shown, colour_by = set_controls(set_names, set_titles, ["correct", "set"])
points = scatter_points(report, shown)
event = st.plotly_chart(present.figure(uncertainty_scatter(points, [set_titles[s] for s in shown], colour_by)), key="unc_scatter",
                        on_select="rerun", selection_mode=("points",))
result, pick_set, pick_row = picked_input(report, points, shown, event, "mutual_information")
image = result.set.bundle.x[pick_row]
mean_pred = int(result.mean[pick_row].argmax())
truth = "" if result.y is None else f", true {names[int(result.y[pick_row])]}"
st.markdown(f"**Selected: {set_titles[pick_set]} #{pick_row}**: mean ensemble says {names[mean_pred]} "
            f"({result.mean[pick_row, mean_pred]:.0%}){truth}; max-confidence says {names[int(result.max[pick_row].argmax())]}.")
st.caption(" · ".join(f"{SCORE_TITLES[k]} {v[pick_row]:.3f}" for k, v in result.scores.items()))
d1, d2 = st.columns([1, 3])
d1.image(to_display(image, 160), caption=f"{set_titles[pick_set]} #{pick_row}", width="stretch")
d2.plotly_chart(present.figure(member_heatmap(result.proba[:, pick_row], names, labels)), key="unc_members_heatmap")
if ensemble and source.adapters[0].torch_module() is not None:
    with guarded(stop=False):
        saliency = cached.member_saliency(sel.scenario, sel.model, sel.variant, kind, int(n),
                                          np.asarray(image, dtype=np.float32), mean_pred)
        st.plotly_chart(present.figure(saliency_strip(image, saliency.maps, saliency.variance, labels)), key="unc_saliency")
        st.caption(f"Each member's gradient map toward {names[mean_pred]} (the mean ensemble's class), scaled to its own "
                   "maximum; the last map is the pixel-wise variance across members: where they disagree about why.")
elif ensemble:
    st.caption("Saliency maps need a torch model's gradients: this ensemble's members are scikit-learn models.")
else:
    st.caption("Saliency per member is shown for ensembles (deep / bootstrap): stochastic passes have no fixed members.")

# -- gallery ---------------------------------------------------------------------------------------
st.subheader("Most disputed inputs")
gallery_set, gallery_score, top, g = gallery_controls(report, set_titles, "mutual_information")
image_gallery(g, top, list(names), gallery_score)
inspect_button(gallery_set, top)

# -- agreement ---------------------------------------------------------------------------------------
st.subheader("Agreement between members (clean test set)")
st.plotly_chart(present.figure(agreement_heatmap(report.agreement, labels, "Share of test inputs on which two members predict the same class")),
                key="unc_agreement")
