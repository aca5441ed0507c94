"""Plotly figures for the slices page: a metric per group with its bootstrap interval. Inputs are the
JSON-able rows of core.slices (``SliceMetrics.as_dict()``); nothing is recomputed here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

METRIC_TITLES = {"error_rate": "error rate", "accuracy": "accuracy", "ece": "ECE", "selection_rate": "selection rate",
                 "tpr": "true positive rate", "fpr": "false positive rate"}


def group_figure(column: str, groups: Sequence[dict[str, Any]], overall: dict[str, Any],
                 metrics: Sequence[str] = ("error_rate", "selection_rate", "tpr", "fpr")) -> go.Figure:
    """One horizontal bar per group and metric, with its 95 % interval; a dotted line at the overall value."""
    fig = go.Figure()
    highest = max([1e-3] + [g[f"{m}_interval"][1] if g.get(f"{m}_interval") else (g.get(m) or 0.0)
                            for g in groups for m in metrics if g.get(m) is not None] + [overall.get(m) or 0.0 for m in metrics])
    colours = ("#e8590c", "#1c7ed6", "#2b8a3e", "#ae3ec9", "#f08c00", "#0ca678")
    labels = [f"{g['slice'].split(' == ', 1)[-1]} (n={g['n']:,})" for g in groups]
    shown = [m for m in metrics if any(g.get(m) is not None for g in groups)]
    for k, metric in enumerate(shown):
        values = [g.get(metric) for g in groups]
        low = [None if g.get(f"{metric}_interval") is None else g[metric] - g[f"{metric}_interval"][0] for g in groups]
        high = [None if g.get(f"{metric}_interval") is None else g[f"{metric}_interval"][1] - g[metric] for g in groups]
        fig.add_trace(go.Bar(
            y=labels, x=values, orientation="h", name=METRIC_TITLES[metric], marker_color=colours[k % len(colours)],
            error_x={"type": "data", "symmetric": False, "array": high, "arrayminus": low, "thickness": 1.2},
            hovertemplate=f"{METRIC_TITLES[metric]} %{{x:.3f}}<extra>%{{y}}</extra>",
        ))
        if overall.get(metric) is not None:
            fig.add_vline(x=overall[metric], line={"dash": "dot", "color": colours[k % len(colours)], "width": 1})
    fig.update_layout(
        title=f"Groups of {column}: metrics with 95 % bootstrap intervals (dotted: all samples)",
        barmode="group", height=max(260, 70 + 32 * len(groups) * max(1, len(shown)) // 2),
        xaxis={"range": [0, min(1.02, 1.1 * highest)]},  # MNIST's per-class error rates of 1 % stay readable yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.2}, margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


def balance_figure(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Share of each class per split (grouped bars), from ``core.slices.data_checks.class_balance`` rows."""
    fig = go.Figure()
    for k, split in enumerate(dict.fromkeys(r["split"] for r in rows)):
        part = [r for r in rows if r["split"] == split]
        fig.add_trace(go.Bar(x=[r["class"] for r in part], y=[r["share"] for r in part], name=split,
                             marker_color=("#1c7ed6", "#f08c00", "#2b8a3e")[k % 3],
                             customdata=[r["n"] for r in part],
                             hovertemplate="%{x}: %{y:.1%} (%{customdata:,} samples)<extra>" + split + "</extra>"))
    fig.update_layout(title="Class balance per split", barmode="group", height=300, yaxis={"tickformat": ".0%"},
                      xaxis={"type": "category"}, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right"})
    return fig
