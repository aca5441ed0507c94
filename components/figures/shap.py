"""Plotly-native SHAP plots: waterfall (one row), beeswarm and mean-|SHAP| bar (dataset), dependence.

Inputs are ``core.explanation.FeatureAttribution`` objects; nothing is recomputed here.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

POSITIVE, NEGATIVE = "#e03131", "#1971c2"  # red pushes the output up, blue down (shap's convention)


def _order(values: np.ndarray, max_features: int) -> np.ndarray:
    return np.argsort(-np.abs(values), kind="stable")[:max_features]


def _shown(value) -> str:
    """A feature's value as the data holds it: numbers to 4 significant digits, text as it is, missing as '—'."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return f"{float(value):.4g}"
    return str(value)


def waterfall_figure(expl, i: int = 0, max_features: int = 12, target_name: str = "", shown: dict | None = None
                     ) -> go.Figure:
    """From the base value to the model output, one step per feature (largest |SHAP| first);
    the remaining features are summed in one step so the chart still adds up.

    ``shown``: feature name -> the value the data shows for this row (a raw-column pipeline's text categories, which
    ``expl.data`` holds as codes); other features are labelled with ``expl.data``."""
    values = np.asarray(expl.values[i], dtype=float)
    order = _order(values, max_features)
    rest = np.setdiff1d(np.arange(len(values)), order)
    shown = shown or {}
    labels = [f"{expl.feature_names[j]} = "
              f"{_shown(shown[expl.feature_names[j]]) if expl.feature_names[j] in shown else _shown(float(expl.data[i, j]))}"
              for j in order]
    steps = list(values[order])
    if len(rest):
        labels.append(f"{len(rest)} other features")
        steps.append(float(values[rest].sum()))
    base = float(expl.base_values[i])
    fig = go.Figure(go.Waterfall(
        orientation="h",
        y=["base value (average output)", *labels, "model output"][::-1],
        x=[base, *steps, 0.0][::-1],
        measure=(["absolute", *["relative"] * len(steps), "total"])[::-1],
        increasing={"marker": {"color": POSITIVE}}, decreasing={"marker": {"color": NEGATIVE}},
        totals={"marker": {"color": "#495057"}},
        text=[f"{base:.3f}", *[f"{s:+.3f}" for s in steps], f"{float(expl.output[i]):.3f}"][::-1],
        textposition="outside", cliponaxis=False,
        hovertemplate="%{y}<br>%{text}<extra></extra>",
    ))
    # Room on both sides for the value labels: outside a bar that ends near the axis start, a
    # negative step's label would otherwise be drawn over the feature names.
    ends = np.concatenate([[0.0, base], base + np.cumsum(steps)])
    low, high = float(ends.min()), float(ends.max())
    pad = 0.18 * max(high - low, 1e-9)
    fig.update_xaxes(range=[low - pad, high + pad])
    what = f"P({target_name})" if target_name else "the explained output"
    fig.update_layout(title=f"Why row {int(expl.rows[i])}: SHAP values of {what}", height=120 + 32 * (len(labels) + 2),
                      margin={"l": 10, "r": 40, "t": 50, "b": 40}, xaxis_title=what, showlegend=False)
    return fig


def mean_abs_bar_figure(expl, max_features: int = 20) -> go.Figure:
    """Mean |SHAP value| per feature over the explained rows: global importance."""
    importance = np.abs(expl.values).mean(axis=0)
    order = _order(importance, max_features)[::-1]
    fig = go.Figure(go.Bar(x=importance[order], y=[expl.feature_names[j] for j in order], orientation="h",
                           marker_color="#1c7ed6", hovertemplate="%{y}<br>mean |SHAP| %{x:.4f}<extra></extra>"))
    fig.update_layout(title=f"Mean |SHAP value| over {len(expl.values)} rows", height=120 + 24 * len(order),
                      margin={"l": 10, "r": 20, "t": 50, "b": 40}, xaxis_title="mean |SHAP value|")
    return fig


def beeswarm_figure(expl, max_features: int = 15, seed: int = 0) -> go.Figure:
    """One row of dots per feature (most important on top): x = SHAP value, colour = the feature's
    value from low (blue) to high (red) within that feature; vertical jitter separates the dots."""
    importance = np.abs(expl.values).mean(axis=0)
    order = _order(importance, max_features)
    rng = np.random.default_rng(seed)
    xs, ys, colours, texts = [], [], [], []
    for rank, j in enumerate(order):
        column = expl.data[:, j].astype(float)
        span = column.max() - column.min()
        colours.append((column - column.min()) / span if span > 0 else np.full(len(column), 0.5))
        xs.append(expl.values[:, j])
        ys.append(len(order) - 1 - rank + rng.uniform(-0.3, 0.3, len(column)))
        texts.extend(f"{expl.feature_names[j]} = {v:.4g}<br>row {int(r)}" for v, r in zip(column, expl.rows))
    fig = go.Figure(go.Scattergl(
        x=np.concatenate(xs), y=np.concatenate(ys), mode="markers", text=texts,
        marker={"color": np.concatenate(colours), "colorscale": [[0, NEGATIVE], [1, POSITIVE]], "size": 5,
                "opacity": 0.8, "colorbar": {"title": "feature value", "tickvals": [0, 1], "ticktext": ["low", "high"]}},
        hovertemplate="%{text}<br>SHAP %{x:.4f}<extra></extra>",
    ))
    fig.update_layout(title="SHAP values of every row (beeswarm)", height=140 + 30 * len(order),
                      margin={"l": 10, "r": 20, "t": 50, "b": 40}, xaxis_title="SHAP value (impact on the output)")
    fig.update_yaxes(tickvals=list(range(len(order))), ticktext=[expl.feature_names[j] for j in order[::-1]],
                     range=[-0.7, len(order) - 0.3])
    fig.add_vline(x=0, line_color="#adb5bd")
    return fig


def dependence_figure(expl, feature: int, colour_feature: int | None) -> go.Figure:
    """SHAP value of ``feature`` against its value, coloured by ``colour_feature`` (an interaction)."""
    name = expl.feature_names[feature]
    marker: dict = {"size": 6, "opacity": 0.8}
    if colour_feature is not None:
        marker.update(color=expl.data[:, colour_feature], colorscale=[[0, NEGATIVE], [1, POSITIVE]],
                      colorbar={"title": expl.feature_names[colour_feature]})
    fig = go.Figure(go.Scattergl(
        x=expl.data[:, feature], y=expl.values[:, feature], mode="markers", marker=marker,
        customdata=expl.rows, hovertemplate=f"row %{{customdata}}<br>{name} = %{{x:.4g}}<br>SHAP %{{y:.4f}}<extra></extra>",
    ))
    coloured = f", coloured by {expl.feature_names[colour_feature]}" if colour_feature is not None else ""
    fig.update_layout(title=f"Dependence: {name}{coloured}", height=420, xaxis_title=name,
                      yaxis_title=f"SHAP value of {name}", margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


def coefficients_figure(names, coefficients: np.ndarray, title: str) -> go.Figure:
    """Horizontal bars of a linear model's coefficients (largest magnitude on top)."""
    order = np.argsort(np.abs(coefficients))
    fig = go.Figure(go.Bar(x=coefficients[order], y=[names[j] for j in order], orientation="h",
                           marker_color=np.where(coefficients[order] > 0, POSITIVE, NEGATIVE),
                           hovertemplate="%{y}<br>%{x:+.3f}<extra></extra>"))
    fig.update_layout(title=title, height=120 + 24 * len(order), margin={"l": 10, "r": 20, "t": 50, "b": 40})
    return fig
