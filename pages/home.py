"""Home: the selected model's card and a browser over the scenario's data."""

import numpy as np
import pandas as pd
import streamlit as st

from components import cached, state
from components.feedback import guarded
from components.figures.model_card import confidence_histogram, confusion_figure
from components.images import to_display
from core import browse

sel = state.current()
spec = sel.spec
variant_note = f" · variant **{sel.variant}**" if sel.variant else ""
st.title(spec.title)
st.caption(f"{spec.description}{variant_note}")

with guarded():
    splits = cached.scenario_data(sel.scenario, sel.variant)
    loaded = cached.trained_model(sel.scenario, sel.model, sel.variant)
info = loaded.adapter.info
test = splits["test"]
test_proba = cached.predictions(sel.scenario, sel.model, sel.variant, "test")
test_pred = test_proba.argmax(axis=1)
accuracy = float(np.mean(test_pred == test.y))

# -- model card --------------------------------------------------------------------------------
st.subheader(f"Model card: {info.name}")
st.write(info.description)
cols = st.columns(6)
cols[0].metric("Task", f"{len(info.class_names)}-class", help=f"{info.task} over: " + ", ".join(info.class_names))
cols[1].metric("Test accuracy", f"{accuracy:.1%}", help=f"on {len(test)} held-out samples")
cols[2].metric("Parameters", f"{info.n_parameters:,}",
               help="trainable weights (torch) or fitted coefficients / tree nodes (scikit-learn)")
cols[3].metric("Device", info.device)
cols[4].metric("Training time", f"{loaded.metrics['train_seconds']:.1f} s",
               help="measured when the model was trained; it is loaded from the cache since")
cols[5].metric("Fingerprint", info.fingerprint[:10], help=f"content hash of the fitted model: {info.fingerprint}")
details = {
    "Classes": ", ".join(info.class_names),
    "Input": info.input_kind,
    "Framework": info.framework,
    "Train / val / test": f"{len(splits['train'])} / {len(splits['val'])} / {len(test)}",
    "Validation accuracy": f"{loaded.metrics['val_accuracy']:.1%}",
}
st.table(pd.DataFrame({"": list(details.values())}, index=list(details.keys())))
if info.gradients_unavailable:
    st.info(info.gradients_unavailable, icon=":material/info:")

left, right = st.columns(2)
left.plotly_chart(confusion_figure(browse.confusion(test.y, test_pred, len(info.class_names)), info.class_names),
                  key="confusion")
confidence = test_proba[np.arange(len(test)), test_pred]
right.plotly_chart(confidence_histogram(confidence, test_pred == test.y), key="confidence_hist")

# -- dataset browser ---------------------------------------------------------------------------
st.subheader("Dataset browser")
c1, c2, c3, c4, c5 = st.columns([1, 2, 1.3, 1.5, 1])
split = c1.selectbox("Split", ["test", "val", "train"], key="home_split")
class_filter = c2.multiselect("Classes", list(range(len(info.class_names))), key="home_classes",
                              format_func=lambda i: info.class_names[i], placeholder="all classes")
filter_by = c3.radio("Class is the", browse.FILTER_BY, key="home_filter_by", horizontal=True,
                     format_func=lambda v: f"{v} label")
correctness = c4.radio("Predictions", browse.CORRECTNESS, key="home_correctness", horizontal=True)
sort = c5.selectbox("Order", browse.SORTS, key="home_sort")

bundle = splits[split]
proba = test_proba if split == "test" else cached.predictions(sel.scenario, sel.model, sel.variant, split)
pred = proba.argmax(axis=1)
with guarded():
    shown = browse.select_samples(bundle.y, proba, class_filter, correctness, sort, filter_by)

per_page = {"image": 48, "text": 25, "tabular": 50}[spec.kind]
n_pages = max(1, -(-len(shown) // per_page))
p1, p2 = st.columns([1, 5])
page = p1.number_input("Page", min_value=1, max_value=n_pages, value=1, step=1, key="home_page")
rows, n_pages = browse.page_of(shown, int(page), per_page)
p2.caption(f"{len(shown)} of {len(bundle)} samples match · page {min(int(page), n_pages)} of {n_pages}")


def label(i: int) -> str:
    mark = "✓" if pred[i] == bundle.y[i] else "✗"
    return f"#{i} {mark} true {info.class_names[bundle.y[i]]} → {info.class_names[pred[i]]} ({proba[i, pred[i]]:.0%})"


if len(rows) == 0:
    st.info("No sample matches these filters.", icon=":material/filter_alt_off:")
elif spec.kind == "image":
    per_row = 8
    for start in range(0, len(rows), per_row):
        columns = st.columns(per_row)
        for column, i in zip(columns, rows[start : start + per_row]):
            column.image(to_display(bundle.x[i], 96), caption=label(int(i)), width="stretch")
else:
    frame = pd.DataFrame({
        "index": rows,
        "true": [info.class_names[bundle.y[i]] for i in rows],
        "predicted": [info.class_names[pred[i]] for i in rows],
        "confidence": proba[rows, pred[rows]],
        "correct": pred[rows] == bundle.y[rows],
    })
    if bundle.display is not None:
        frame = pd.concat([frame, bundle.display.iloc[rows].reset_index(drop=True)], axis=1)
    event = st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        key="home_table",
        on_select="rerun" if spec.kind == "text" else "ignore",
        selection_mode="single-row",
        column_config={"confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0, format="%.2f")},
    )
    if spec.kind == "text":
        chosen = event["selection"]["rows"] if event is not None else []
        i = int(rows[chosen[0]]) if chosen else int(rows[0])
        st.markdown(f"**Document {label(i)}**" + ("" if chosen else " · select a row above to read another"))
        # st.code shows the post verbatim (no markdown, no HTML, whitespace kept), so user text
        # cannot inject markup and header lines keep their layout.
        st.code(bundle.x[i], language=None, wrap_lines=True, height=360)
