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


JUMP_KEY = "emb_jump"


def request_jump(kind: str, index: int, y_test: np.ndarray, proba_test: np.ndarray) -> None:
    """Button callback: set the explanation page's widgets to test sample ``index``; the page then switches.

    Callbacks cannot switch pages, so this records the target in session state and
    :func:`follow_jump` (called at the top of the embeddings page) switches in the run that follows.
    """
    if kind == "image":
        filters = image_page_filters(index, y_test, proba_test)
        if filters is None:
            st.session_state[JUMP_KEY] = ("warning", f"Test image {index} is not among the 500 images the image page "
                                          "can list; open it there by filtering on its class.")
            return
        st.session_state.update({"img_source": "Test images", **filters, "img_picks": [index]})
    elif kind == "text":
        st.session_state.update({"text_source": "A test document", "text_classes": [], "text_correctness": "all",
                                 "text_sort": "index", "text_doc": index})
    else:
        return
    st.session_state[JUMP_KEY] = ("page", PAGES[kind])


def follow_jump() -> None:
    """Switch to the page a jump was requested for (or show why it could not be)."""
    request = st.session_state.pop(JUMP_KEY, None)
    if request is None:
        return
    what, value = request
    if what == "page":
        st.switch_page(value)
    st.warning(value, icon=":material/warning:")
