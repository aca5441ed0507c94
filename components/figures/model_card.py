"""Figures for the Home page's model card."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go


def confusion_figure(counts: np.ndarray, class_names: Sequence[str], title: str = "Confusion matrix (test split)") -> go.Figure:
    """Heat map of ``counts`` (rows: true class, columns: predicted), each cell annotated.

    Colours show the row-normalised rate, so a rare class's mistakes are as visible as a
    frequent one's; the text shows raw counts.
    """
    counts = np.asarray(counts)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    labels = [str(c) for c in class_names]
    fig = go.Figure(
        go.Heatmap(
            z=rates,
            x=labels,
            y=labels,
            text=counts,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "row rate"},
            hovertemplate="true %{y}<br>predicted %{x}<br>count %{text}<br>rate %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="predicted",
        yaxis_title="true",
        yaxis_autorange="reversed",
        height=max(320, 40 * len(labels) + 160),
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
    )
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def confidence_histogram(confidence: np.ndarray, correct: np.ndarray, where: str = "test split") -> go.Figure:
    """Overlaid histograms of the predicted-class probability for right and wrong predictions."""
    # Each group is normalised to its own size (percent of the right / of the wrong predictions),
    # so the shapes compare even when mistakes are 1 % of the data; the legend gives the counts.
    fig = go.Figure()
    for mask, name, colour in ((correct, "correct", "#2b8a3e"), (~correct, "incorrect", "#c92a2a")):
        fig.add_trace(go.Histogram(x=confidence[mask], name=f"{name} ({int(mask.sum())})", marker_color=colour,
                                   histnorm="percent", xbins={"start": 0, "end": 1.0001, "size": 0.05}))
    fig.update_layout(barmode="group", title=f"Confidence of right and wrong predictions ({where})",
                      xaxis_title="probability of the predicted class", yaxis_title="% of the group", height=320,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50}, legend={"orientation": "h", "y": -0.25})
    return fig
