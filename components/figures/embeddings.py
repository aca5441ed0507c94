"""Plotly figures for the embeddings page: the WebGL map, the selection's class histogram.

Every point carries its row index first in ``customdata`` (what a click or a box / lasso selection
maps back to); overlay points (adversarial inputs) carry ``-1 - k`` so they are told apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
                 "#e6550d", "#31a354", "#756bb1", "#636363")
HOVER = ("#%{customdata[0]} (%{customdata[1]})<br>label %{customdata[2]}<br>prediction %{customdata[3]}"
         "<br>confidence %{customdata[4]:.3f}<extra></extra>")


def _customdata(rows: np.ndarray, split_text: np.ndarray, true_names: np.ndarray, pred_names: np.ndarray,
                confidence: np.ndarray) -> np.ndarray:
    return _columns(rows, split_text[rows], true_names[rows], pred_names[rows], np.round(confidence[rows], 4))


def _columns(*columns: np.ndarray) -> np.ndarray:
    """An object array with one column per argument, each keeping its own type (ints stay ints)."""
    out = np.empty((len(columns[0]), len(columns)), dtype=object)
    for j, column in enumerate(columns):
        out[:, j] = np.asarray(column).tolist()
    return out


def map_figure(
    coords: np.ndarray,
    *,
    colour: np.ndarray,
    colour_name: str,
    categorical: bool,
    category_names: Sequence[str] = (),
    split_text: np.ndarray,
    true_names: np.ndarray,
    pred_names: np.ndarray,
    confidence: np.ndarray,
    title: str,
    highlight: int | None = None,
    neighbours: np.ndarray | None = None,
    overlay: dict | list[dict] | None = None,
    marker_size: float | None = None,
    height: int = 640,
) -> go.Figure:
    """The map as WebGL scatter traces (responsive at 70,000 points).

    Parameters
    ----------
    coords : ndarray of shape (n, 2)
    colour : ndarray of shape (n,)
        Category codes (``categorical``; one trace per category, toggled from the legend) or numbers
        (one trace with a colour bar).
    split_text, true_names, pred_names : ndarray of shape (n,) of str
        Shown on hover with the index and ``confidence``.
    highlight : int, optional
        Row drawn with a ring (the clicked point); ``neighbours`` its nearest neighbours.
    overlay : dict or list of dict, optional
        ``{"coords": (m, 2), "text": (m,) str, "name": str}`` (optional "symbol", "color", "size"), drawn
        as crosses by default: points placed into the map (adversarial or uploaded inputs).
    """
    coords = np.asarray(coords, dtype=np.float32)
    n = len(coords)
    size = marker_size or (6 if n <= 2000 else 4 if n <= 20000 else 2.5)
    colour = np.asarray(colour)
    fig = go.Figure()
    if categorical:
        for code, name in enumerate(category_names):
            rows = np.flatnonzero(colour == code)
            if len(rows) == 0:
                continue
            fig.add_trace(go.Scattergl(
                x=coords[rows, 0], y=coords[rows, 1], mode="markers", name=str(name),
                marker={"size": size, "color": CLASS_COLOURS[code % len(CLASS_COLOURS)], "opacity": 0.8},
                customdata=_customdata(rows, split_text, true_names, pred_names, confidence), hovertemplate=HOVER,
            ))
    else:
        rows = np.arange(n)
        fig.add_trace(go.Scattergl(
            x=coords[:, 0], y=coords[:, 1], mode="markers", name=colour_name, showlegend=False,
            marker={"size": size, "color": colour.astype(np.float64), "colorscale": "Viridis", "opacity": 0.85,
                    "colorbar": {"title": {"text": colour_name}, "thickness": 14}},
            customdata=_customdata(rows, split_text, true_names, pred_names, confidence),
            hovertemplate=HOVER.replace("<extra></extra>", f"<br>{colour_name} %{{marker.color:.3f}}<extra></extra>"),
        ))
    for layer in ([] if overlay is None else overlay if isinstance(overlay, list) else [overlay]):
        if not len(layer["coords"]):
            continue
        over = np.asarray(layer["coords"], dtype=np.float32)
        fig.add_trace(go.Scattergl(
            x=over[:, 0], y=over[:, 1], mode="markers", name=layer.get("name", "overlay"),
            marker={"size": layer.get("size", max(7.0, size * 2)), "symbol": layer.get("symbol", "x"),
                    "color": layer.get("color", "#000000"), "line": {"width": 1}},
            customdata=_columns(-1 - np.arange(len(over)), np.asarray(layer["text"], dtype=object)),
            hovertemplate="%{customdata[1]}<extra></extra>",
        ))
    if neighbours is not None and len(neighbours):
        nb = np.asarray(neighbours, dtype=int)
        fig.add_trace(go.Scattergl(
            x=coords[nb, 0], y=coords[nb, 1], mode="markers", name="nearest neighbours (activations)",
            marker={"size": 11, "symbol": "circle-open", "color": "#e03131", "line": {"width": 2}},
            customdata=_customdata(nb, split_text, true_names, pred_names, confidence), hovertemplate=HOVER,
        ))
    if highlight is not None and 0 <= highlight < n:
        fig.add_trace(go.Scattergl(
            x=coords[[highlight], 0], y=coords[[highlight], 1], mode="markers", name=f"selected #{highlight}",
            marker={"size": 18, "symbol": "circle-open", "color": "#000000", "line": {"width": 3}},
            customdata=_customdata(np.asarray([highlight]), split_text, true_names, pred_names, confidence),
            hovertemplate=HOVER,
        ))
    fig.update_layout(
        # No dragmode / clickmode here: Streamlit then pans on drag and selects on click, and the
        # toolbar's box / lasso buttons select regions (with dragmode "select" it ignores clicks).
        title=title, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"title": {"text": colour_name}, "itemsizing": "constant"}, plot_bgcolor="#ffffff",
        xaxis={"zeroline": False, "showgrid": False, "title": None, "tickfont": {"size": 9, "color": "#adb5bd"}},
        yaxis={"zeroline": False, "showgrid": False, "title": None, "tickfont": {"size": 9, "color": "#adb5bd"},
               "scaleanchor": "x", "scaleratio": 1},
        uirevision="map",  # keep zoom and legend toggles across reruns of the same map
    )
    return fig


def selection_histogram(counts_correct: np.ndarray, counts_wrong: np.ndarray, class_names: Sequence[str],
                        title: str) -> go.Figure:
    """Stacked bars of the selected points per true class: right (green) and wrong (red) predictions."""
    names = [str(c) for c in class_names]
    fig = go.Figure([
        go.Bar(x=names, y=counts_correct, name="predicted right", marker_color="#2f9e44"),
        go.Bar(x=names, y=counts_wrong, name="predicted wrong", marker_color="#e03131"),
    ])
    fig.update_layout(barmode="stack", title=title, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis={"title": "true class", "type": "category"}, yaxis={"title": "points"},
                      legend={"orientation": "h", "y": -0.3})
    return fig


def palette_rgb(n: int) -> np.ndarray:
    """(n, 3) uint8: the class colours of the map as RGB."""
    hexes = [CLASS_COLOURS[k % len(CLASS_COLOURS)] for k in range(max(1, n))]
    return np.asarray([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hexes], dtype=np.uint8)


def _png_uri(image: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def density_map_figure(image: np.ndarray, x0: float, y0: float, step: float, *, coords: np.ndarray,
                       rows: np.ndarray, codes: np.ndarray | None, category_names: Sequence[str],
                       true_names: np.ndarray, pred_names: np.ndarray, confidence: np.ndarray, title: str,
                       colour_name: str, highlight: np.ndarray | None = None, height: int = 640) -> go.Figure:
    """Every point as a density raster (an RGB image, row 0 the lowest y, drawn as a PNG so the browser gets
    one small picture instead of a million markers) under a WebGL overlay of sampled points.

    ``coords`` / ``codes`` / the name arrays are the overlay's (one entry each); ``rows`` their row indices in
    the map (``customdata[0]``: a click or a selection maps back to rows, as :func:`map_figure`).
    ``highlight``: (m, 2) coordinates drawn with a ring (the clicked point).
    """
    fig = go.Figure(go.Image(source=_png_uri(np.ascontiguousarray(image)), x0=x0 + step / 2, y0=y0 + step / 2,
                             dx=step, dy=step, hoverinfo="skip", name="all points (density)"))
    coords = np.asarray(coords, dtype=np.float32)
    groups = [(None, np.arange(len(coords)))] if codes is None else [
        (k, np.flatnonzero(codes == k)) for k in range(len(category_names))]
    for code, members in groups:
        if not len(members):
            continue
        colour = "#343a40" if code is None else CLASS_COLOURS[code % len(CLASS_COLOURS)]
        fig.add_trace(go.Scattergl(
            x=coords[members, 0], y=coords[members, 1], mode="markers",
            name="sampled points" if code is None else str(category_names[code]),
            marker={"size": 3.5, "color": colour, "opacity": 0.9, "line": {"width": 0.4, "color": "#ffffff"}},
            customdata=_columns(np.asarray(rows)[members], true_names[members], pred_names[members],
                                np.round(confidence[members], 4)),
            hovertemplate="#%{customdata[0]}<br>label %{customdata[1]}<br>prediction %{customdata[2]}"
                          "<br>confidence %{customdata[3]:.3f}<extra></extra>",
        ))
    if highlight is not None and len(highlight):
        fig.add_trace(go.Scattergl(x=highlight[:, 0], y=highlight[:, 1], mode="markers", name="selected",
                                   marker={"size": 16, "symbol": "circle-open", "color": "#000000",
                                           "line": {"width": 3}}, hoverinfo="skip"))
    side = step * image.shape[0]
    fig.update_layout(
        title=title, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10}, plot_bgcolor="#ffffff",
        legend={"title": {"text": colour_name}, "itemsizing": "constant"},
        xaxis={"zeroline": False, "showgrid": False, "title": None, "range": [x0, x0 + side],
               "tickfont": {"size": 9, "color": "#adb5bd"}},
        # an image reverses the y axis unless told otherwise: row 0 is the lowest y here
        yaxis={"zeroline": False, "showgrid": False, "title": None, "range": [y0, y0 + side], "autorange": False,
               "tickfont": {"size": 9, "color": "#adb5bd"}, "scaleanchor": "x", "scaleratio": 1},
        uirevision="precomputed-map",
    )
    return fig


def class_counts_figure(counts: np.ndarray, class_names: Sequence[str], title: str) -> go.Figure:
    """Bars of the selected points per predicted class (rows without a true label)."""
    fig = go.Figure(go.Bar(x=[str(c) for c in class_names], y=counts, marker_color="#1f77b4",
                           name="predicted class"))
    fig.update_layout(title=title, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis={"title": "predicted class", "type": "category"}, yaxis={"title": "points"})
    return fig
