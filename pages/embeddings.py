"""Embeddings: 2-D maps (PCA, t-SNE, UMAP) of a hidden layer's activations, linked to the samples.

Colour by an uncertainty score of another page: put a dict in ``st.session_state["uncertainty_scores"]``
of the form ``{"scenario": ..., "model": ..., "variant": ..., "split": "test", "scores": {name: array}}``
(one value per sample of that split; without "split" the test split, as the uncertainty page publishes);
the scores whose scenario, model and variant match are offered when the map shows that split.
"""

import html
import json

import numpy as np
import streamlit as st

from components import active_slice, cached, precomputed_map, present, state
from components.embedding_jump import follow_jump
from components.embedding_selection import selected_rows, summarise
from components.feedback import guarded, progress_status, transient_progress
from components.figures.embeddings import map_figure, selection_histogram
from components.samples import render_samples, sample_label
from core.embeddings import (
    METRICS,
    EmbeddingParams,
    collect_activations,
    default_layer,
    embed_activations,
    fitted_map,
    is_computed,
    neighbours_in_activations,
    transform_points,
)
from core.embeddings.export import map_table, to_bytes
from core.lecture import defaults

METHOD_TITLES = {"pca": "PCA (instant)", "tsne": "t-SNE", "umap": "UMAP"}
SPLIT_TITLES = {"all": "all splits", "train": "train", "val": "validation", "test": "test"}
MAP_KEY = "emb_map"
GALLERY = 32

sel = state.current()
spec = sel.spec
st.title("Embeddings")
st.caption("Your data has hundreds of dimensions: project a hidden layer's activations to 2-D and look. Points that "
           "the model sees as alike land together. Click a point to see the sample and its nearest neighbours in "
           "activation space; box- or lasso-select a region (toolbar top right of the map) for its class histogram, "
           "accuracy and a gallery.")
cached.umap_warmup()  # compile UMAP off the request path while the user looks at the PCA map
follow_jump()  # "Explain this prediction" was pressed in the previous run
present.example_bar("embeddings", sel)

with guarded():
    loaded = cached.trained_model(sel.scenario, sel.model, sel.variant)
adapter = loaded.adapter
layers = adapter.layer_names()
if not layers:
    st.info(f"Model {sel.model!r} exposes no layers to map; pick another model in the sidebar.",
            icon=":material/layers_clear:")
    st.stop()

# -- controls --------------------------------------------------------------------------------------
with present.controls('Layer, points and projection'):
    c1, c2, c3, c4 = st.columns([1.3, 1.1, 1.6, 1.6])
    if st.session_state.get("emb_layer") not in layers:
        st.session_state["emb_layer"] = default_layer(adapter)
    layer = c1.selectbox("Layer", layers, key="emb_layer", help="default: the last hidden layer")
    n_total = sum(len(b) for b in cached.scenario_data(sel.scenario, sel.variant).values())
    if st.session_state.get("emb_split") not in SPLIT_TITLES:
        st.session_state["emb_split"] = defaults.embedding_split(n_total, slow=defaults.slow_text_model(adapter))
    split = c2.selectbox("Points", list(SPLIT_TITLES), key="emb_split", format_func=SPLIT_TITLES.get,
                         help=f"'all splits' maps every sample of the dataset; it opens on all of them up to "
                              f"{defaults.EMBEDDING_ALL_SPLITS_UP_TO:,} samples, else (or for a transformer on the "
                              f"CPU) on the test split (this dataset: {n_total:,})")
    method = c3.segmented_control("Method", list(METHOD_TITLES), default="pca", key="emb_method",
                                  format_func=METHOD_TITLES.get) or "pca"

    with st.expander("Parameters", icon=":material/tune:"):
        p1, p2, p3, p4 = st.columns(4)
        standardize = p1.toggle("Standardise units", False, key="emb_standardize",
                                help="scale every unit to unit variance before projecting")
        pca_dims = p1.number_input("PCA pre-reduction (dims, 0 = off)", 0, 512, 50, step=10, key="emb_pca_dims")
        perplexity = p2.slider("t-SNE perplexity", 2.0, 100.0, 30.0, 1.0, key="emb_perplexity")
        exaggeration = p2.slider("t-SNE exaggeration (main phase)", 1.0, 4.0, 1.0, 0.25, key="emb_exaggeration",
                                 help="above 1 tightens clusters (openTSNE's exaggeration)")
        n_iter = p3.slider("t-SNE iterations (after 100 exaggerated ones)", 100, 1500, 250, 25, key="emb_iter")
        seed = p3.number_input("Seed", 0, 10_000, 0, key="emb_seed")
        n_neighbors = p4.slider("UMAP n_neighbors", 2, 200, 15, key="emb_neighbors")
        min_dist = p4.slider("UMAP min_dist", 0.0, 1.0, 0.1, 0.05, key="emb_min_dist")
        metric = p4.selectbox("UMAP metric", METRICS, key="emb_metric")

params = EmbeddingParams(method=method, standardize=standardize, pca_dims=int(pca_dims), perplexity=float(perplexity),
                         exaggeration=float(exaggeration), n_iter=int(n_iter), n_neighbors=int(n_neighbors),
                         min_dist=float(min_dist), metric=metric, seed=int(seed))

# -- data, activations, predictions ------------------------------------------------------------------
with guarded():
    bundle, split_of, position = cached.embedding_points(sel.scenario, sel.variant, split)
    # Activations of these rows published by `python -m core precompute`: the map of all of them instead.
    found = precomputed_map.offer(adapter, bundle, layer)
    if found is not None:
        precomputed_map.render(sel, adapter, bundle, layer, found,
                               lambda: cached.embedding_predictions(sel.scenario, sel.model, sel.variant, split))
        st.stop()
    proba = cached.embedding_predictions(sel.scenario, sel.model, sel.variant, split)
    with transient_progress(f"Activations of {layer}") as progress:
        acts = collect_activations(adapter, bundle, layer, progress=progress)
y = np.asarray(bundle.y)
pred = proba.argmax(axis=1)
confidence = proba[np.arange(len(pred)), pred]
class_names = tuple(adapter.class_names)
names = np.asarray(class_names, dtype=object)
keys = {"layer": layer, "model_fingerprint": adapter.fingerprint, "data_fingerprint": bundle.fingerprint}

# -- colour options ----------------------------------------------------------------------------------
entropy = -(proba * np.log(np.clip(proba, 1e-12, 1.0))).sum(axis=1)
top2 = np.sort(proba, axis=1)[:, -2:] if proba.shape[1] > 1 else np.zeros((len(proba), 2))
colours = {
    "true label": (y, True, class_names),
    "predicted label": (pred, True, class_names),
    "correct / wrong": ((pred != y).astype(int), True, ("correct", "wrong")),
    "confidence": (confidence, False, ()),
    "entropy of the prediction": (entropy, False, ()),
    "margin (top-1 minus top-2)": (top2[:, 1] - top2[:, 0], False, ()),
}
shared = st.session_state.get("uncertainty_scores")
if isinstance(shared, dict) and shared.get("scenario") == sel.scenario and shared.get("model") == sel.model \
        and shared.get("variant") == sel.variant and shared.get("split", "test") == split:
    for score_name, values in (shared.get("scores") or {}).items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape == (len(bundle),):
            colours[f"uncertainty: {score_name}"] = (values, False, ())
colour_by = c4.selectbox("Colour by", list(colours), key="emb_colour")
colour, categorical, categories = colours[colour_by]


def draw(coords, title, *, key=None, highlight=None, neighbours=None, overlay=None, target=None):
    fig = map_figure(coords, colour=colour, colour_name=colour_by, categorical=categorical,
                     category_names=categories, split_text=np.char.add(split_of.astype(str),
                                                                       np.char.add(" ", position.astype(str))),
                     true_names=names[y], pred_names=names[pred], confidence=confidence, title=title,
                     highlight=highlight, neighbours=neighbours, overlay=overlay)
    where = target if target is not None else st
    if key is None:
        where.plotly_chart(present.figure(fig), width="stretch")
        return None
    return where.plotly_chart(present.figure(fig), width="stretch", key=key, on_select="rerun",
                              selection_mode=("points", "box", "lasso"))


n_points = f"{len(bundle):,} points, {SPLIT_TITLES[split]}"
slot = st.empty()
with guarded():
    if method != "pca" and not is_computed(params, **keys):
        # First paint is immediate: the PCA map now, then the layout as it converges.
        pca = embed_activations(acts, y, EmbeddingParams(standardize=standardize, pca_dims=int(pca_dims)), **keys)
        draw(pca.coords, f"PCA of {layer} ({n_points}) while {METHOD_TITLES[method]} runs…", target=slot)
        last = [0.0]

        def show_layout(iteration: int, coords: np.ndarray) -> None:
            import time

            now = time.perf_counter()
            if now - last[0] >= 1.5:  # a 70,000-point figure costs ~0.3 s to send: not every callback
                last[0] = now
                draw(coords, f"{METHOD_TITLES[method]} of {layer}: iteration {iteration}", target=slot)

        with progress_status(f"{METHOD_TITLES[method]} of {n_points} (first time only, then cached)") as progress:
            embedding = embed_activations(acts, y, params, progress=progress, on_layout=show_layout, **keys)
    else:
        embedding = embed_activations(acts, y, params, **keys)

# -- adversarial overlay -----------------------------------------------------------------------------
overlay = None
fgsm_ok = adapter.torch_module() is not None and spec.kind == "image"
with st.expander("Adversarial examples (FGSM) placed into this map", icon=":material/bug_report:"):
    if not fgsm_ok:
        st.caption(f"FGSM needs a torch image model; {sel.model!r} on {spec.title} is not one.")
        show_adv = False
    else:
        a1, a2, a3 = st.columns([1, 1.4, 1.4])
        show_adv = a1.toggle("Overlay", False, key="emb_adv")
        epsilon = a2.slider("epsilon (pixel step)", 0.0, 0.5, 0.1, 0.01, key="emb_eps")
        n_adv = a3.number_input("Attack the first N mapped points", 10, 2000, 200, step=10, key="emb_adv_n")
    if show_adv:
        from core.trust.adversarial import fgsm

        rows_adv = np.arange(min(int(n_adv), len(bundle)))
        with guarded(stop=False), transient_progress("FGSM and placement") as progress:
            subset = bundle[rows_adv]
            x_adv = fgsm(adapter, subset.x, subset.y, float(epsilon), progress=progress)
            fitted = fitted_map(acts, y, params, progress=progress, **keys)
            adv_coords = transform_points(fitted, adapter.activations(x_adv, layer, batch_size=256))
            adv_pred = adapter.predict(x_adv, batch_size=256)
            flipped = adv_pred != pred[rows_adv]
            texts = np.asarray([f"adversarial #{r}: {names[pred[r]]} → {names[p]}" for r, p in zip(rows_adv, adv_pred)])
            overlay = {"coords": adv_coords, "text": texts, "name": f"FGSM ε={epsilon:g}"}
            st.caption(f"ε = {epsilon:g}: the prediction changed for {int(flipped.sum())} of {len(rows_adv)} attacked "
                       f"points (accuracy {np.mean(adv_pred == y[rows_adv]):.1%} vs {np.mean(pred[rows_adv] == y[rows_adv]):.1%} "
                       "clean). Crosses: where their activations land in the map (placed with the map's own transform).")

# -- uploaded inputs ----------------------------------------------------------------------------------
uploaded = None
if spec.kind == "image":
    with st.expander("Your own images placed into this map", icon=":material/upload:"):
        files = st.file_uploader("Images (PNG, JPEG, BMP, GIF)", type=["png", "jpg", "jpeg", "bmp", "gif"],
                                 accept_multiple_files=True, key="emb_upload",
                                 help="resized to the model's input; dark-on-white digits are inverted automatically")
        if files:
            from core.upload.image_upload import load_image

            with guarded(stop=False), transient_progress("Placing your images") as progress:
                shape = tuple(int(v) for v in np.asarray(bundle.x).shape[1:])
                images = np.stack([load_image(f.getvalue(), shape).x for f in files])
                fitted = fitted_map(acts, y, params, progress=progress, **keys)
                up_coords = transform_points(fitted, adapter.activations(images, layer, batch_size=256))
                up_proba = adapter.predict_proba(images)
                up_pred = up_proba.argmax(axis=1)
                lines = [f"{f.name[:60]}: predicted {names[p]} ({up_proba[k, p]:.0%})"
                         for k, (f, p) in enumerate(zip(files, up_pred))]
                # File names are user text: Plotly's hover labels render HTML tags, so escape them there,
                # and show them on the page as plain text (st.text, no markdown).
                uploaded = {"coords": up_coords, "text": np.asarray([html.escape(t) for t in lines], dtype=object),
                            "name": "your images", "symbol": "star", "color": "#f03e3e", "size": 16}
                st.text("\n".join(lines))

# -- the active slice, ringed on the map ---------------------------------------------------------------
highlighted = None
if active_slice.active() is not None:
    in_slice = np.zeros(len(bundle), dtype=bool)
    for name in np.unique(split_of):
        here = split_of == name
        in_slice[here] = np.isin(position[here], active_slice.rows(sel, str(name)))
    active_slice.caption(sel, "test")
    st.caption(f"Ringed on the map: the {int(in_slice.sum()):,} of {len(bundle):,} mapped points in the slice.")
    inside = np.flatnonzero(in_slice)
    highlighted = {"coords": embedding.coords[inside], "name": "active slice", "symbol": "circle-open",
                   "color": "#111111", "size": 9,
                   "text": np.asarray([f"slice: {split_of[i]} {position[i]} ({names[y[i]]})" for i in inside], dtype=object)}

# -- the map -----------------------------------------------------------------------------------------
event_state = st.session_state.get(MAP_KEY)
rows = selected_rows(event_state)
point = int(rows[0]) if len(rows) == 1 else None
if point is not None:
    st.session_state["emb_point"] = point
point_choice = st.session_state.get("emb_point")
if point_choice is not None and not 0 <= point_choice < len(bundle):
    point_choice = None
k_nn = int(st.session_state.get("emb_k", 8))
neighbours = neighbours_in_activations(acts, point_choice, k_nn) if point_choice is not None else None
title = f"{METHOD_TITLES[method].split(' ')[0]} of {layer} ({n_points})"
event = draw(embedding.coords, title, key=MAP_KEY, highlight=point_choice, neighbours=neighbours,
             overlay=[o for o in (highlighted, overlay, uploaded) if o is not None], target=slot)
rows = selected_rows(event)

q = embedding.quality
m1, m2, m3, m4 = st.columns(4)
m1.metric("Trustworthiness", f"{q.trustworthiness:.3f}",
          help=f"are the map's {q.k} nearest neighbours of a point also near in the original space? (1 = always; "
               f"measured on {q.n_queries:,} query points)")
m2.metric(f"{q.k}-NN accuracy in the map", f"{q.knn_accuracy_map:.3f}",
          delta=f"{q.knn_accuracy_map - q.knn_accuracy_original:+.3f} vs original", delta_color="off")
m3.metric(f"{q.k}-NN accuracy in the original space", f"{q.knn_accuracy_original:.3f}",
          help=f"{acts.shape[1]} dimensions{' (standardised)' if standardize else ''}")
m4.metric("Computed in", f"{embedding.seconds:.1f} s", help="the projection alone, the first time; reopened from the cache since")

# -- export ------------------------------------------------------------------------------------------
table = map_table(embedding.coords, y, proba, class_names, split_of, position,
                  extra={k: v[0] for k, v in colours.items() if not v[1]})
stem = f"{sel.scenario}_{sel.model}_{layer}_{method}_{split}"
e1, e2, _ = st.columns([1, 1, 3])
# Callables: the bytes are built only when a button is pressed, not on every rerun.
e1.download_button("Coordinates as CSV", lambda: to_bytes(table, "csv"), f"{stem}.csv", mime="text/csv",
                   icon=":material/download:", key="emb_csv", on_click="ignore")
e2.download_button("Coordinates as Parquet", lambda: to_bytes(table, "parquet"), f"{stem}.parquet",
                   mime="application/octet-stream", icon=":material/download:", key="emb_parquet", on_click="ignore")

# -- what is selected --------------------------------------------------------------------------------
if len(rows) > 1:
    summary = summarise(rows, y, pred, len(class_names))
    h1, h2 = st.columns([3, 1.3], vertical_alignment="bottom")
    h1.subheader(f"Selection: {summary.n:,} points")
    has_test = bool(np.any(split_of[rows] == "test"))
    h2.button("Make it the slice", icon=":material/filter_alt:", key="emb_save_slice", width="stretch",
              on_click=active_slice.save_map_selection, args=(sel, split_of[rows].tolist(), position[rows].tolist()),
              disabled=not has_test,
              help="the selected samples become the active slice (`map selection` == true) on every page of this "
                   "session" if has_test else "the selection holds no test sample, and the pages list test samples")
    s1, s2 = st.columns([1, 2])
    s1.metric("Accuracy of the selection", f"{summary.accuracy:.1%}")
    s1.metric("Most frequent true class", class_names[summary.majority],
              help=f"{int(summary.correct[summary.majority] + summary.wrong[summary.majority])} of {summary.n}")
    s1.caption("Splits: " + ", ".join(f"{s} {int(np.sum(split_of[rows] == s))}" for s in np.unique(split_of[rows])))
    s2.plotly_chart(present.figure(selection_histogram(summary.correct, summary.wrong, class_names,
                                        "True class of the selected points")), key="emb_hist")
    shown = rows[np.argsort(pred[rows] == y[rows], kind="stable")][:GALLERY]  # mistakes first
    st.caption(f"Gallery: {len(shown)} of {summary.n} selected, mistakes first (numbers: rows of the map)")
    render_samples(bundle, shown, proba, class_names, key="emb_gallery", per_row=8)
elif point_choice is not None:
    i = point_choice
    st.subheader(f"Point #{i}: {split_of[i]} sample {position[i]}")
    left, right = st.columns([1, 2.6])
    with left:
        render_samples(bundle, np.asarray([i]), proba, class_names, key="emb_sample", per_row=1)
        st.markdown(f"**{sample_label(i, y, proba, class_names)}**")
        page = {"image": "pages/images.py", "text": "pages/text.py"}.get(spec.kind)
        if page and split_of[i] == "test":
            from components.embedding_jump import request_jump

            test_rows = np.flatnonzero(split_of == "test")  # in position order within the test split
            st.button("Explain this prediction", icon=":material/arrow_forward:", key="emb_explain",
                      on_click=request_jump, args=(spec.kind, int(position[i]), y[test_rows], proba[test_rows]))
        elif page:
            st.caption("The explanation pages show the test split: pick 'test' points to jump there.")
    with right:
        st.number_input("Nearest neighbours in activation space", 1, 32, 8, key="emb_k")
        st.caption(f"The {k_nn} samples whose {layer} activations are closest to #{i} (explanation by examples; "
                   "red rings on the map)")
        render_samples(bundle, neighbours, proba, class_names, key="emb_neighbours", per_row=4)
else:
    st.info("Click a point for its sample and nearest neighbours, or box / lasso-select a region for a summary.",
            icon=":material/touch_app:")
st.caption("Parameters of this map: " + json.dumps(params.key()))
