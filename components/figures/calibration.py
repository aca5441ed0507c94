"""Plotly figures for the calibration page: reliability diagram (+ confidence histogram) and
risk-coverage curves. Inputs are core.calibration result objects; nothing is recomputed here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.calibration import ReliabilityCurve

PALETTE = ("#1c7ed6", "#e8590c", "#2b8a3e", "#ae3ec9", "#f08c00", "#0ca678")


def reliability_figure(curves: Sequence[tuple[str, ReliabilityCurve]], title: str = "Reliability diagram") -> go.Figure:
    """Reliability diagram of one or more models, with a histogram of confidences beneath.

    The first curve is the primary one: its bins are drawn as bars (accuracy) with the gap to the
    mean confidence shaded red (over-confident) or blue (under-confident); every curve is also
    drawn as a line through (mean confidence, accuracy). Bars carry the bin index in
    ``customdata`` so a click can be mapped back to the samples of that bin.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.04)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "#868e96"},
                             name="perfect calibration", hoverinfo="skip"), row=1, col=1)
    if curves:
        name, primary = curves[0]
        mask = primary.nonempty
        centers = (primary.edges[:-1] + primary.edges[1:]) / 2
        widths = np.diff(primary.edges)
        idx = np.flatnonzero(mask)
        fig.add_trace(go.Bar(
            x=centers[idx], y=primary.accuracy[idx], width=widths[idx] * 0.95, name=f"{name}: accuracy per bin",
            marker={"color": "rgba(28,126,214,0.35)", "line": {"color": "rgba(28,126,214,0.9)", "width": 1}},
            customdata=np.column_stack([idx, primary.counts[idx], primary.mean_confidence[idx]]),
            hovertemplate="bin %{customdata[0]}<br>accuracy %{y:.3f}<br>mean confidence %{customdata[2]:.3f}"
                          "<br>%{customdata[1]} samples<br>click to list them<extra></extra>",
        ), row=1, col=1)
        gap = primary.gap[idx]
        fig.add_trace(go.Bar(
            x=centers[idx], y=np.abs(gap), base=np.minimum(primary.accuracy[idx], primary.mean_confidence[idx]),
            width=widths[idx] * 0.95, name="gap (red: over-confident, blue: under-confident)",
            marker={"color": np.where(gap > 0, "rgba(224,49,49,0.45)", "rgba(25,113,194,0.45)"),
                    "pattern": {"shape": "/"}},
            customdata=np.column_stack([idx, gap]),
            hovertemplate="bin %{customdata[0]}<br>confidence - accuracy %{customdata[1]:+.3f}<extra></extra>",
        ), row=1, col=1)
        fig.add_trace(go.Bar(x=centers[idx], y=primary.counts[idx], width=widths[idx] * 0.95, name=f"{name}: samples per bin",
                             marker={"color": "#495057"}, customdata=idx, showlegend=False,
                             hovertemplate="bin %{customdata}<br>%{y} samples<extra></extra>"), row=2, col=1)
    for i, (name, curve) in enumerate(curves):
        mask = curve.nonempty
        # Only the primary model's line carries bin indices in customdata (clicks list its bins);
        # the others show their bin in the hover text only.
        fig.add_trace(go.Scatter(
            x=curve.mean_confidence[mask], y=curve.accuracy[mask], mode="lines+markers", name=name,
            line={"color": PALETTE[i % len(PALETTE)], "width": 2.5 if i == 0 else 1.8},
            customdata=np.column_stack([np.flatnonzero(mask), curve.counts[mask]]) if i == 0 else None,
            text=[f"bin {b}, {c} samples" for b, c in zip(np.flatnonzero(mask), curve.counts[mask])],
            hovertemplate=f"{name}<br>%{{text}}<br>confidence %{{x:.3f}}<br>accuracy %{{y:.3f}}<extra></extra>",
        ), row=1, col=1)
    fig.update_layout(title=title, barmode="overlay", height=620, margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "y": -0.12}, clickmode="event+select")
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="samples", type="log", dtick=1, row=2, col=1)
    fig.update_xaxes(title_text="confidence", range=[0, 1.0], row=2, col=1)
    return fig


def risk_coverage_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> go.Figure:
    """Accuracy against coverage (fraction of predictions kept when abstaining on the least confident)."""
    fig = go.Figure()
    for i, (name, coverage, accuracy) in enumerate(curves):
        # A 2,000-point polyline looks the same and keeps the page light at MNIST's 10,000 samples.
        keep = np.unique(np.r_[np.arange(0, len(coverage), max(1, -(-len(coverage) // 2000))), len(coverage) - 1])
        fig.add_trace(go.Scatter(x=coverage[keep], y=accuracy[keep], mode="lines", name=name,
                                 line={"color": PALETTE[i % len(PALETTE)]},
                                 hovertemplate=f"{name}<br>keep %{{x:.1%}}<br>accuracy %{{y:.3f}}<extra></extra>"))
    fig.update_layout(title="Risk-coverage: accuracy when the model may abstain", height=380,
                      xaxis_title="coverage (fraction of predictions kept, most confident first)",
                      yaxis_title="accuracy on kept predictions", margin={"l": 60, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(range=[0, 1])
    return fig
