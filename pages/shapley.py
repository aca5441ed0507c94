"""Shapley values: the lecture's bill-splitting game, computed exactly and shown step by step."""

import numpy as np
import pandas as pd
import streamlit as st

from components import active_slice, cached, precomputed, present, state
from components.feedback import guarded, transient_progress
from components.params_form import params_form
from components.image_shap import image_shap_section
from components.text_shap import text_shap_section
from components.figures.shap import (
    beeswarm_figure,
    coefficients_figure,
    dependence_figure,
    mean_abs_bar_figure,
    waterfall_figure,
)
from core.lecture import defaults as page_defaults
from core.tabular import shapley
from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular
from core.upload.table_upload import MAX_ROWS, load_table, template_csv
from core.tabular.glassbox import category_labels, logistic_coefficients
from core.tabular.interactions import strongest_interaction

sel = state.current()
spec = sel.spec
st.title("Shapley values")
st.caption(
    "Features are players in a cooperative game of making a prediction. Before SHAP approximates it, "
    "here is the exact Shapley value of a small game: Alice, Bob and Carol share a restaurant bill. "
    "Each coalition's value is what that group would pay on its own; who should pay what of the total?"
)

names_text = st.text_input("Players (2 to 5, separated by commas)", "Alice, Bob, Carol", key="game_players")
with guarded():
    players = shapley.parse_players(names_text)

st.subheader("Coalition values")
defaults = shapley.default_values(players)
labels = shapley.coalition_labels(players)
columns = st.columns(4)
mapping = {}
for i, label in enumerate(labels):
    # Keys include the player list, so renaming players starts from fresh defaults.
    mapping[label] = columns[i % 4].number_input(
        f"v({label.replace(',', ', ')})", value=float(defaults[label]), step=10.0,
        key=f"game_v_{'|'.join(players)}_{label}",
    )

with guarded():
    game = shapley.Game.from_mapping(mapping, players)
phi = shapley.shapley_values(game)

st.subheader("Shapley values: each player's fair share")
cols = st.columns(len(players))
for col, player, value in zip(cols, players, phi):
    col.metric(player, f"{value:,.2f}")
gap = shapley.efficiency_gap(game, phi)
grand = float(game.values[-1])
status = "holds" if abs(gap) < 1e-6 * max(1.0, abs(grand)) else "FAILS"
st.success(f"Efficiency {status}: {' + '.join(f'{v:,.2f}' for v in phi)} = {phi.sum():,.2f} "
           f"= v(all players) = {grand:,.2f} (gap {gap:.1e}).", icon=":material/balance:")

st.subheader("How: average the marginal contribution over every join order")
st.caption("In each order, a player pays what its arrival adds to the bill of those already seated. "
           "A player's Shapley value is the mean of its column.")
rows = shapley.join_orders(game)
table = pd.DataFrame(rows)
mean_row = {"order": "mean = Shapley value", **{p: float(np.mean(table[p])) for p in players}}
table = pd.concat([table, pd.DataFrame([mean_row])], ignore_index=True)
st.dataframe(table, hide_index=True, width="stretch", key="game_orders",
             column_config={p: st.column_config.NumberColumn(format="%.2f") for p in players})

# -- SHAP on a tabular model's features ---------------------------------------------------------
st.divider()
if spec.kind == "text":
    text_shap_section(sel)
    st.stop()
if spec.kind == "image":
    image_shap_section(sel)
    st.stop()
st.header(f"SHAP on the features of {spec.title} / {sel.model}")
if spec.kind != "tabular":
    st.info("SHAP on features covers table, text and image models.", icon=":material/table:")
    st.stop()
present.example_bar("shapley", sel)

with guarded():
    splits = cached.scenario_data(sel.scenario, sel.variant)
    loaded = cached.trained_model(sel.scenario, sel.model, sel.variant)
test = splits["test"]
with present.controls('Rows, algorithm and background'):
    source = st.radio("Rows to explain", ["Test split", "Your table (CSV)"], horizontal=True, key="shap_source",
                      help="upload rows with the model's feature columns to explain them with this model")
    c1, c2, c3, c4, c5 = st.columns([1.4, 1.2, 1.2, 1, 1.4])
    current = active_slice.active()
    n_offered = len(test) if current is None else len(active_slice.rows(sel, "test"))
    if source == "Test split" and n_offered > 10:
        if st.session_state.get("shap_rows", 0) > n_offered:
            st.session_state["shap_rows"] = n_offered
        n_rows = c1.slider("Test rows to explain" + (" (of the slice)" if current else ""), 10, n_offered,
                           min(page_defaults.SHAP_ROWS, n_offered), step=10, key="shap_rows")
    elif source == "Test split":
        n_rows = n_offered
        c1.caption(f"All {n_offered} test rows of the slice are explained.")
    else:
        c1.caption(f"Every uploaded row is explained (up to {MAX_ROWS:,}).")
    params = params_form(ShapParams, "shap", {}, st, columns=[c2, c3, c4])
    target_options = ["predicted", *range(len(spec.class_names))]
    target = c5.selectbox("Explain the probability of", target_options, key="shap_target",
                          format_func=lambda t: "the predicted class" if t == "predicted" else spec.class_names[t])
if source == "Test split":
    rows_bundle = test
    with guarded():
        expl, read = precomputed.shap_explanation(sel, int(n_rows), params.algorithm, params.background,
                                                  params.background_size, target,
                                                  None if current is None else tuple(active_slice.rows(sel, "test").tolist()))
    active_slice.caption(sel, "test", "rows")
    precomputed.caption(read, what="SHAP values")
else:
    u1, u2 = st.columns([3, 1])
    upload = u1.file_uploader(f"CSV with the {len(test.feature_names)} feature columns (and optionally 'label')",
                              type=["csv"], key="shap_upload")
    u2.download_button("Template CSV", template_csv(test), file_name=f"trustlens-{sel.scenario}-rows.csv",
                       mime="text/csv", icon=":material/download:", key="shap_template",
                       help="the first 20 test rows in the expected format: edit them and upload")
    if upload is None:
        st.info("Upload a CSV of rows to explain, or start from the template.", icon=":material/upload:")
        st.stop()
    with guarded():
        rows_bundle = load_table(upload.getvalue(), test.feature_names, spec.class_names, name=upload.name)
        with transient_progress("Computing SHAP values") as progress:
            expl = explain_tabular(loaded.adapter, rows_bundle, None, background_data(splits["train"], params), params,
                                   target, progress)
    u1.caption(f"{upload.name}: {len(rows_bundle)} rows.")

error = float(np.max(np.abs(expl.additivity_error)))
m1, m2, m3 = st.columns(3)
m1.metric("Algorithm", expl.method)
m2.metric("Mean base value", f"{float(np.mean(expl.base_values)):.4f}",
          help="average output over the background: where every explanation starts")
m3.metric("Additivity error (max)", f"{error:.1e}",
          help="|base value + sum of SHAP values - model output|, worst row; exact and tree explainers are ~1e-9")

st.subheader("One row: from the base value to the prediction")
pred = loaded.adapter.predict_proba(rows_bundle.x[expl.rows]).argmax(axis=1)
table = pd.DataFrame({"row": expl.rows})
if rows_bundle.y is not None:
    table["true"] = [spec.class_names[y] for y in rows_bundle.y[expl.rows]]
table["predicted"] = [spec.class_names[p] for p in pred]
table["explained output"] = expl.output
if rows_bundle.display is not None:
    shown_columns = rows_bundle.display.iloc[expl.rows].reset_index(drop=True)
    table = pd.concat([table, shown_columns.drop(columns=[c for c in shown_columns.columns if c in table.columns])], axis=1)
left, right = st.columns([1, 1.1])
with left:
    event = st.dataframe(table, hide_index=True, key="shap_row_table", on_select="rerun", selection_mode="single-row",
                         height=420, column_config={"explained output": st.column_config.NumberColumn(format="%.3f")})
    chosen = event["selection"]["rows"] if event is not None else []
    focus = st.session_state.get("shap_focus") if source == "Test split" else None
    if chosen:
        i = int(chosen[0])
        if source == "Test split":
            st.session_state["shap_focus"] = int(expl.rows[i])  # so the link names the row on screen
        st.caption(f"Row {int(expl.rows[i])} selected.")
    elif focus is not None and int(focus) in set(int(r) for r in expl.rows):
        i = [int(r) for r in expl.rows].index(int(focus))
        st.caption(f"Row {int(focus)} (from the link or the example list). Select a row to explain another one.")
    else:
        i = 0
        st.caption("Select a row to explain it.")
target_name = spec.class_names[int(expl.target[i])]
# the row as the table shows it (a raw-column pipeline's categories as text, not the codes SHAP ran on)
display = rows_bundle.display
shown = ({} if display is None else
         {f: display.iloc[int(expl.rows[i])][f] for f in expl.feature_names if f in display.columns})
right.plotly_chart(present.figure(waterfall_figure(expl, i, target_name=target_name, shown=shown)), key="shap_waterfall")

st.subheader("All explained rows")
left, right = st.columns(2)
left.plotly_chart(present.figure(beeswarm_figure(expl)), key="shap_beeswarm")
right.plotly_chart(present.figure(mean_abs_bar_figure(expl)), key="shap_bar")

importance_order = list(np.argsort(-np.abs(expl.values).mean(axis=0)))
feature = st.selectbox("Dependence plot of", importance_order, key="shap_dependence",
                       format_func=lambda j: expl.feature_names[j])
partner = strongest_interaction(expl.values, expl.data, int(feature))
st.plotly_chart(present.figure(dependence_figure(expl, int(feature), partner)), key="shap_dependence_plot")

st.subheader("What a glass box says")
left, right = st.columns(2)
with left:
    if "logreg" in spec.model_names:
        logreg = cached.trained_model(sel.scenario, "logreg", sel.variant)
        coefs = logistic_coefficients(logreg.adapter.estimator, test.feature_names, spec.class_names,
                                      category_labels(test))
        unit = "per standard deviation" if coefs.per_standard_deviation else "per unit"
        st.plotly_chart(present.figure(coefficients_figure(coefs.feature_names, coefs.coefficients[0],
                                            f"Logistic regression: log-odds of '{coefs.classes[0]}' {unit}")),
                        key="glass_coefficients")
with right:
    depth = st.slider("Decision tree depth", 1, 5, 3, key="glass_depth")
    tree = cached.shallow_tree(sel.scenario, sel.variant, depth)
    st.caption(f"A depth-{tree.depth} tree ({tree.n_leaves} leaves) fitted on the train split: test accuracy "
               f"{tree.test_accuracy:.1%} (train {tree.train_accuracy:.1%}).")
    st.code(tree.rules, language=None)
