"""Figures of the uncertainty page: aleatoric vs epistemic scatter, member heatmaps, saliency strip, agreement."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

SET_COLOURS = ["#4C78A8", "#E45756", "#F58518", "#54A24B", "#B279A2", "#9D755D", "#72B7B2"]


def uncertainty_scatter(points: dict[str, np.ndarray], set_titles: Sequence[str], colour_by: str = "correct",
                        x_title: str = "expected entropy (aleatoric, nats)",
                        y_title: str = "mutual information (epistemic, nats)",
                        title: str = "Aleatoric vs epistemic uncertainty (click a point)",
                        x_label: str = "aleatoric", y_label: str = "epistemic") -> go.Figure:
    """One marker per input: x aleatoric, y epistemic uncertainty.

    ``points`` holds parallel arrays: ``x``, ``y``, ``set`` (index into ``set_titles``), ``row`` (index
    in its set), ``correct`` (1 right, 0 wrong, -1 no label) and ``id`` (returned as customdata, so a
    click gives back the point).
    """
    fig = go.Figure()
    if colour_by == "set":
        groups = [(f"{set_titles[s]}", points["set"] == s, SET_COLOURS[s % len(SET_COLOURS)]) for s in range(len(set_titles))]
    else:
        groups = [("right", points["correct"] == 1, "#4C78A8"), ("wrong", points["correct"] == 0, "#E45756"),
                  ("no label", points["correct"] == -1, "#BAB0AC")]
    for name, mask, colour in groups:
        if not mask.any():
            continue
        hover = [f"{set_titles[s]} #{r}" for s, r in zip(points["set"][mask], points["row"][mask])]
        fig.add_trace(go.Scattergl(
            x=points["x"][mask], y=points["y"][mask], mode="markers", name=name,
            marker={"color": colour, "size": 6, "opacity": 0.65, "line": {"width": 0}},
            customdata=np.stack([points["id"][mask]], axis=1), text=hover,
            hovertemplate=f"%{{text}}<br>{x_label} %{{x:.3f}}<br>{y_label} %{{y:.3f}}<extra></extra>",
        ))
    fig.update_layout(title=title, xaxis_title=x_title,
                      yaxis_title=y_title, height=480, margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "y": -0.15}, clickmode="event+select", dragmode="zoom")
    return fig


def member_heatmap(proba: np.ndarray, class_names: Sequence[str], member_labels: Sequence[str],
                   title: str = "Every member's probabilities", with_mean: bool = True) -> go.Figure:
    """``proba`` of shape (n_members, n_classes) for one input, members as rows, the mean as the last row
    (``with_mean=False``: no mean row, for a single model)."""
    z = np.vstack([proba, proba.mean(axis=0, keepdims=True)]) if with_mean else np.asarray(proba)
    rows = [*member_labels, "mean"] if with_mean else list(member_labels)
    fig = go.Figure(go.Heatmap(z=z, x=[str(c) for c in class_names], y=rows, zmin=0, zmax=1, colorscale="Blues",
                               text=np.round(z, 2), texttemplate="%{text:.2f}", textfont={"size": 10},
                               hovertemplate="%{y}, class %{x}: %{z:.3f}<extra></extra>", colorbar={"title": "p"}))
    fig.update_layout(title=title, height=max(240, 26 * len(rows) + 110), margin={"l": 80, "r": 20, "t": 50, "b": 40},
                      yaxis={"autorange": "reversed"}, xaxis={"title": "class", "type": "category"})
    return fig


def saliency_strip(image: np.ndarray, maps: np.ndarray, variance: np.ndarray, member_labels: Sequence[str],
                   cell: int = 120) -> go.Figure:
    """The input, each member's normalised |gradient| map, and the pixel-wise variance across members."""
    titles = ["input", *member_labels, "variance"]
    n = len(titles)
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, horizontal_spacing=0.01)
    grey = np.asarray(image, dtype=np.float32).mean(axis=0)
    fig.add_trace(go.Heatmap(z=grey, colorscale="Greys", reversescale=True, zmin=0, zmax=1, showscale=False,
                             hovertemplate="pixel %{z:.2f}<extra></extra>"), row=1, col=1)
    for j, heat in enumerate(maps):
        fig.add_trace(go.Heatmap(z=heat, colorscale="Reds", zmin=0, zmax=1, showscale=False,
                                 hovertemplate=f"{member_labels[j]}: %{{z:.2f}}<extra></extra>"), row=1, col=j + 2)
    vmax = max(float(variance.max()), 1e-6)
    fig.add_trace(go.Heatmap(z=variance, colorscale="Purples", zmin=0, zmax=vmax, showscale=True,
                             colorbar={"title": "var", "len": 0.9, "thickness": 10},
                             hovertemplate="variance %{z:.4f}<extra></extra>"), row=1, col=n)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    for i in range(2, n + 1):
        fig.update_yaxes(scaleanchor=f"x{i}", row=1, col=i)
    fig.update_layout(height=cell + 100, margin={"l": 10, "r": 10, "t": 70, "b": 10},
                      title={"text": "Saliency (|gradient|, scaled per member) and where the members disagree", "y": 0.97})
    return fig


def agreement_heatmap(matrix: np.ndarray, labels: Sequence[str], title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=matrix, x=list(labels), y=list(labels), zmin=float(min(matrix.min(), 0.9)), zmax=1,
                               colorscale="Viridis", text=np.round(matrix, 3), texttemplate="%{text:.3f}",
                               hovertemplate="%{y} vs %{x}: %{z:.4f}<extra></extra>"))
    fig.update_layout(title=title, height=max(300, 40 * len(labels) + 120), margin={"l": 70, "r": 20, "t": 50, "b": 40},
                      yaxis={"autorange": "reversed"})
    return fig
