"""Presentation mode: for the lecture hall's projector.

A sidebar toggle (also the URL parameter ``present=1``) that

- enlarges text and figures (CSS for the page, :func:`figure` for plotly's own font sizes),
- collapses the sidebar and the pages' control panels (:func:`controls`),
- puts a "next example" bar at the top of each page (:func:`example_bar`) that steps through the
  curated examples of :mod:`core.lecture.curated` (the most confident mistakes, the posts two models
  explain differently...), setting the page's widgets to each one in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from components import state
from components.links import PRESENT_KEY

FONT_SIZE = 18          # plotly's default font in presentation mode (plotly's own default is 12)
HEIGHT_SCALE = 1.3      # figures get taller by this factor
STEP_KEY = "tl_example_step"  # page -> position in its curated list
_DELETE = object()  # in an example's state: remove this key (a table selection that would override the example)

_STYLE = """
<style>
html { font-size: 20px; }
[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; padding-left: 2.5rem; padding-right: 2.5rem; }
[data-testid="stMain"] h1 { font-size: 2.8rem; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 2rem; }
[data-testid="stCaptionContainer"] { font-size: 1rem; }
[data-testid="stMetricValue"] { font-size: 2.6rem; }
</style>
"""


def is_on() -> bool:
    return bool(st.session_state.get(PRESENT_KEY, False))


def sidebar_toggle() -> None:
    st.sidebar.toggle("Presentation mode", key=PRESENT_KEY,
                      help="Larger text and figures for a projector, controls folded away, and a 'next example' "
                           "button that steps through curated examples. Also the link parameter present=1.")


def apply_style() -> None:
    if is_on():
        st.html(_STYLE)


def figure(fig: Any) -> Any:
    """``fig`` with larger fonts and height in presentation mode (unchanged otherwise)."""
    if not is_on():
        return fig
    height = fig.layout.height or 450
    fig.update_layout(font_size=FONT_SIZE, height=int(height * HEIGHT_SCALE), title_font_size=FONT_SIZE + 6)
    fig.update_annotations(font_size=FONT_SIZE)
    fig.update_xaxes(tickfont_size=FONT_SIZE - 4, title_font_size=FONT_SIZE)
    fig.update_yaxes(tickfont_size=FONT_SIZE - 4, title_font_size=FONT_SIZE)
    return fig


@contextmanager
def controls(label: str = "Settings") -> Iterator[None]:
    """The page's control panel: folded into a popover button in presentation mode, drawn inline otherwise.

    (A popover, not an expander: pages draw expanders inside their controls, and expanders do not nest.)
    """
    if is_on():
        with st.popover(label, icon=":material/tune:"):
            yield
    else:
        yield


# -- curated examples ---------------------------------------------------------------------------------

def _image_state(example, sel: state.Selection) -> dict[str, Any]:
    from components import cached
    from components.embedding_jump import image_page_filters

    splits = cached.scenario_data(sel.scenario, sel.variant)
    proba = cached.predictions(sel.scenario, example.model or sel.model, example.variant or sel.variant, "test")
    filters = image_page_filters(example.index, splits["test"].y, proba) or {
        "img_classes": [], "img_correctness": "all", "img_sort": "index"}
    return {"img_source": "Test images", **filters, "img_picks": [example.index]}


def _text_state(example, sel: state.Selection) -> dict[str, Any]:
    return {"text_source": "A test document", "text_classes": [], "text_correctness": "all", "text_sort": "index",
            "text_doc": example.index}


def _trust_state(example, sel: state.Selection) -> dict[str, Any]:
    return {("trust_text_picks" if sel.spec.kind == "text" else "trust_picks"): [example.index]}


def _shapley_state(example, sel: state.Selection) -> dict[str, Any]:
    from components import cached

    n_test = len(cached.scenario_data(sel.scenario, sel.variant)["test"])
    rows = min(n_test, max(int(st.session_state.get("shap_rows", min(150, n_test))), ((example.index + 10) // 10) * 10))
    return {"shap_source": "Test split", "shap_rows": rows, "shap_focus": example.index, "shap_row_table": _DELETE}


def _uncertainty_state(example, sel: state.Selection) -> dict[str, Any]:
    return {"unc_pick": ("clean", example.index)}


def _embeddings_state(example, sel: state.Selection) -> dict[str, Any]:
    return {"emb_split": "test", "emb_point": example.index}


def _calibration_state(example, sel: state.Selection) -> dict[str, Any]:
    if not example.model:
        return {}
    others = [m for m in st.session_state.get("cal_models", []) if m != example.model]
    return {"cal_models": [example.model, *others]}  # the first model is drawn with its bins and gaps


APPLY: dict[str, Callable[[Any, state.Selection], dict[str, Any]]] = {
    "images": _image_state, "text": _text_state, "trust": _trust_state, "shapley": _shapley_state,
    "uncertainty": _uncertainty_state, "embeddings": _embeddings_state, "calibration": _calibration_state,
}


def example_state(page: str, example, sel: state.Selection) -> dict[str, Any]:
    """The session-state values that show ``example`` on ``page`` (model and variant included)."""
    values = dict(APPLY[page](example, sel)) if example.index is not None or page == "calibration" else {}
    if example.model and example.model in sel.spec.model_names:
        values[state.MODEL_KEY] = example.model
    if example.variant and example.variant in (sel.spec.variants or ()):
        values[state.VARIANT_KEY] = example.variant
    return values


def _go(page: str, examples: list, position: int, sel: state.Selection) -> None:
    steps = dict(st.session_state.get(STEP_KEY, {}))
    steps[page] = position % len(examples)
    st.session_state[STEP_KEY] = steps
    for key, value in example_state(page, examples[steps[page]], sel).items():
        if value is _DELETE:
            st.session_state.pop(key, None)
        else:
            st.session_state[key] = value


def example_bar(page: str, sel: state.Selection) -> None:
    """In presentation mode: "example k of n", its title and why, and previous / next buttons."""
    if not is_on() or page not in APPLY:
        return
    from core.upload import byom

    if byom.is_upload(sel.scenario):
        return  # curated lists exist for the built-in scenarios only
    from components import cached
    from components.feedback import guarded, transient_progress

    with guarded(stop=False):
        with transient_progress("Finding the examples worth showing") as progress:
            examples = cached.curated_examples(sel.scenario, page, sel.variant, sel.model, _progress=progress)
        if not examples:
            return
        position = st.session_state.get(STEP_KEY, {}).get(page)
        with st.container(border=True):
            left, mid, right = st.columns([1.3, 5, 1.7], vertical_alignment="center")
            left.button("Previous", icon=":material/arrow_back:", key=f"tl_prev_{page}", width="stretch",
                        on_click=_go, args=(page, examples, (position or 0) - 1 if position is not None else -1, sel))
            right.button("Next example", icon=":material/arrow_forward:", key=f"tl_next_{page}", width="stretch",
                         type="primary",
                         on_click=_go, args=(page, examples, (position + 1) if position is not None else 0, sel))
            if position is None:
                mid.markdown(f"**{len(examples)} curated examples** for this page: press *Next example* to step "
                             "through them.")
            else:
                example = examples[position % len(examples)]
                mid.markdown(f"**Example {position % len(examples) + 1} of {len(examples)}:** {_md(example.title)}")
                mid.caption(_md(example.why))


def _md(text: str) -> str:
    """Escape markdown so example titles (which may quote document text) render literally."""
    for ch in "\\`*_{}[]<>()#+-!|$~":
        text = text.replace(ch, "\\" + ch)
    return text
