"""Show a set of samples (image grid, text list with the full post, or table rows) with their
true label, prediction and confidence. Used by the Home browser and the calibration bin list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from components.images import to_display
from core.bundle import DataBundle


def sample_label(i: int, y: np.ndarray, proba: np.ndarray, class_names: tuple[str, ...]) -> str:
    """'#12 ✗ true 3 → 8 (97%)': index, right/wrong, true and predicted class, confidence."""
    pred = int(proba[i].argmax())
    mark = "✓" if pred == y[i] else "✗"
    return f"#{i} {mark} true {class_names[y[i]]} → {class_names[pred]} ({proba[i, pred]:.0%})"


def render_samples(bundle: DataBundle, rows: np.ndarray, proba: np.ndarray, class_names: tuple[str, ...],
                   key: str, per_row: int = 8) -> None:
    """Render ``bundle``'s samples at positions ``rows`` (indices into the bundle)."""
    rows = np.asarray(rows, dtype=int)
    pred = proba.argmax(axis=1)
    if bundle.kind == "image":
        for start in range(0, len(rows), per_row):
            columns = st.columns(per_row)
            for column, i in zip(columns, rows[start : start + per_row]):
                column.image(to_display(bundle.x[i], 96), caption=sample_label(int(i), bundle.y, proba, class_names),
                             width="stretch")
        return
    frame = pd.DataFrame({
        "index": rows,
        "true": [class_names[bundle.y[i]] for i in rows],
        "predicted": [class_names[pred[i]] for i in rows],
        "confidence": proba[rows, pred[rows]],
        "correct": pred[rows] == bundle.y[rows],
    })
    if bundle.display is not None:
        frame = pd.concat([frame, bundle.display.iloc[rows].reset_index(drop=True)], axis=1)
    event = st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        key=key,
        on_select="rerun" if bundle.kind == "text" else "ignore",
        selection_mode="single-row",
        column_config={"confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0,
                                                                     format="%.2f")},
    )
    if bundle.kind == "text" and len(rows):
        chosen = event["selection"]["rows"] if event is not None else []
        i = int(rows[chosen[0]]) if chosen else int(rows[0])
        hint = "" if chosen else " · select a row above to read another"
        st.markdown(f"**Document {sample_label(i, bundle.y, proba, class_names)}**{hint}")
        # st.code shows the post verbatim (no markdown, no HTML, whitespace kept), so user text
        # cannot inject markup and header lines keep their layout.
        st.code(bundle.x[i], language=None, wrap_lines=True, height=360)
