"""Data checks: can I trust this data? Missing values, balance, duplicates and leakage, drift, label errors."""

import numpy as np
import pandas as pd
import streamlit as st

from components import active_slice, cached, present, state
from components.feedback import guarded
from components.figures.slices import balance_figure
from components.samples import render_samples

sel = state.current()
spec = sel.spec
st.title("Data checks")
st.caption(
    "Is something missing, duplicated, shifted or mislabelled? Before trusting a model, look at what it "
    "learned from and what it is scored on: missing values, the balance of the classes, duplicates (and test "
    "samples that are also in the train split), drift between train and test, and the samples whose label the "
    "model's out-of-sample probabilities contradict (confident learning, with cleanlab)."
)

with guarded():
    splits = cached.scenario_data(sel.scenario, sel.variant)
    report = cached.data_report(sel.scenario, sel.model, sel.variant)

current = active_slice.active()
if current is not None:  # these checks compare splits and whole datasets: a slice of one split would hide that
    st.caption(f":material/filter_alt: The active slice (**{current.text}**) does not filter these checks: they "
               "compare the splits of the whole dataset (a duplicate or drift outside the slice still matters). The "
               "Slices and groups page measures the slice.")
cols = st.columns(len(report.splits))
for column, (split, n) in zip(cols, report.splits.items()):
    column.metric(f"{split} samples", f"{n:,}")

# -- missing values and balance -----------------------------------------------------------------------------
left, right = st.columns([1, 1.2])
with left:
    st.subheader("Missing values")
    missing = pd.DataFrame(report.missing)
    shown = missing[missing["missing"] > 0] if len(missing) else missing
    if shown.empty:
        st.success("No missing values in any split.", icon=":material/check_circle:")
    else:
        st.dataframe(shown.pivot(index="column", columns="split", values="missing").fillna(0).astype(int),
                     width="stretch", key="data_missing")
        st.caption("Empty cells per column and split (a table's raw columns: a category written '?' counts).")
with right:
    if report.balance:
        st.plotly_chart(present.figure(balance_figure(report.balance)), key="data_balance")

# -- duplicates ---------------------------------------------------------------------------------------------
st.subheader("Duplicates and leakage")
d1, d2, d3 = st.columns(3)
exact, near = report.duplicates["exact"], report.duplicates["near"]
d1.metric("Test samples also in train (exact)", f"{exact['test_in_train']['count']:,}",
          help="identical model inputs in the test and the train split: the test score overstates unseen data")
d2.metric("… near duplicates", f"{near['test_in_train']['count']:,}",
          help="equal after normalising: texts lower-cased without punctuation, images at 8 grey levels, numbers "
               "at 4 significant digits")
d3.metric("… with a different label", f"{exact['test_in_train']['different_label']:,}",
          help="the same input labelled differently in train and test: label noise, or a task the inputs "
               "cannot decide")
st.caption("Duplicates within a split: " + ", ".join(
    f"{split} {v['count']:,} exact / {near['within'][split]['count']:,} near" for split, v in exact["within"].items())
    + ". Duplicates are judged on what the model sees (a table's model columns).")
pairs = near["test_in_train"]["pairs"]
if pairs and splits["test"].y is None:
    st.dataframe(pd.DataFrame(pairs, columns=["test index", "train index"]), hide_index=True, key="data_pairs")
elif pairs:
    labels = [f"test #{t} = train #{r}" for t, r in pairs]
    pick = st.selectbox("Show a test sample and its twin in train", range(len(pairs)), key="data_pair",
                        format_func=lambda i: labels[i])
    t, r = pairs[pick]
    a, b = st.columns(2)
    with a:
        render_samples(splits["test"], np.array([t]), cached.predictions(sel.scenario, sel.model, sel.variant, "test"),
                       spec.class_names, key="data_pair_test", per_row=1)
    with b:  # the model's probabilities for this one train sample (predicting a 60,000-image split to show one costs ~5 s)
        train = splits["train"]
        twin = np.zeros((len(train), len(spec.class_names)))
        rows = train.x[[r]] if train.kind != "text" else [str(train.x[r])]
        twin[r] = cached.trained_model(sel.scenario, sel.model, sel.variant).adapter.predict_proba(rows)[0]
        render_samples(train, np.array([r]), twin, spec.class_names, key="data_pair_train", per_row=1)

# -- drift ----------------------------------------------------------------------------------------------
st.subheader("Drift between train and test")
if not report.drift:
    st.info("No feature to compare.", icon=":material/info:")
else:
    drifted = [r for r in report.drift if r["drifted"]]
    (st.warning if drifted else st.success)(
        f"{len(drifted)} of {len(report.drift)} features differ between train and test (p < 0.01 after a Bonferroni "
        "correction)." + (" Scores on the test split may not carry over." if drifted else ""),
        icon=":material/warning:" if drifted else ":material/check_circle:")
    st.dataframe(pd.DataFrame(report.drift)[["feature", "test", "statistic", "p_value", "p_corrected", "drifted"]],
                 hide_index=True, width="stretch", key="data_drift",
                 column_config={"statistic": st.column_config.NumberColumn(format="%.4g"),
                                "p_value": st.column_config.NumberColumn("p", format="%.3g"),
                                "p_corrected": st.column_config.NumberColumn("p (Bonferroni)", format="%.3g")})
    st.caption("Kolmogorov-Smirnov for numeric features, chi-square of the category counts for the others (scipy).")

# -- label errors ---------------------------------------------------------------------------------------------
st.subheader("Suspected label errors")
issues = report.label_issues
if not issues:
    st.info("This data has no labels to check.", icon=":material/label_off:")
else:
    st.caption(f"Confident learning (cleanlab) on **{sel.model}**'s probabilities for the test split, which it never "
               f"saw: **{issues['count']:,}** samples ({issues.get('share', 0):.1%}) whose given label the model "
               "contradicts with more confidence than it usually has for that class; lowest probability of the given "
               "label first. Each one is a mislabelled sample or a confident mistake of the model: look at them.")
    if issues["count"]:
        indices = np.asarray(issues["indices"][:24 if splits["test"].kind == "image" else 50], dtype=int)
        render_samples(splits["test"], indices, cached.predictions(sel.scenario, sel.model, sel.variant, "test"),
                       spec.class_names, key="data_label_issues", per_row=8)
