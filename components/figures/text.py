"""Text explanations drawn: the document with each word shaded by its weight, bar charts of the
top words, deletion curves and LIME's stability over seeds.

Inputs are ``core.text.lime_text.TextExplanation`` and friends; nothing is recomputed here. Every
piece of document text goes through ``html.escape`` before it is put into HTML.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

# Blue supports the explained class, orange speaks against it (distinguishable with colour-blindness).
SUPPORT_RGB, AGAINST_RGB = (31, 119, 180), (230, 120, 20)
SUPPORT, AGAINST = "rgb(31,119,180)", "rgb(230,120,20)"
# Unsigned weights (attention: where the model looked, not which way it pushed) get a colour of their own.
UNSIGNED_RGB = (106, 81, 163)
UNSIGNED = "rgb(106,81,163)"
METHOD_COLOURS = {"lime": "#1f77b4", "occlusion": "#2ca02c", "gradient_x_embedding": "#9467bd",
                  "shap_partition": "#d62728", "random": "#7f7f7f"}


def _background(weight: float, scale: float, signed: bool = True) -> str:
    if scale <= 0 or weight == 0:
        return ""
    alpha = 0.15 + 0.75 * min(1.0, abs(weight) / scale)
    r, g, b = UNSIGNED_RGB if not signed else SUPPORT_RGB if weight > 0 else AGAINST_RGB
    return f"background-color: rgba({r},{g},{b},{alpha:.2f}); border-radius: 3px;"


def highlight_html(explanation, max_chars: int = 6000, scale: float | None = None) -> str:
    """The document as HTML: each explained word's background shows its weight and sign.

    Hovering a word shows its weight toward the explained class. Separators and unexplained
    words are plain (escaped) text; whitespace and line breaks are kept. Documents longer than
    ``max_chars`` are cut there with a note.
    """
    doc = explanation.doc
    weights = np.asarray(explanation.weights, dtype=float)
    shown = set(int(j) for j in explanation.selected)
    scale = float(np.max(np.abs(weights[list(shown)]))) if scale is None and shown else float(scale or 0.0)
    target = html.escape(explanation.target_name)
    signed = getattr(explanation, "signed", True)
    parts: list[str] = []
    used = 0
    for segment, j in zip(doc.segments, doc.word_index):
        if used >= max_chars:
            parts.append(f"<em>… ({len(doc.text) - used:,} more characters not shown)</em>")
            break
        used += len(segment)
        text = html.escape(segment)
        if j >= 0 and int(j) in shown and weights[j] != 0:
            w = float(weights[j])
            tip = html.escape(f"{doc.words[j]}: {w:+.4f} toward {explanation.target_name}" if signed else
                              f"{doc.words[j]}: {w:.4f} (unsigned)", quote=True)
            parts.append(f'<span class="tl-word" style="{_background(w, scale, signed)}" title="{tip}">{text}</span>')
        else:
            parts.append(text)
    keys = (f'<span style="{_background(1, 1)} padding: 0 4px;">supports {target}</span> '
            f'<span style="{_background(-1, 1)} padding: 0 4px;">against {target}</span> ') if signed else \
        (f'<span style="{_background(1, 1, False)} padding: 0 4px;">attended to</span> '
         '(unsigned: where the model looked, not which way it pushed) ')
    legend = (f'<div style="font-size: 0.8em; margin-bottom: 4px;">{keys}'
              f'· darker = larger weight · hover a word for its weight</div>')
    body = "".join(parts)
    return (f'<div class="tl-highlight">{legend}<div style="white-space: pre-wrap; font-family: ui-monospace, '
            f'monospace; font-size: 0.85em; line-height: 1.6; max-height: 420px; overflow-y: auto; '
            f'border: 1px solid rgba(128,128,128,0.3); border-radius: 6px; padding: 8px;">{body}</div></div>')


def top_words_figure(explanation, k: int = 10, title: str | None = None) -> go.Figure:
    """Horizontal bars of the top-k words: right = toward the explained class, left = against it
    (for two classes: toward the other class)."""
    top = explanation.top(k)[::-1]
    words = [w for w, _ in top]
    values = [v for _, v in top]
    others = [c for i, c in enumerate(explanation.class_names) if i != explanation.target]
    against = f"toward {others[0]}" if len(others) == 1 else f"against {explanation.target_name}"
    signed = getattr(explanation, "signed", True)
    fig = go.Figure(go.Bar(
        x=values, y=words, orientation="h",
        marker_color=[UNSIGNED if not signed else SUPPORT if v > 0 else AGAINST for v in values],
        hovertemplate="%{y}: %{x:+.4f}<extra></extra>" if signed else "%{y}: %{x:.4f}<extra></extra>",
    ))
    default_title = (f"Top words: ← {against} · toward {explanation.target_name} →" if signed
                     else "Top words (unsigned: attention, not a direction)")
    fig.update_layout(
        title=title or default_title,
        height=max(220, 26 * len(words) + 90), margin=dict(l=10, r=10, t=50, b=30),
        xaxis_title="weight", yaxis=dict(type="category"),
    )
    fig.add_vline(x=0, line_color="rgba(128,128,128,0.6)")
    return fig


def probabilities_figure(proba: np.ndarray, class_names: tuple[str, ...], title: str = "Predicted probabilities") -> go.Figure:
    fig = go.Figure(go.Bar(x=list(proba), y=list(class_names), orientation="h", marker_color="#495057",
                           text=[f"{p:.1%}" for p in proba], textposition="auto",
                           hovertemplate="%{y}: %{x:.4f}<extra></extra>"))
    fig.update_layout(title=title, height=60 + 34 * len(class_names), margin=dict(l=10, r=10, t=40, b=20),
                      xaxis=dict(range=[0, 1]), yaxis=dict(type="category", autorange="reversed"))
    return fig


def deletion_figure(curves: dict, titles: dict[str, str], target_name: str) -> go.Figure:
    """Probability of the explained class as the top-ranked words are deleted, one line per method."""
    fig = go.Figure()
    for name, curve in curves.items():
        steps = np.arange(len(curve.probabilities))
        label = f"{titles.get(name, name)} (faithfulness {curve.score:.3f})"
        fig.add_trace(go.Scatter(x=steps, y=curve.probabilities, mode="lines+markers", name=label,
                                 line=dict(color=METHOD_COLOURS.get(name), dash="dot" if name == "random" else None),
                                 hovertemplate="%{x} words deleted: P = %{y:.4f}<extra>" + titles.get(name, name) + "</extra>"))
    fig.update_layout(
        title=f"P({target_name}) as the top-ranked words are deleted",
        xaxis_title="words deleted (in each method's order of importance)", yaxis_title=f"P({target_name})",
        height=380, margin=dict(l=10, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.25),
    )
    return fig


def stability_figure(stability, k: int = 12) -> go.Figure:
    """Mean LIME weight per word over the seeds, with one standard deviation as error bars."""
    n = min(k, len(stability.words))
    words = list(stability.words[:n])[::-1]
    mean = stability.mean[:n][::-1]
    std = stability.std[:n][::-1]
    fig = go.Figure(go.Bar(
        x=mean, y=words, orientation="h", error_x=dict(type="data", array=std, visible=True),
        marker_color=[SUPPORT if v > 0 else AGAINST for v in mean],
        hovertemplate="%{y}: %{x:+.4f}<extra></extra>",
    ))
    fig.update_layout(
        title=f"LIME weights over {len(stability.seeds)} seeds (mean ± 1 SD)<br><sup>overlap of the selected words "
              f"between seeds (Jaccard): {stability.jaccard:.2f}</sup>",
        height=max(240, 26 * n + 90), margin=dict(l=10, r=10, t=50, b=30), xaxis_title="weight",
        yaxis=dict(type="category"),
    )
    fig.add_vline(x=0, line_color="rgba(128,128,128,0.6)")
    return fig
