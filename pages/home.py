"""Home: the selected model's card and a browser over the scenario's data."""

import numpy as np
import streamlit as st

from components import active_slice, cached, present, state
from components.feedback import guarded
from components.figures.model_card import confidence_histogram, confusion_figure
from components.samples import render_samples
from core import browse
from core.upload import byom

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
# An unlabelled upload has no accuracy: its predictions stand in for the labels (NaN in its metrics).
labelled = not np.isnan(loaded.metrics.get("val_accuracy", 0.0))
uploaded = byom.is_upload(sel.scenario)
if labelled:
    in_slice = active_slice.rows(sel, "test")
    if in_slice is None or not len(in_slice):
        cols[1].metric("Test accuracy", f"{accuracy:.1%}", help=f"on {len(test)} held-out samples")
    else:
        in_accuracy = float(np.mean(test_pred[in_slice] == test.y[in_slice]))
        cols[1].metric("Test accuracy in the slice", f"{in_accuracy:.1%}", delta_color="off",
                       delta=f"{(in_accuracy - accuracy) * 100:+.1f} pts vs all",
                       help=f"on the {len(in_slice):,} test samples of the active slice; {accuracy:.1%} on all "
                            f"{len(test):,}")
else:
    cols[1].metric("Test accuracy", "no labels", help="the uploaded data has no labels, so accuracy cannot be measured; "
                   "the pages use the model's predictions where a true class is needed")
cols[2].metric("Parameters", f"{info.n_parameters:,}",
               help="trainable weights (torch) or fitted coefficients / tree nodes (scikit-learn)")
cols[3].metric("Device", info.device)
if uploaded:
    cols[4].metric("Training time", "uploaded", help="TrustLens did not train this model: it was uploaded")
else:
    cols[4].metric("Training time", f"{loaded.metrics['train_seconds']:.1f} s",
                   help="measured when the model was trained; it is loaded from the cache since")
cols[5].metric("Validation accuracy", f"{loaded.metrics['val_accuracy']:.1%}" if labelled else "no labels",
               help=f"on {len(splits['val'])} samples held out from training (used to fit recalibrators)")
details = {
    "Classes": ", ".join(info.class_names),
    "Input": info.input_kind,
    "Framework": info.framework,
    "Train / val / test": f"{len(splits['train'])} / {len(splits['val'])} / {len(test)}",
    "Fingerprint": f"`{info.fingerprint[:16]}` (content hash of the fitted model; caches are keyed by it)",
}
st.markdown("  \n".join(f"**{name}:** {value}" for name, value in details.items()))
if info.gradients_unavailable:
    st.info(info.gradients_unavailable, icon=":material/info:")

# The test split's confusion and confidence, or the active slice's part of it.
charted = active_slice.rows(sel, "test")
charted = np.arange(len(test)) if charted is None else charted
active_slice.caption(sel, "test")
left, right = st.columns(2)
where = "test split" if active_slice.active() is None else "test samples in the slice"
left.plotly_chart(present.figure(confusion_figure(browse.confusion(test.y[charted], test_pred[charted],
                                                                   len(info.class_names)), info.class_names,
                                                  f"Confusion matrix ({where})")),
                  key="confusion")
confidence = test_proba[charted, test_pred[charted]]
right.plotly_chart(present.figure(confidence_histogram(confidence, test_pred[charted] == test.y[charted], where)),
                   key="confidence_hist")

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
with guarded():
    shown = browse.select_samples(bundle.y, proba, class_filter, correctness, sort, filter_by)
    shown = np.asarray(active_slice.keep(sel, shown, split), dtype=int)
if split != "test":
    active_slice.caption(sel, split)

per_page = {"image": 48, "text": 25, "tabular": 50}[spec.kind]
n_pages = max(1, -(-len(shown) // per_page))
p1, p2 = st.columns([1, 5])
page = p1.number_input("Page", min_value=1, max_value=n_pages, value=1, step=1, key="home_page")
rows, n_pages = browse.page_of(shown, int(page), per_page)
p2.caption(f"{len(shown)} of {len(bundle)} samples match · page {min(int(page), n_pages)} of {n_pages}")

if len(rows) == 0:
    st.info("No sample matches these filters.", icon=":material/filter_alt_off:")
else:
    render_samples(bundle, rows, proba, info.class_names, key="home_table")
