"""Calibration: is the model's confidence honest? Reliability diagrams, metrics, recalibration."""

import numpy as np
import pandas as pd
import streamlit as st

from components import active_slice, cached, present, state
from components.feedback import guarded
from components.figures.calibration import reliability_figure, risk_coverage_figure
from components.samples import render_samples
from components.selection import clicked_index
from core.lecture import defaults
from core import calibration, scenarios

sel = state.current()
spec = sel.spec
st.title("Calibration")
st.caption(
    "When the model says 90 %, is it right 90 % of the time? Bins of predictions by confidence: a "
    "calibrated model's bars reach the diagonal. Recalibrators are fitted on the validation split and "
    "evaluated on the test split."
)

present.example_bar("calibration", sel)
# the sidebar's model first: the first compared model is drawn with its bins and lists a bin's samples
trained = [sel.model] + [m for m in spec.model_names
                         if m != sel.model and scenarios.is_trained(sel.scenario, m, sel.variant)]
with present.controls('Models and binning'):
    c1, c2, c3, c4 = st.columns([2, 1, 1.1, 2.3])
    models = c1.multiselect(
        "Models to compare", spec.model_names, default=trained, key="cal_models",
        help="The first one is drawn with its bins and gaps; models not trained yet are trained on selection.",
    )
    n_bins = c2.slider("Bins", 5, 30, defaults.CALIBRATION_BINS, key="cal_bins")
    strategy = c3.radio("Binning", calibration.STRATEGIES, key="cal_strategy", horizontal=True,
                        format_func=lambda s: {"uniform": "equal width", "quantile": "equal mass"}[s])
    method = c4.segmented_control("Recalibration", ["none", *calibration.METHODS], default="none", key="cal_method",
                                  help="before / after: show the test predictions after each recalibration method")
    method = method or "none"
if not models:
    st.info("Pick at least one model to compare.", icon=":material/checklist:")
    st.stop()

current = active_slice.active()  # the sidebar's slice: every number below is on its test samples
active_slice.caption(sel, "test")
slice_rows = active_slice.rows(sel, "test")
reports = {}
with guarded():
    for name in models:
        cached.trained_model(sel.scenario, name, sel.variant)
        reports[name] = cached.calibration_report(sel.scenario, name, sel.variant, n_bins,
                                                  None if slice_rows is None else tuple(slice_rows.tolist()))

suffix = "" if method == "none" else f" after {method} scaling" if method == "temperature" else f" after {method}"
of = st.radio("Reliability of", ["top-label", *range(len(spec.class_names))], key="cal_of", horizontal=True,
              format_func=lambda v: "the predicted class (top-label)" if v == "top-label" else f"{spec.class_names[v]} vs rest",
              help="top-label: is the model right as often as its confidence says? One-vs-rest: is P(class) honest?")
if of == "top-label":
    curves = [(name, report.curve(method, strategy)) for name, report in reports.items()]
else:
    curves = [(name, calibration.class_curves(report.proba if method == "none" else report.recalibrated[method],
                                              report.y, n_bins, strategy, spec.class_names)[of])
              for name, report in reports.items()]
    suffix += f", P({spec.class_names[of]}) against the label being {spec.class_names[of]}"
primary_name, primary_curve = curves[0]
event = st.plotly_chart(present.figure(reliability_figure(curves, f"Reliability diagram (test {'slice' if current else 'split'}{suffix})")), key="cal_reliability",
                        on_select="rerun", selection_mode=("points",))

# -- metrics table ----------------------------------------------------------------------------
rows = []
for name, report in reports.items():
    versions = [("none", report.metrics)] + list(report.recalibrated_metrics.items())
    for version, m in versions:
        rows.append({
            "model": name,
            "recalibration": version if version != "temperature" else f"temperature (T={report.temperature:.2f})",
            "accuracy": m.accuracy,
            "ECE": m.ece,
            "ECE 95% interval": f"[{m.ece_interval[0]:.4f}, {m.ece_interval[1]:.4f}]",
            "ACE (equal mass)": m.ace,
            "MCE": m.mce,
            "Brier": m.brier,
            "NLL": m.nll,
        })
table = pd.DataFrame(rows)
st.subheader("Metrics on the test split" + (f" slice ({len(slice_rows):,} samples)" if current else ""))
st.dataframe(table, hide_index=True, width="stretch", key="cal_table",
             column_config={"recalibration": st.column_config.TextColumn(width="medium"),
                            **{c: st.column_config.NumberColumn(format="%.4f")
                               for c in ("accuracy", "ECE", "ACE (equal mass)", "MCE", "Brier", "NLL")}})
st.caption("ECE: expected calibration error (equal-width bins) with a bootstrap 95 % interval; ACE: the same with "
           "equal-mass bins; MCE: the largest gap of any bin; Brier and NLL: proper scoring rules (lower is better).")

left, right = st.columns([1.1, 1])
with left:
    risk = []
    for name, report in reports.items():
        proba = report.proba if method == "none" else report.recalibrated[method]
        coverage, accuracy = calibration.risk_coverage(proba, report.y)
        risk.append((name, coverage, accuracy))
    st.plotly_chart(present.figure(risk_coverage_figure(risk)), key="cal_risk")

# -- samples in a bin -------------------------------------------------------------------------
with right:
    st.subheader(f"Samples in a bin ({primary_name})")
    nonempty = [int(b) for b in np.flatnonzero(primary_curve.nonempty)]
    labels = {b: f"bin {b}: confidence {primary_curve.edges[b]:.2f}-{primary_curve.edges[b + 1]:.2f} "
                 f"({primary_curve.counts[b]} samples, accuracy {primary_curve.accuracy[b]:.2f})" for b in nonempty}
    clicked = clicked_index(event)
    if clicked in labels:
        st.session_state["cal_bin"] = clicked
    elif st.session_state.get("cal_bin") not in labels and nonempty:
        # Default: the most over-confident bin.
        st.session_state["cal_bin"] = max(nonempty, key=lambda b: primary_curve.gap[b])
    calibration_bin = st.selectbox("Bin (or click a bar in the diagram)", nonempty, key="cal_bin",
                                   format_func=lambda b: labels[b])
    if calibration_bin is not None:
        report = reports[primary_name]
        proba = report.proba if method == "none" else report.recalibrated[method]
        in_bin = primary_curve.samples_in(calibration_bin)
        pred = proba.argmax(axis=1)
        # Mistakes first, most confident first: the over-confident errors are what a user hunts for.
        order = np.lexsort((-proba[in_bin, pred[in_bin]], pred[in_bin] == report.y[in_bin]))
        shown = in_bin[order][:24]
        st.caption(f"{int(np.sum(pred[in_bin] != report.y[in_bin]))} mistakes among {len(in_bin)} samples; "
                   f"showing {len(shown)}, mistakes first.")
        test = cached.scenario_data(sel.scenario, sel.variant)["test"]
        if slice_rows is not None:  # the report's rows are the slice's: back to test indices
            full = np.zeros((len(test), proba.shape[1]), dtype=proba.dtype)
            full[slice_rows] = proba
            proba, shown = full, slice_rows[shown]
        render_samples(test, shown, proba, spec.class_names, key="cal_samples", per_row=4)
