"""The active slice: one filter, typed in the sidebar, that every page applies to what it lists and measures.

The sidebar's "Slice" box holds the text (``sex == Female and age < 30``, the grammar of
:mod:`core.slices.conditions`), linked as ``slice`` in every deep link. A text that does not parse,
names a missing column, compares a string with a number or matches no test sample is refused with
its message, and the pages stay on the previous slice. A slice written for another scenario (its
columns are not here) is said in the sidebar and not applied.

A selection saved from the Embeddings map becomes the column ``map selection`` (true for its
samples) of this session's frames, and the slice ```map selection` == true``. It lives in the
session: a link carries the slice's text, not the points.

Pages ask :func:`rows` for the samples of a split inside the slice (None: no slice in force) and
:func:`keep` to filter their pick lists; :func:`caption` says what is filtered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from components import cached, state

INPUT_KEY = state.SLICE_KEY  # the sidebar's text box (and the deep link's ``slice``)
APPLIED_KEY = "tl_slice_applied"  # the last text that applied to the selection's test split


@dataclass(frozen=True)
class Active:
    text: str  # the slice in its canonical form


def set_slice(text: str) -> None:
    """Make ``text`` the active slice (for a button's on_click: it runs before the sidebar box is drawn)."""
    st.session_state[INPUT_KEY] = text


@st.cache_resource(show_spinner=False, max_entries=16)
def _frame(scenario: str, model: str, variant: str | None, split: str):
    """The slice frame of a split (data columns and metadata, with the model's outcome columns)."""
    from core.slices import slice_frame

    bundle = cached.scenario_data(scenario, variant)[split]
    return slice_frame(bundle, cached.predictions(scenario, model, variant, split))


def _mask(sel: state.Selection, split: str, text: str, allow_empty: bool = True) -> np.ndarray:
    from core.slices import parse_slice
    from core.slices.frame import with_selection

    frame = _frame(sel.scenario, sel.model, sel.variant, split)
    chosen = selected(sel, split)
    if chosen is not None:  # the cached frame is shared: the session's selection goes on a copy
        frame = with_selection(frame.copy(), chosen)
    return parse_slice(text).mask(frame, allow_empty=allow_empty)


# -- a selection saved from the Embeddings map ----------------------------------------------------------------
MAP_KEY = "tl_map_selection"  # {"for": [scenario, variant], "rows": {split: [positions]}}, this session only
MAP_SLICE = "`map selection` == true"


def save_map_selection(sel: state.Selection, splits: list[str], positions: list[int]) -> None:
    """Keep the map's selected samples (their split and position) and make them the slice (a button's on_click)."""
    rows: dict[str, list[int]] = {}
    for split, position in zip(splits, positions):
        rows.setdefault(str(split), []).append(int(position))
    st.session_state[MAP_KEY] = {"for": [sel.scenario, sel.variant], "rows": {k: sorted(set(v)) for k, v in rows.items()}}
    set_slice(MAP_SLICE)


def selected(sel: state.Selection, split: str) -> tuple[int, ...] | None:
    """The saved map selection's rows of ``split`` (None when this session saved none for this data)."""
    saved = st.session_state.get(MAP_KEY)
    if not isinstance(saved, dict) or list(saved.get("for", [])) != [sel.scenario, sel.variant]:
        return None
    return tuple(int(i) for i in saved.get("rows", {}).get(split, ()))


def sidebar(sel: state.Selection) -> None:
    """The sidebar's slice box, its check against the test split, and what is in force."""
    from core.errors import TrustLensError

    with st.sidebar:
        text = st.text_input(
            "Slice", key=INPUT_KEY, placeholder="every sample (e.g. correct == false)",
            help="Filters every page: pick lists, galleries, metrics and maps show only these samples. Conditions "
                 "COLUMN OP VALUE joined by 'and' (OP: == != < <= > >= in [a, b], not in [a, b]); back-quote a "
                 "column with spaces. The columns are listed on the Slices and groups page.",
        ).strip()
        previous = st.session_state.get(APPLIED_KEY, "")
        if not text:
            st.session_state[APPLIED_KEY] = ""
            return
        if "test" not in cached.scenario_data(sel.scenario, sel.variant):
            st.caption("This data has no test split: the slice is not applied.")
            return
        try:
            n = int(_mask(sel, "test", text, allow_empty=False).sum())
        except TrustLensError as exc:
            st.error(exc.message + (f" {exc.hint}" if getattr(exc, "hint", None) else ""), icon=":material/filter_alt_off:")
            still = previous if previous and _applies(sel, previous) else ""
            st.session_state[APPLIED_KEY] = still
            st.caption(f"Still in force: **{still}**." if still else "No slice in force: every sample is shown.")
            return
        from core.slices import parse_slice

        canonical = parse_slice(text).text
        st.session_state[APPLIED_KEY] = canonical
        total = len(cached.scenario_data(sel.scenario, sel.variant)["test"])
        st.caption(f"In force on every page: {n:,} of {total:,} test samples.")


def _applies(sel: state.Selection, text: str) -> bool:
    from core.errors import TrustLensError

    try:
        _mask(sel, "test", text, allow_empty=False)
    except TrustLensError:
        return False
    return True


def active() -> Active | None:
    """The slice in force this run (set by :func:`sidebar`), or None."""
    text = st.session_state.get(APPLIED_KEY, "")
    return Active(text) if text else None


def rows(sel: state.Selection, split: str = "test") -> np.ndarray | None:
    """Indices of ``split``'s samples inside the active slice, in order; None when no slice is in force."""
    current = active()
    if current is None:
        return None
    return np.flatnonzero(_mask(sel, split, current.text))


def keep(sel: state.Selection, indices, split: str = "test") -> list[int]:
    """``indices`` (of ``split``) that lie in the active slice, in their order (all of them without a slice)."""
    inside = rows(sel, split)
    indices = [int(i) for i in indices]
    if inside is None:
        return indices
    members = set(inside.tolist())
    return [i for i in indices if i in members]


def caption(sel: state.Selection, split: str = "test", what: str = "samples") -> None:
    """One line under a page's controls: the slice in force and how many of the split's samples it keeps."""
    current = active()
    if current is None:
        return
    inside = rows(sel, split)
    total = len(cached.scenario_data(sel.scenario, sel.variant)[split])
    st.caption(f":material/filter_alt: Slice **{current.text}**: {len(inside):,} of {total:,} {split} {what} "
               "(set in the sidebar; clear it there to see every sample).")


def offered(sel: state.Selection, n_samples: int, key: str, default: int, limit: int = 500,
            split: str = "test") -> list[int]:
    """A pick list's options: the first ``limit`` samples of ``split`` in the active slice, plus any picked (linked
    or curated) sample of the slice beyond them. Picks in ``st.session_state[key]`` outside the options are dropped
    (a widget must not hold values it does not offer); when none is left, the first ``default`` options are picked."""
    inside = rows(sel, split)
    members = np.arange(n_samples) if inside is None else inside
    options = [int(i) for i in members[:limit]]
    allowed = set(int(i) for i in members)
    picked = [int(i) for i in st.session_state.get(key, []) if int(i) in allowed]
    options += sorted(i for i in set(picked) if i not in set(options))
    if key in st.session_state:
        st.session_state[key] = picked or options[:default]
    return options
