"""One explained document as the text pages show it: shaded words, then the top-word bars."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from components import present
from components.feedback import degenerate_note
from core.trust.degenerate import degenerate_reason
from core.text.text_methods import METHOD_TITLES

from components.figures.text import highlight_html, top_words_figure


def show_explanation(explanation, key: str, bars: int, shade: int | None = None) -> None:
    """The highlighted document and a bar chart of its ``bars`` top words.

    ``shade`` limits the shaded words to the explanation's top ``shade`` (methods that weight
    every word, like occlusion and SHAP, would otherwise colour the whole text).
    """
    if shade is not None:
        explanation = replace(explanation, selected=explanation.selected[:shade])
    degenerate_note(degenerate_reason(explanation.weights, METHOD_TITLES.get(explanation.method, explanation.method),
                                      "word weights"))
    st.html(highlight_html(explanation))
    st.plotly_chart(present.figure(top_words_figure(explanation, bars)), key=f"{key}_bars")
