"""Slices: can I trust this data? Where the model fails, and whether it treats groups alike."""

import numpy as np
import pandas as pd
import streamlit as st

from components import active_slice, cached, present, state
from components.feedback import guarded
from components.figures.slices import group_figure
from components.samples import render_samples
from core.slices import OUTCOME_COLUMNS, parse_slice, slice_frame
from core.slices.metrics import MAX_GROUPS

sel = state.current()
spec = sel.spec
st.title("Slices and groups")
st.caption(
    "Can I trust this data, and where does the model fail? A slice is a filter on the data's columns "
    "(`sex == Female and age < 30`); the groups of a sensitive column are compared side by side with "
    "Fairlearn's disparities; and a search lists the slices whose error rate is well above the rest's. "
    "Every number comes with a 95 % bootstrap interval."
)

with guarded():
    splits = cached.scenario_data(sel.scenario, sel.variant)
    cached.trained_model(sel.scenario, sel.model, sel.variant)
if splits["test"].y is None:
    st.info("Slices compare errors, so they need labels: this data has none.", icon=":material/label_off:")
    st.stop()

with present.controls("Slice and groups"):
    c1, c2, c3, c4 = st.columns([4, 1.1, 1.3, 1.2])
    split = c2.selectbox("Split", ["test", "val", "train"], key="slice_split",
                         help="the samples sliced; the model was trained on the train split")
    with guarded():
        proba = cached.predictions(sel.scenario, sel.model, sel.variant, split)
    bundle = splits[split]
    selected = active_slice.selected(sel, split)  # a selection saved from the Embeddings map, if any
    frame = slice_frame(bundle, proba, None if selected is None else list(selected))
    # The slice is the sidebar's (it filters every page): its box is there, its columns are listed here.
    current = active_slice.active()
    c1.markdown(f"**Slice** (the sidebar's, on every page): `{current.text}`" if current else
                "**Slice**: none, every sample. Type one in the sidebar's *Slice* box, or apply a weak slice below.")
    c1.caption("Columns: " + ", ".join(f"`{c}`" for c in frame.columns))
    binary = len(spec.class_names) == 2
    positive_options = list(spec.class_names) if binary else ["(none)", *spec.class_names]
    positive_name = c3.selectbox("Positive class", positive_options, index=1 if binary else 0, key="slice_positive",
                                 help="selection rate, TPR, FPR and the disparities are about this class")
    positive = None if positive_name == "(none)" else list(spec.class_names).index(positive_name)
    depth = c4.selectbox("Weak slices of up to", [1, 2, 3], index=1, key="slice_conditions",
                         format_func=lambda k: f"{k} condition{'s' * (k > 1)}")
    groupable = [str(c) for c in frame.columns if c not in OUTCOME_COLUMNS
                 and (frame[c].nunique() <= MAX_GROUPS or pd.api.types.is_numeric_dtype(frame[c]))]
    default = [c for c in spec.sensitive if c in groupable] or (["true"] if "true" in groupable else [])
    sensitive = st.multiselect("Compare the groups of", groupable, default=default, key="slice_sensitive",
                               help="sensitive columns (declared by the scenario) or any other; a numeric column "
                                    "with many values is grouped at its quartiles")

applied = current.text if current else ""
mask = parse_slice(applied).mask(frame, allow_empty=True)
if current and not mask.any():
    st.info(f"No {split} sample lies in the slice `{applied}`.", icon=":material/filter_alt_off:")

with guarded():
    report = cached.slices_report(sel.scenario, sel.model, sel.variant, split, tuple(sensitive), applied, positive,
                                  int(depth), selected)

# -- the slice against the rest --------------------------------------------------------------------------
rows = [report.overall] + ([report.slice, report.rest] if report.slice else [])


def fmt(row: dict, name: str) -> str:
    value, interval = row.get(name), row.get(f"{name}_interval")
    if value is None:
        return "n/a"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else f"{value:.3f}"


metrics = ["error_rate", "ece"] + (["selection_rate", "tpr", "fpr"] if positive is not None else [])
titles = {"error_rate": "error rate", "ece": "ECE", "selection_rate": "selection rate", "tpr": "TPR", "fpr": "FPR"}
st.subheader(f"{report.slice['slice'] if report.slice else 'Every sample'}: {int(mask.sum()):,} of {len(frame):,}")
st.dataframe(pd.DataFrame([{"slice": r["slice"], "n": r["n"], **{titles[m]: fmt(r, m) for m in metrics}} for r in rows]),
             hide_index=True, width="stretch", key="slice_table")
if positive is not None:
    st.caption(f"Positive class: **{spec.class_names[positive]}**. Selection rate: share predicted positive; TPR: "
               "positives found; FPR: negatives called positive. [low, high]: 95 % bootstrap interval.")

# -- groups -----------------------------------------------------------------------------------------------
for group in report.groups:
    st.plotly_chart(present.figure(group_figure(group["column"], group["groups"], report.overall,
                                                [m for m in metrics if m != "ece"])), key=f"slice_group_{group['column']}")
    if group["disparities"]:
        d = group["disparities"]
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Demographic parity difference", f"{d['demographic_parity_difference']:.3f}",
                  help="largest minus smallest selection rate of the groups (0 = equal)")
        m2.metric("Demographic parity ratio", f"{d['demographic_parity_ratio']:.3f}",
                  help="smallest over largest selection rate (1 = equal; the four-fifths rule asks for 0.8)")
        m3.metric("Equalized odds difference", f"{d['equalized_odds_difference']:.3f}",
                  help="the larger of the TPR gap and the FPR gap between groups (0 = equal)")
        m4.metric("Equalized odds ratio", f"{d['equalized_odds_ratio']:.3f}",
                  help="the smaller of the TPR ratio and the FPR ratio (1 = equal)")
    if group["note"]:
        st.caption(group["note"][0].upper() + group["note"][1:] + ".")

# -- weak slices ------------------------------------------------------------------------------------------
st.subheader("Weak slices")
st.caption("Conjunctions of conditions whose error rate is well above the rest's (one-sided test, Bonferroni-"
           "corrected p < 0.05), ranked by excess error x √size. The label and the outcome columns (predicted, "
           "correct, confidence) are never searched. **Apply** makes one the active slice (the sidebar's), on every page.")
if not report.weak_slices:
    st.info("No slice has an error rate significantly above the rest's.", icon=":material/check_circle:")
for i, weak in enumerate(report.weak_slices):
    w1, w2 = st.columns([6, 1])
    lo, hi = weak["error_interval"]
    w1.markdown(f"**{i + 1}.** `{weak['slice']}`: {weak['n']:,} samples, error **{weak['error_rate']:.1%}** "
                f"[{lo:.1%}, {hi:.1%}] vs {weak['rest_error_rate']:.1%} for the rest")
    w2.button("Apply", key=f"slice_apply_{i}", on_click=active_slice.set_slice, args=(weak["slice"],), width="stretch",
              disabled=weak["slice"] == applied)

# -- two models on the same slices ---------------------------------------------------------------------------
others = [m for m in spec.model_names if m != sel.model]
if others:
    st.subheader("Two models on the same slices")
    other = st.selectbox(f"Compare {sel.model} with", ["(none)", *others], key="slice_compare",
                         help="the other model is trained on first use")
    if other != "(none)":
        with guarded():
            cached.trained_model(sel.scenario, other, sel.variant)
            comparison = cached.slices_comparison(sel.scenario, sel.model, other, sel.variant, split, tuple(sensitive),
                                                  applied, positive, int(depth), selected)

        def cell(row: dict, name: str) -> str:
            m = row[name]
            return f"{m['error_rate']:.3f}" + (f" [{m['error_interval'][0]:.3f}, {m['error_interval'][1]:.3f}]"
                                               if m["error_interval"] else "")

        st.dataframe(pd.DataFrame([{"slice": r["slice"], "n": r["n"], f"{sel.model} error": cell(r, sel.model),
                                    f"{other} error": cell(r, other), "difference": r["difference"],
                                    "disagree": r["disagreement"]} for r in comparison["slices"]]),
                     hide_index=True, width="stretch", key="slice_compare_table",
                     column_config={"difference": st.column_config.NumberColumn(format="%+.3f"),
                                    "disagree": st.column_config.NumberColumn(format="percent")})
        st.caption(f"They predict differently on **{comparison['disagreement']:.1%}** of the samples. Difference: "
                   f"{other}'s error rate minus {sel.model}'s. Slices: the one above, the groups, and {sel.model}'s "
                   "weak slices.")
        for i, w in enumerate(comparison["disagreement_slices"]):
            c1, c2 = st.columns([6, 1])
            c1.markdown(f"Where they disagree most: `{w['slice']}`: {w['n']:,} samples, **{w['disagreement']:.1%}** "
                        f"vs {w['rest_disagreement']:.1%} elsewhere")
            c2.button("Apply", key=f"slice_apply_disagree_{i}", on_click=active_slice.set_slice, args=(w["slice"],), width="stretch",
                      disabled=w["slice"] == applied)

# -- the samples behind the slice --------------------------------------------------------------------------
st.subheader("Samples in the slice")
inside = np.flatnonzero(mask)
pred = proba.argmax(axis=1)
order = inside[np.lexsort((-proba[inside, pred[inside]], pred[inside] == bundle.y[inside]))]
shown = order[:48 if bundle.kind != "image" else 24]
st.caption(f"{int(np.sum(pred[inside] != bundle.y[inside])):,} mistakes among {len(inside):,} samples; showing "
           f"{len(shown)}, mistakes first, most confident first.")
render_samples(bundle, shown, proba, spec.class_names, key="slice_samples", per_row=8)
