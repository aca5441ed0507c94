"""The uncertainty page for an uploaded model: its own probabilities or MC dropout, on stress sets
made from its own test split (see core.uncertainty.upload). Images, texts and table rows."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import streamlit as st

from components import cached, present, state
from components.feedback import guarded, transient_progress
from components.figures.uncertainty import agreement_heatmap, member_heatmap, uncertainty_scatter
from components.images import to_display
from components.uncertainty_parts import (auroc_section, gallery_controls, image_gallery, inspect_button, keep_valid,
                                          picked_input, set_controls, slice_metrics)
from components.uncertainty_view import (
    accuracy_table,
    has_labels,
    headline_scores,
    literal,
    numbers,
    published_scores,
    scatter_points,
)
from core.uncertainty.report import SCORE_TITLES
from core.uncertainty.upload import UPLOAD_SOURCES, fgsm_reason

EPSILONS = [0.02, 0.05, 0.1, 0.2, 0.3]
TEXT_CHARS = 600


def _input_text(bundle, row: int) -> str:
    return str(bundle.x[row])[:TEXT_CHARS] + ("…" if len(str(bundle.x[row])) > TEXT_CHARS else "")


def _show_input(where, bundle, row: int, caption: str) -> None:
    """One input as the user knows it: the image, the text (plain), or the row's features."""
    if bundle.kind == "image":
        where.image(to_display(bundle.x[row], 160), caption=caption, width="stretch")
    elif bundle.kind == "text":
        where.caption(caption)
        where.text(_input_text(bundle, row))
    else:
        where.caption(caption)
        names = list(bundle.feature_names or (f"feature {j}" for j in range(bundle.x.shape[1])))
        where.dataframe(pd.DataFrame({"feature": names, "value": np.asarray(bundle.x[row], dtype=np.float64)}),
                        hide_index=True, width="stretch", height=300)


def render(sel: state.Selection) -> None:
    """The whole page body for an uploaded scenario (the title and caption are drawn by the page)."""
    from core.upload import byom

    with guarded():
        uploaded = byom.get(sel.scenario)
        support = cached.upload_uncertainty_support(sel.scenario)
    adapter = uploaded.trained.adapter
    names = list(uploaded.spec.class_names)
    plot_names = [html.escape(n) for n in names]  # Plotly renders HTML in labels: user text is escaped
    st.caption("Your model comes without a training recipe, so there are no retrained ensemble members, Bayesian "
               "network or autoencoder here: the sources are the model's own probabilities and, where its dropout "
               "can sample, MC dropout; the stress sets are made from the upload's own test split.")

    available = [k for k, reason in support.items() if reason is None]
    keep_valid("unc_source", available)
    kind = st.segmented_control("Source", available, default=available[0], key="unc_source",
                                format_func=UPLOAD_SOURCES.get) or available[0]
    for k, reason in support.items():
        if reason:
            st.caption(f"{UPLOAD_SOURCES[k]} is not offered: {literal(reason.rstrip('.'))}.")
    attack_reason = fgsm_reason(adapter)
    c1, c2 = st.columns(2) if kind == "mc_dropout" or attack_reason is None else (None, None)
    n = 1
    if kind == "mc_dropout":
        n = c1.select_slider("Samples T", [5, 10, 20, 30, 50, 100], 30, key="unc_samples",
                             help="stochastic forward passes, each with its own dropout masks (seeded)")
    epsilon = 0.1
    if attack_reason is None:
        epsilon = c2.select_slider("FGSM epsilon", EPSILONS, 0.1, key="unc_epsilon",
                                   help="largest change of any pixel (pixels in [0, 1]), against your model")
    else:
        st.caption(f"FGSM is not offered: {literal(attack_reason.rstrip('.'))}.")

    with guarded(), transient_progress("Scoring the stress sets") as progress:
        report = cached.upload_uncertainty_report(sel.scenario, kind, int(n), float(epsilon), _progress=progress)
    st.session_state["uncertainty_scores"] = published_scores(report)  # the embeddings page colours by these

    labelled = has_labels(report)
    set_names = [r.name for r in report.sets]
    set_titles = {r.name: r.set.title for r in report.sets}
    clean = report.get("clean")
    x_score, y_score = headline_scores(report)
    member_labels = ["model"] if report.n_members == 1 else [f"sample {i + 1}" for i in range(report.n_members)]
    m1, m2, m3 = st.columns(3)
    if labelled:
        m1.metric("Clean test accuracy", f"{clean.accuracy():.1%}", help=f"{report.source_title}")
    else:
        m1.metric("Labels", "none", help="the data has no labels: accuracy and error AUROCs are not shown")
    shifted = [r for r in report.sets if r.set.shifted]
    if "fgsm" in set_names and labelled:
        m2.metric(f"FGSM ε={epsilon:g}: accuracy", f"{report.get('fgsm').accuracy():.1%}")
    if shifted:
        last = shifted[-1]
        m3.metric(f"Mean {SCORE_TITLES[y_score].split(' (')[0]}: clean → {last.set.title}",
                  f"{clean.scores[y_score].mean():.3f} → {last.scores[y_score].mean():.3f}")

    slice_metrics(sel, clean, y_score)  # the sidebar's slice on the clean set (the upload's test split)

    st.subheader("Accuracy and AUROC per stress set")
    st.dataframe(numbers(accuracy_table(report)), hide_index=True, width="stretch", key="unc_accuracy")
    if not labelled:
        st.caption("The data has no labels (the model's predictions stand in for them on other pages), so this page "
                   "shows no accuracy and no AUROC for mistakes: only how well each score tells shifted inputs apart.")
    elif any(not r.set.labelled for r in report.sets):
        st.caption("—: the set has no labels (the true class of a shifted input is unknown).")
    auroc_section(report, ["errors", "shift"] if labelled else ["shift"],
                  {"errors": "the model's mistakes (within each labelled set)",
                   "shift": "noisy / attacked / shifted inputs (against the clean test set)"},
                  "AUROC 0.5: the score ranks the inputs at random; 1.0: every mistake (or shifted input) scores "
                  "higher than every correct (clean) one. —: not defined (a set without mistakes).")

    st.subheader("Input by input")
    shown, colour_by = set_controls(set_names, set_titles, ["correct", "set"] if labelled else ["set"])
    points = scatter_points(report, shown, x_score=x_score, y_score=y_score)
    short = {name: SCORE_TITLES[name].split(" (")[0] for name in (x_score, y_score)}
    figure = uncertainty_scatter(points, [set_titles[s] for s in shown], colour_by,
                                 x_title=SCORE_TITLES[x_score], y_title=SCORE_TITLES[y_score],
                                 title=f"{short[x_score].capitalize()} vs {short[y_score]} (click a point)",
                                 x_label=short[x_score], y_label=short[y_score])
    event = st.plotly_chart(present.figure(figure), key="unc_scatter", on_select="rerun", selection_mode=("points",))
    result, pick_set, pick_row = picked_input(report, points, shown, event, y_score)
    predicted = int(result.mean[pick_row].argmax())
    truth = "" if result.y is None else f", true {literal(names[int(result.y[pick_row])])}"
    st.markdown(f"**Selected: {literal(set_titles[pick_set])} #{pick_row}**: the model says "
                f"{literal(names[predicted])} ({result.mean[pick_row, predicted]:.0%}){truth}.")
    st.caption(" · ".join(f"{SCORE_TITLES[k]} {v[pick_row]:.3f}" for k, v in result.scores.items()))
    d1, d2 = st.columns([1, 3])
    _show_input(d1, result.set.bundle, pick_row, f"{set_titles[pick_set]} #{pick_row}")
    d2.plotly_chart(present.figure(member_heatmap(result.proba[:, pick_row], plot_names, member_labels,
                                   title="The model's probabilities" if report.n_members == 1 else
                                   "Every dropout sample's probabilities", with_mean=report.n_members > 1)),
                    key="unc_members_heatmap")

    st.subheader("Most disputed inputs")
    gallery_set, gallery_score, top, g = gallery_controls(report, set_titles, y_score)
    if g.set.bundle.kind == "image":
        image_gallery(g, top, names, gallery_score, votes=report.n_members > 1)
    else:
        rows = {"#": top, "prediction": [names[int(g.mean[r].argmax())] for r in top],
                SCORE_TITLES[gallery_score]: g.scores[gallery_score][top]}
        if g.y is not None:
            rows["true class"] = [names[int(g.y[r])] for r in top]
        if g.set.bundle.kind == "text":
            rows["text"] = [_input_text(g.set.bundle, r) for r in top]
        else:
            features = list(g.set.bundle.feature_names or ())
            for j, feature in enumerate(features[:6]):
                rows[feature] = np.asarray(g.set.bundle.x[top, j], dtype=np.float64)
        st.dataframe(numbers(pd.DataFrame(rows)), hide_index=True, width="stretch", key="unc_gallery")
    inspect_button(gallery_set, top)

    if report.n_members > 1:
        st.subheader("Agreement between dropout samples (clean test set)")
        st.plotly_chart(present.figure(agreement_heatmap(report.agreement, member_labels,
                                          "Share of test inputs on which two samples predict the same class")),
                        key="unc_agreement")
