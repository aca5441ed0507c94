"""Downloads of the attribution grid: a PNG drawn server-side (no browser or kaleido needed) and
the raw maps as .npz. Same colours and clipping as the on-screen figure."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import numpy as np

from components.figures.attributions import DIVERGING, SEQUENTIAL, display_range, greyscale
from core.attribution import ImageAttribution


def _hex(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)


def colourize(values: np.ndarray, low: float, high: float, scale: list[list]) -> np.ndarray:
    """Map values to RGB (H, W, 3) float in [0, 255] by linear interpolation between the scale's stops."""
    t = np.clip((np.asarray(values, dtype=np.float64) - low) / max(high - low, 1e-12), 0.0, 1.0)
    stops = np.array([s for s, _ in scale])
    colours = np.stack([_hex(c) for _, c in scale])
    return np.stack([np.interp(t, stops, colours[:, k]) for k in range(3)], axis=-1)


def cell_image(image: np.ndarray, result: ImageAttribution | None, row: int, *, opacity: float, percentile: float,
               overlay: bool) -> np.ndarray:
    """One grid cell as uint8 RGB (H, W, 3): the original, or the map blended over its greyscale."""
    grey = greyscale(image)
    base = np.repeat((np.clip(grey, 0, 1) * 255.0)[..., None], 3, axis=-1)
    if result is None:
        if image.shape[0] == 3:
            return (np.clip(np.transpose(image, (1, 2, 0)), 0, 1) * 255).round().astype(np.uint8)
        return base.round().astype(np.uint8)
    heat = result.heatmap()[row]
    low, high = display_range(heat, result.signed, percentile)
    colour = colourize(heat, low, high, DIVERGING if result.signed else SEQUENTIAL)
    alpha = opacity if overlay else 1.0
    return (alpha * colour + (1 - alpha) * base).round().astype(np.uint8)


def grid_png(images: np.ndarray, results: dict[str, ImageAttribution], titles: dict[str, str],
             row_labels: Sequence[str], *, opacity: float = 0.7, percentile: float = 99.0, overlay: bool = True,
             cell: int = 128) -> bytes:
    """The grid (Original | methods...) as PNG bytes, one row per image, titles on top, labels on the left."""
    from PIL import Image, ImageDraw

    methods = list(results)
    n, cols = len(images), len(methods) + 1
    gap, top, left = 6, 28, 150
    canvas = Image.new("RGB", (left + cols * (cell + gap), top + n * (cell + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(["Original", *[titles.get(m, m) for m in methods]]):
        draw.text((left + c * (cell + gap) + 4, 8), title[:22], fill="black")
    for r in range(n):
        y = top + r * (cell + gap)
        draw.text((6, y + cell // 2 - 6), str(row_labels[r])[:24], fill="black")
        for c, method in enumerate([None, *methods]):
            rgb = cell_image(images[r], None if method is None else results[method], r, opacity=opacity,
                             percentile=percentile, overlay=overlay)
            tile = Image.fromarray(rgb).resize((cell, cell), Image.Resampling.NEAREST)
            canvas.paste(tile, (left + c * (cell + gap), y))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def maps_npz(images: np.ndarray, results: dict[str, ImageAttribution], *, rows: Sequence[int] | None = None,
             proba: np.ndarray | None = None, meta: dict | None = None) -> bytes:
    """Every method's raw maps and extras (``<method>/maps``, ``<method>/heatmap`` ...) plus the images."""
    arrays: dict[str, np.ndarray] = {"images": np.asarray(images, dtype=np.float32)}
    if rows is not None:
        arrays["rows"] = np.asarray(rows)
    if proba is not None:
        arrays["probabilities"] = np.asarray(proba)
    for method, result in results.items():
        for key, value in result.to_arrays().items():
            arrays[f"{method}/{key}"] = value
        arrays[f"{method}/params"] = np.array(json.dumps(result.params))
        arrays[f"{method}/signed"] = np.array(result.signed)
        arrays[f"{method}/output"] = np.array(result.output)
    if meta:
        arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()
