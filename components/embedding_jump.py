"""Open the image or text explanation page on a sample picked in the map."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import browse

PAGES = {"image": "pages/images.py", "text": "pages/text.py"}


def image_page_filters(index: int, y: np.ndarray, proba: np.ndarray, limit: int = 500) -> dict | None:
    """Filters of the image page under which test image ``index`` is among the ``limit`` images it offers.

    The image page lists at most ``limit`` matching images; the narrowest filters (its true class and
    whether it was predicted right) are tried with each order until one lists it.
    """
    pred = proba.argmax(axis=1)
    correctness = "correct" if pred[index] == y[index] else "incorrect"
    for sort in browse.SORTS:
        shown = browse.select_samples(y, proba, [int(y[index])], correctness, sort)[:limit]
        if index in shown:
            return {"img_classes": [int(y[index])], "img_correctness": correctness, "img_sort": sort}
    return None


def jump_to_explanation(kind: str, index: int, y_test: np.ndarray, proba_test: np.ndarray) -> None:
    """Set the explanation page's widgets to test sample ``index`` and switch to that page."""
    if kind == "image":
        filters = image_page_filters(index, y_test, proba_test)
        if filters is None:
            st.warning(f"Test image {index} is not among the 500 images the image page can list; open it there by "
                       "filtering on its class.", icon=":material/warning:")
            return
        st.session_state.update({"img_source": "Test images", **filters, "img_picks": [index]})
    elif kind == "text":
        st.session_state.update({"text_source": "A test document", "text_classes": [], "text_correctness": "all",
                                 "text_sort": "index", "text_doc": index})
    else:
        return
    st.switch_page(PAGES[kind])
