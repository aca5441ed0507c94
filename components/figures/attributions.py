"""Plotly figures for image attributions: the lecture's grid (one row per image, one column per
method), the occlusion probability maps, and the colour scaling they share with the PNG export."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.attribution import ImageAttribution

# Diverging for signed maps (blue = against the class, red = for it), sequential for magnitudes.
DIVERGING = [[0.0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"]]
SEQUENTIAL = [[0.0, "#000004"], [0.25, "#57106e"], [0.5, "#bc3754"], [0.75, "#f98e09"], [1.0, "#fcffa4"]]
GREY = [[0.0, "#000000"], [1.0, "#ffffff"]]


def display_range(heat: np.ndarray, signed: bool, percentile: float) -> tuple[float, float]:
    """Colour limits of one map: symmetric around 0 for signed maps, [0, p] for magnitudes.

    ``percentile`` clips the largest values (99 keeps one hot pixel from washing out the rest);
    100 uses the maximum.
    """
    values = np.abs(heat) if signed else np.asarray(heat)
    top = float(np.percentile(values, percentile)) if values.size else 0.0
    top = top if top > 0 else float(values.max(initial=0.0)) or 1e-12
    return (-top, top) if signed else (0.0, top)


def greyscale(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) luminance, the backdrop of the overlays."""
    image = np.asarray(image, dtype=np.float64)
    if image.shape[0] == 3:
        return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]
    return image.mean(axis=0)


def attribution_grid(
    images: np.ndarray,
    results: dict[str, ImageAttribution],
    titles: dict[str, str],
    row_labels: Sequence[str],
    proba: np.ndarray,
    class_names: Sequence[str],
    *,
    opacity: float = 0.7,
    percentile: float = 99.0,
    overlay: bool = True,
    cell: int = 150,
) -> go.Figure:
    """Original | method 1 | method 2 | ... | class probabilities, one row per image.

    Parameters
    ----------
    images : ndarray of shape (n, C, H, W) in [0, 1]
    results : dict method -> ImageAttribution over the same n images, in column order
    titles : dict method -> column title
    row_labels : n strings (e.g. "#12 true 3 -> 8 (97%)"), shown left of each row
    proba : ndarray of shape (n, n_classes)
    opacity : float in [0, 1]
        Opacity of the map over the image (1: the map alone).
    percentile : float in (0, 100]
        Clip the colour scale at this percentile of |values| per map.
    overlay : bool
        Draw the map over a greyscale copy of the image (False: the map alone).
    """
    n = len(images)
    methods = list(results)
    n_cols = len(methods) + 2
    names = [titles.get(m, m) for m in methods]
    if len(methods) > 4:  # narrow columns: one word per line so neighbouring titles do not overlap
        names = [name.replace(" ", "<br>") for name in names]
    column_titles = ["Original", *names, "Class<br>probabilities"]
    fig = make_subplots(rows=n, cols=n_cols, column_titles=column_titles,
                        horizontal_spacing=0.012, vertical_spacing=0.02 if n > 1 else 0.0,
                        column_widths=[1.0] * (n_cols - 1) + [1.4])
    width = images.shape[3]
    blank = {m: results[m].degenerate for m in methods}  # once per method, not once per row
    for r in range(n):
        grey = greyscale(images[r])
        _image_trace(fig, grey, r + 1, 1, hover="pixel %{z:.2f}<extra>original</extra>")
        for c, method in enumerate(methods, start=2):
            result = results[method]
            heat = result.heatmap()[r]
            if overlay and opacity < 1.0:
                _image_trace(fig, grey, r + 1, c, hover=None)
            low, high = display_range(heat, result.signed, percentile)
            if blank[method][r]:  # say it on the cell itself: a flat tint reads as "nothing important"
                fig.add_annotation(text="blank map", x=(heat.shape[1] - 1) / 2, y=(heat.shape[0] - 1) / 2,
                                   showarrow=False, font={"size": 11, "color": "#b2182b"}, bgcolor="rgba(255,255,255,0.8)",
                                   row=r + 1, col=c)
            fig.add_trace(go.Heatmap(
                z=heat, zmin=low, zmax=high, colorscale=DIVERGING if result.signed else SEQUENTIAL,
                opacity=opacity if overlay else 1.0, showscale=False,
                hovertemplate=f"{titles.get(method, method)}<br>row %{{y}}, col %{{x}}<br>value %{{z:.4g}}<extra></extra>",
            ), row=r + 1, col=c)
        classes = list(class_names)
        predicted = int(np.argmax(proba[r]))
        explained = int(results[methods[0]].target[r]) if methods else predicted
        colours = ["#b2182b" if k == explained else "#4c78a8" if k == predicted else "#bbbbbb"
                   for k in range(len(classes))]
        fig.add_trace(go.Bar(x=proba[r], y=classes, orientation="h", marker_color=colours, showlegend=False,
                             hovertemplate="P(%{y}) = %{x:.3f}<extra></extra>"), row=r + 1, col=n_cols)
        fig.update_xaxes(range=[0, 1], row=r + 1, col=n_cols, showticklabels=r == n - 1, tickformat=".0%")
        # Class names such as "0".."9" would make a numeric axis: force categories, top to bottom.
        fig.update_yaxes(row=r + 1, col=n_cols, type="category", tickfont={"size": 9}, autorange="reversed",
                         tickmode="array", tickvals=classes, ticktext=classes)  # every class, not a thinned few
    for c in range(1, n_cols):
        for r in range(1, n + 1):
            fig.update_xaxes(visible=False, range=[-0.5, width - 0.5], constrain="domain", row=r, col=c)
            fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=_anchor(fig, r, c), constrain="domain",
                             row=r, col=c)
    for r, label in enumerate(row_labels, start=1):
        # The row's label left of its original image (an axis title, so it never overlaps the cells).
        fig.update_yaxes(visible=True, showticklabels=False, showgrid=False, zeroline=False, showline=False,
                         ticks="", title={"text": _wrap(str(label)), "font": {"size": 10}}, row=r, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=max(260, cell * n + 80), margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      plot_bgcolor="white", bargap=0.15)
    return fig


def _wrap(label: str, width: int = 16) -> str:
    """Break a row label into lines of about ``width`` characters (plotly titles do not wrap)."""
    words, lines, line = label.split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


def _anchor(fig: go.Figure, row: int, col: int) -> str:
    """The x axis name of a subplot, for a 1:1 aspect ratio of its y axis."""
    return fig.get_subplot(row, col).xaxis.plotly_name.replace("axis", "")


def _image_trace(fig: go.Figure, grey: np.ndarray, row: int, col: int, hover: str | None) -> None:
    fig.add_trace(go.Heatmap(z=grey, zmin=0.0, zmax=1.0, colorscale=GREY, showscale=False,
                             hoverinfo="skip" if hover is None else None, hovertemplate=hover),
                  row=row, col=col)


def occlusion_probability_figure(results: ImageAttribution, row_labels: Sequence[str], class_names: Sequence[str],
                                 cell: int = 150) -> go.Figure:
    """Class probability with the patch at each position (occlusion's second output), one panel per image."""
    maps = results.extras["probability_map"]
    original = results.extras["original_probability"]
    n = len(maps)
    titles = [f"{label}<br>P({class_names[int(t)]}) unoccluded {p:.2f}"
              for label, t, p in zip(row_labels, results.target, original)]
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, horizontal_spacing=0.03)
    for i in range(n):
        fig.add_trace(go.Heatmap(z=maps[i], zmin=0.0, zmax=1.0, colorscale=SEQUENTIAL, showscale=i == n - 1,
                                 colorbar={"title": "P(class)", "len": 0.9},
                                 hovertemplate="patch at row %{y}, col %{x}<br>P = %{z:.3f}<extra></extra>"),
                      row=1, col=i + 1)
        fig.update_xaxes(visible=False, constrain="domain", row=1, col=i + 1)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=_anchor(fig, 1, i + 1), constrain="domain",
                         row=1, col=i + 1)
    fig.update_annotations(font_size=11)
    fig.update_layout(height=cell + 90, margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig
