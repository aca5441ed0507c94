"""Plotly figures for the trust checks: randomisation strip and similarity curves, deletion /
insertion curves, the agreement matrix."""

from __future__ import annotations

import warnings

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.figures.attributions import SEQUENTIAL, display_range

PALETTE = ["#1c7ed6", "#e8590c", "#2b8a3e", "#ae3ec9", "#f08c00", "#0ca678", "#c92a2a", "#5f3dc4", "#495057", "#d6336c"]


def randomization_strip(results: dict, titles: dict[str, str], image: int, cell: int = 110) -> go.Figure:
    """|map| of one image at every randomisation stage: one row per method, one column per stage."""
    methods = list(results)
    stages = results[methods[0]].stages
    fig = make_subplots(rows=len(methods), cols=len(stages), column_titles=[s.replace("up to ", "random up to<br>")
                                                                            for s in stages],
                        row_titles=[titles.get(m, m) for m in methods], horizontal_spacing=0.01, vertical_spacing=0.03)
    for r, method in enumerate(methods, start=1):
        result = results[method]
        for c in range(len(stages)):
            heat = np.abs(result.heatmaps[c, image])
            low, high = display_range(heat, False, 99.0)
            rho = result.similarity["spearman"][c, image]
            rho = "n/a" if np.isnan(rho) else f"{rho:.2f}"  # NaN: a constant map ranks nothing
            fig.add_trace(go.Heatmap(z=heat, zmin=low, zmax=high, colorscale=SEQUENTIAL, showscale=False,
                                     hovertemplate=f"{titles.get(method, method)}, {stages[c]}<br>|value| %{{z:.3g}}"
                                                   f"<br>Spearman to original {rho}<extra></extra>"),
                          row=r, col=c + 1)
            fig.update_xaxes(visible=False, constrain="domain", row=r, col=c + 1)
            fig.update_yaxes(visible=False, autorange="reversed", constrain="domain", row=r, col=c + 1,
                             scaleanchor=fig.get_subplot(r, c + 1).xaxis.plotly_name.replace("axis", ""))
    fig.update_annotations(font_size=11)
    fig.update_layout(height=cell * len(methods) + 70, margin={"l": 10, "r": 90, "t": 50, "b": 10})
    return fig


def similarity_figure(results: dict, titles: dict[str, str], metric: str = "spearman") -> go.Figure:
    """Mean similarity to the original map per stage, one line per method (error bars: std over images)."""
    fig = go.Figure()
    for i, (method, result) in enumerate(results.items()):
        values = result.similarity[metric]
        if result.degenerate is not None:
            values = values[:, ~result.degenerate[0]]  # the inputs result.mean() averages
        with warnings.catch_warnings():  # Spearman is NaN for a constant map (no ranking): skipped; all NaN: a gap
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = np.nanstd(values, axis=1)
        fig.add_trace(go.Scatter(x=list(result.stages), y=result.mean(metric), mode="lines+markers",
                                 name=titles.get(method, method), line={"color": PALETTE[i % len(PALETTE)]},
                                 error_y={"type": "data", "array": spread, "visible": True, "thickness": 1},
                                 hovertemplate="%{x}: %{y:.3f}<extra>" + titles.get(method, method) + "</extra>"))
    text = next(iter(results.values())).noun != "maps" if results else False
    label = ({"spearman": "Spearman rank correlation of |weights|", "top_k": "top-10 word overlap"} if text else
             {"spearman": "Spearman rank correlation of |map|", "ssim": "SSIM of |map|",
              "top_k": "top-10 % pixel overlap"})[metric]
    what = "word weights" if text else "map"
    fig.add_hline(y=0.0, line={"color": "#adb5bd", "dash": "dot"})
    fig.update_layout(title=f"Similarity to the original model's {what} as layers are randomised", yaxis_title=label,
                      xaxis_title="randomisation stage", yaxis_range=[-0.3, 1.05], height=380,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return fig


def faithfulness_figure(curves: dict, titles: dict[str, str], kind: str = "deletion") -> go.Figure:
    """Mean class probability as pixels are deleted (or inserted) in each method's order, and at random."""
    fig = go.Figure()
    random_curve = None
    for i, (method, c) in enumerate(curves.items()):
        y = c.curves[kind].mean(axis=0)
        area = float(c.area(kind).mean())
        fig.add_trace(go.Scatter(x=c.fractions, y=y, mode="lines", line={"color": PALETTE[i % len(PALETTE)]},
                                 name=f"{titles.get(method, method)} (area {area:.3f})"))
        random_curve = c
    if random_curve is not None and f"{kind}_random" in random_curve.curves:
        area = float(random_curve.area(f"{kind}_random").mean())
        fig.add_trace(go.Scatter(x=random_curve.fractions, y=random_curve.curves[f"{kind}_random"].mean(axis=0),
                                 mode="lines", line={"color": "#868e96", "dash": "dash"}, name=f"random order (area {area:.3f})"))
    better = "lower" if kind == "deletion" else "higher"
    unit = random_curve.unit if random_curve is not None else "pixels"
    fig.update_layout(title=f"{kind.capitalize()}: most relevant {unit} first ({better} area = more faithful)",
                      xaxis_title=f"share of {unit} {'deleted' if kind == 'deletion' else 'inserted'}",
                      yaxis_title="P(explained class)", yaxis_range=[0, 1.02], height=380,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return fig


def agreement_figure(names: list[str], matrix: np.ndarray, titles: dict[str, str], what: str,
                     subject: str = "|map|", over: str = "images") -> go.Figure:
    """Method x method matrix (mean over ``over``), values written in the cells."""
    labels = [titles.get(n, n) for n in names]
    fig = go.Figure(go.Heatmap(z=matrix, x=labels, y=labels, zmin=-1 if what == "Spearman" else 0, zmax=1,
                               colorscale="RdBu", reversescale=False, text=np.round(matrix, 2), texttemplate="%{text}",
                               hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>", colorbar={"title": what}))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=f"Agreement between methods ({what} of {subject}, mean over {over})",
                      height=120 + 45 * len(names), margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def pair_strip(results: dict, titles: dict[str, str], image: int, cell: int = 110) -> go.Figure:
    """|map| from the real model beside the shuffled-label model's, one row per method."""
    methods = list(results)
    fig = make_subplots(rows=1, cols=2 * len(methods), horizontal_spacing=0.01,
                        column_titles=[f"{titles.get(m, m)}<br>{which}" for m in methods
                                       for which in ("real labels", "shuffled labels")])
    for i, method in enumerate(methods):
        result = results[method]
        for j, heat in enumerate((np.abs(result.real[image]), np.abs(result.shuffled[image]))):
            col = 2 * i + j + 1
            low, high = display_range(heat, False, 99.0)
            fig.add_trace(go.Heatmap(z=heat, zmin=low, zmax=high, colorscale=SEQUENTIAL, showscale=False,
                                     hovertemplate="|value| %{z:.3g}<extra></extra>"), row=1, col=col)
            fig.update_xaxes(visible=False, constrain="domain", row=1, col=col)
            fig.update_yaxes(visible=False, autorange="reversed", constrain="domain", row=1, col=col,
                             scaleanchor=fig.get_subplot(1, col).xaxis.plotly_name.replace("axis", ""))
    fig.update_annotations(font_size=10)
    fig.update_layout(height=cell + 80, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig
