"""The embeddings page over every precomputed point: a density raster of all N, a sampled WebGL overlay, and
selections that take every point inside a box or lasso (core/precompute/maps.py does the work).

Offered when the store holds the layer's activations for exactly the mapped rows (the precompute's key: the
model's fingerprint, the rows' fingerprint, the layer). Which samples a row stands for:

- the precompute covers the mapped split (its rows' fingerprint is this split's): row i is sample i, with
  its true label, the page's predictions and its input (thumbnails, table rows);
- a result published for these fingerprints with another row count (``publish_arrays``: the benchmark's
  synthetic million rows) holds rows that are not this split's samples: they are listed as index,
  predicted class and confidence (from the published ``predictions``), with no input and no true label,
  and the page says so. Nothing is invented for them.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from components import cached, present
from components.embedding_selection import region_rows, selected_rows, summarise
from components.figures.embeddings import class_counts_figure, density_map_figure, palette_rgb, selection_histogram
from components.samples import render_samples

KEY = "emb_pmap"
PAGE_ROWS = 32


def store_url() -> str:
    from core.store import default_store

    store = default_store()
    return str(getattr(store, "url", None) or store.root)


def offer(adapter, bundle, layer: str, where=st):
    """The published activations of the mapped rows at ``layer`` when there are some and the user keeps
    "all precomputed points" on (a toggle, on by default); else None (the page draws its own map)."""
    found = cached.precomputed_activations(store_url(), adapter.fingerprint, bundle.fingerprint, layer)
    if found is None:
        return None
    on = where.toggle(f"Map all {found.rows:,} precomputed points", True, key="emb_precomputed",
                      help="the layer's activations published by `python -m core precompute` for these rows: a "
                           "density image of every point under a sample you can hover and click; a box or lasso "
                           "selects every point inside it")
    return found if on else None


def render(sel, adapter, bundle, layer: str, found, proba_of_split) -> None:
    """Draw the map of every precomputed point, and what is selected in it."""
    class_names = tuple(adapter.class_names)
    names = np.asarray(class_names, dtype=object)
    url = store_url()
    points, predicted = cached.precomputed_points(found.key, layer, found, url, adapter.fingerprint,
                                                  bundle.fingerprint)
    n = points.n
    same_rows = n == len(bundle)
    if same_rows:
        proba = proba_of_split()
        y = np.asarray(bundle.y)
        pred = proba.argmax(axis=1)
        confidence = proba[np.arange(n), pred].astype(np.float32)
    else:
        y, proba = None, None
        pred, confidence = predicted if predicted is not None else (None, None)
        st.caption(f"These {n:,} precomputed rows are not this split's {len(bundle):,} samples: each is listed by "
                   "its index, predicted class and confidence (from the published predictions), without an input "
                   "or a true label.")
    options = {k: v for k, v in (("true label", y), ("predicted label", pred)) if v is not None}
    colour = st.segmented_control("Colour by", list(options) or ["density"], key="emb_pmap_colour",
                                  default=(list(options) or ["density"])[0]) or (list(options) or ["density"])[0]
    labels = options.get(colour)
    raster, overlay = cached.precomputed_view(found.key, colour, len(class_names), points.coords, labels)
    from core.precompute.maps import raster_rgb

    image = raster_rgb(raster, palette_rgb(len(class_names)) if labels is not None else np.array([[52, 58, 64]]))
    unknown = np.full(len(overlay), "?", dtype=object)
    event_state = st.session_state.get(KEY)
    clicked = _clicked(event_state)
    fig = density_map_figure(
        image, raster.x0, raster.y0, raster.step, coords=points.coords[overlay], rows=overlay,
        codes=None if labels is None else labels[overlay], category_names=class_names,
        true_names=names[y[overlay]] if y is not None else unknown,
        pred_names=names[pred[overlay]] if pred is not None else unknown,
        confidence=confidence[overlay] if confidence is not None else np.zeros(len(overlay), dtype=np.float32),
        title=f"PCA of {layer}: all {n:,} precomputed points (image: density; points: a sample of {len(overlay):,})",
        colour_name=colour, highlight=points.coords[[clicked]] if clicked is not None and clicked < n else None)
    event = st.plotly_chart(present.figure(fig), width="stretch", key=KEY, on_select="rerun",
                            selection_mode=("points", "box", "lasso"))
    ex = points.explained
    st.caption(f"PCA over every point (variance explained: {ex[0]:.1%} + {ex[1]:.1%}), computed in "
               f"{points.seconds:.1f} s the first time, from the store since. A box or lasso selects every point "
               "inside it, not only the drawn sample. t-SNE and UMAP: switch the toggle off (they map this split "
               "here).")

    rows = region_rows(event, points.coords)
    if rows is None:
        rows = selected_rows(event)
    if len(rows) == 0:
        st.info("Box- or lasso-select a region (toolbar top right of the map) for every point inside it, or click "
                "a drawn point.", icon=":material/touch_app:")
        return
    st.subheader(f"Selection: {len(rows):,} of {n:,} points")
    left, right = st.columns([1, 2])
    if y is not None and pred is not None:
        summary = summarise(rows, y, pred, len(class_names))
        left.metric("Accuracy of the selection", f"{summary.accuracy:.1%}")
        right.plotly_chart(present.figure(selection_histogram(summary.correct, summary.wrong, class_names,
                                                              "True class of the selected points")),
                           key="emb_pmap_hist")
    elif pred is not None:
        counts = np.bincount(pred[rows], minlength=len(class_names))
        left.metric("Most frequent predicted class", class_names[int(counts.argmax())])
        right.plotly_chart(present.figure(class_counts_figure(counts, class_names,
                                                              "Predicted class of the selected points")),
                           key="emb_pmap_hist")
    pages = max(1, -(-len(rows) // PAGE_ROWS))
    if st.session_state.get("emb_pmap_page", 1) > pages:
        st.session_state["emb_pmap_page"] = 1
    page = int(left.number_input(f"Page (of {pages:,})", 1, pages, key="emb_pmap_page"))
    shown = rows[(page - 1) * PAGE_ROWS: page * PAGE_ROWS]
    st.caption(f"Samples {(page - 1) * PAGE_ROWS + 1:,}-{(page - 1) * PAGE_ROWS + len(shown):,} of the "
               f"{len(rows):,} selected (numbers: rows of the map)")
    if same_rows:
        render_samples(bundle, shown, proba, class_names, key="emb_pmap_samples", per_row=8)
    else:
        import pandas as pd

        st.dataframe(pd.DataFrame({
            "row": shown,
            "predicted": names[pred[shown]] if pred is not None else "?",
            "confidence": confidence[shown] if confidence is not None else np.nan,
            "input": "not stored (precomputed row beyond the dataset)",
        }), hide_index=True, width="stretch", key="emb_pmap_table")


def _clicked(event) -> int | None:
    rows = selected_rows(event)
    return int(rows[0]) if len(rows) == 1 and region_rows(event, np.zeros((0, 2))) is None else None
