"""Streamlit pieces shared by the uncertainty page's two bodies (built-in scenarios, uploaded models):
the clicked / remembered input, the most-disputed gallery and its 'inspect' button."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from components.images import to_display
from components.selection import clicked_index
from components.uncertainty_view import auroc_table, most_disputed, numbers, point_of
from core.uncertainty.report import SCORE_TITLES, SetResult, UncertaintyReport

PICK_KEY = "unc_pick"
TRAIN_KEY = "unc_train_request"  # the source a training button asked for, read (once) by the next run


def request_training(kind: str) -> None:
    """A training button's callback: select ``kind`` and let the next run train it (callbacks run before the
    widgets are drawn, so the source control may still be set here)."""
    st.session_state["unc_source"] = kind
    st.session_state[TRAIN_KEY] = kind


def training_requested(kind: str) -> bool:
    """True when the user asked this run to train ``kind``: a training button, or a link that named the source
    (the link is then the user's explicit choice). Read once: a later run asks again."""
    from components import links

    linked = links.from_link("unc_source")
    return st.session_state.pop(TRAIN_KEY, None) == kind or linked


def ask_to_train(kind: str, offer: str, label: str, note: str) -> None:
    """Say what training ``kind`` costs (``offer``), with the button that starts it, and stop the page until
    it is pressed."""
    st.info(offer, icon=":material/model_training:")
    st.button(label, key="unc_train", type="primary", on_click=request_training, args=(kind,),
              help="trains in the background with a progress bar (the other pages keep working), then shows this source")
    st.caption(note)
    st.stop()


def keep_valid(key: str, options: list) -> None:
    """Drop a widget value another scenario left behind (e.g. 'deep' from a built-in scenario)."""
    value = st.session_state.get(key)
    if isinstance(value, list):
        st.session_state[key] = [v for v in value if v in options]
    elif value is not None and value not in options:
        del st.session_state[key]


def picked_input(report: UncertaintyReport, points: dict[str, np.ndarray], shown: list[str], event: Any,
                 default_score: str) -> tuple[SetResult, str, int]:
    """(set result, set name, row) of the input to detail: the clicked point, else the one picked before,
    else the clean set's input with the highest ``default_score``."""
    picked = point_of(points, shown, clicked_index(event))
    if picked is not None:
        st.session_state[PICK_KEY] = picked
    pick_set, pick_row = st.session_state.get(PICK_KEY, ("clean", int(most_disputed(report, "clean", default_score, 1)[0])))
    if pick_set not in [r.name for r in report.sets]:
        pick_set, pick_row = "clean", 0
    result = report.get(pick_set)
    return result, pick_set, min(int(pick_row), len(result.set.bundle) - 1)


def gallery_controls(report: UncertaintyReport, set_titles: dict[str, str],
                     default_score: str) -> tuple[str, str, np.ndarray, SetResult]:
    """The 'most disputed' selectors: (set name, score name, its top 12 rows, the set's result)."""
    set_names = [r.name for r in report.sets]
    g1, g2 = st.columns(2)
    keep_valid("unc_gallery_set", set_names)
    keep_valid("unc_gallery_score", report.score_names)
    gallery_set = g1.selectbox("Of the set", set_names, key="unc_gallery_set", format_func=set_titles.get)
    gallery_score = g2.selectbox("Ranked by", report.score_names, index=report.score_names.index(default_score),
                                 key="unc_gallery_score", format_func=SCORE_TITLES.get)
    return gallery_set, gallery_score, most_disputed(report, gallery_set, gallery_score, 12), report.get(gallery_set)


def image_gallery(result: SetResult, top: np.ndarray, names: list[str], score: str, votes: bool = True) -> None:
    """The ``top`` images of a set, six per row, each captioned with prediction, mark, score (and votes)."""
    columns = st.columns(6)
    for j, row in enumerate(top):
        pred = int(result.mean[row].argmax())
        mark = "" if result.y is None else (" ✓" if pred == result.y[row] else f" ✗ (true {names[int(result.y[row])]})")
        caption = f"#{row} → {names[pred]}{mark}; {SCORE_TITLES[score].split(' (')[0]} {result.scores[score][row]:.3f}"
        if votes:
            counts = np.bincount(result.proba[:, row].argmax(axis=1), minlength=len(names))
            caption += "; votes " + ", ".join(f"{names[c]}:{v}" for c, v in enumerate(counts) if v)
        columns[j % 6].image(to_display(result.set.bundle.x[row], 96), width="stretch", caption=caption)


def inspect_button(gallery_set: str, top: np.ndarray) -> None:
    """Detail the gallery's first input (a rerun, so the details above show it)."""
    if len(top) and st.button("Inspect the most disputed input above", key="unc_inspect_top"):
        st.session_state[PICK_KEY] = (gallery_set, int(top[0]))
        st.rerun()


def auroc_section(report: UncertaintyReport, options: list[str], wording: dict[str, str], caption: str) -> None:
    """The 'AUROC for detecting' choice (``options`` of "errors" / "shift") and its table."""
    keep_valid("unc_auroc_of", options)
    which = st.radio("AUROC of each score for detecting", options, horizontal=True, key="unc_auroc_of",
                     format_func=wording.get)
    st.dataframe(numbers(auroc_table(report, which)), hide_index=True, width="stretch", key="unc_auroc")
    st.caption(caption)


def set_controls(set_names: list[str], set_titles: dict[str, str], colour_options: list[str]) -> tuple[list[str], str]:
    """The scatter's set picker and colouring: (sets shown, at least the clean one; colour by)."""
    s1, s2 = st.columns([3, 1.2])
    keep_valid("unc_sets", set_names)
    keep_valid("unc_colour", colour_options)
    shown = s1.multiselect("Sets", set_names, default=set_names, key="unc_sets", format_func=set_titles.get)
    colour_by = s2.radio("Colour by", colour_options, horizontal=True, key="unc_colour",
                         format_func={"correct": "right / wrong", "set": "stress set"}.get)
    return shown or ["clean"], colour_by


def slice_metrics(sel: Any, clean: SetResult, score: str = "mutual_information") -> None:
    """The active slice's accuracy, mean ``score`` and error AUROC on the clean test set, against the rest (the
    clean set is the test split, row for row); nothing without a slice."""
    from components import active_slice
    from core.uncertainty.report import rows_summary

    in_slice = active_slice.rows(sel, "test")
    if in_slice is None:
        return
    part = rows_summary(clean, in_slice, score)
    active_slice.caption(sel, "test", "samples (the clean set)")
    name = SCORE_TITLES[score].split(" (")[0]
    s1, s2, s3 = st.columns(3)
    s1.metric("Accuracy in the slice", "n/a" if np.isnan(part["accuracy_inside"]) else f"{part['accuracy_inside']:.1%}",
              delta=None if np.isnan(part["accuracy_outside"]) or np.isnan(part["accuracy_inside"]) else
              f"{(part['accuracy_inside'] - part['accuracy_outside']) * 100:+.1f} points vs the rest", delta_color="off")
    s2.metric(f"Mean {name} in the slice", f"{part['score_inside']:.3f}",
              delta=None if np.isnan(part["score_outside"]) else
              f"{part['score_inside'] - part['score_outside']:+.3f} vs the rest", delta_color="off")
    s3.metric(f"AUROC of {name} for the slice's mistakes",
              "n/a" if np.isnan(part["error_auroc_inside"]) else f"{part['error_auroc_inside']:.3f}",
              help=f"how well {name} ranks the mistakes inside the slice (n/a when the slice has no mistake, only "
                   "mistakes, or no labels)")
