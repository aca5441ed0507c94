"""PNG and .npz exports of the attribution grid, and the shared colour scaling."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

from components.figures.attributions import DIVERGING, SEQUENTIAL, attribution_grid, display_range
from components.image_export import cell_image, colourize, grid_png, maps_npz
from core.attribution import ImageAttribution


def result(signed: bool, n: int = 2, seed: int = 0) -> ImageAttribution:
    maps = np.random.default_rng(seed).normal(size=(n, 1, 8, 8)).astype(np.float32)
    return ImageAttribution("m", maps if signed else np.abs(maps), np.zeros(n, int), "logit", signed, {"k": 1},
                            {"gap": np.arange(n, dtype=float)})


def test_display_range_is_symmetric_for_signed_maps_and_clips_at_the_percentile():
    heat = np.array([[-4.0, 1.0], [2.0, 100.0]])
    assert display_range(heat, True, 100) == (-100.0, 100.0)
    low, high = display_range(heat, True, 50)
    assert low == -high and high == np.percentile(np.abs(heat), 50)
    assert display_range(np.abs(heat), False, 100) == (0.0, 100.0)
    assert display_range(np.zeros((2, 2)), True, 99)[1] > 0  # an all-zero map still has a valid scale


def test_colourize_hits_the_scale_ends_and_the_middle():
    rgb = colourize(np.array([-1.0, 0.0, 1.0, 5.0]), -1.0, 1.0, DIVERGING)
    np.testing.assert_allclose(rgb[0], [0x21, 0x66, 0xAC])
    np.testing.assert_allclose(rgb[1], [0xF7, 0xF7, 0xF7])
    np.testing.assert_allclose(rgb[2], rgb[3])  # clipped above the top
    np.testing.assert_allclose(colourize(np.array([0.0]), 0.0, 1.0, SEQUENTIAL)[0], [0, 0, 4])


def test_cell_image_blends_the_map_over_the_greyscale_image():
    image = np.full((1, 8, 8), 0.5, dtype=np.float32)
    r = result(True)
    opaque = cell_image(image, r, 0, opacity=1.0, percentile=100, overlay=True)
    transparent = cell_image(image, r, 0, opacity=0.0, percentile=100, overlay=True)
    assert opaque.shape == (8, 8, 3) and opaque.dtype == np.uint8
    assert (transparent == 128).all()  # opacity 0: the image alone
    assert not (opaque == 128).all()


def test_grid_png_has_one_tile_per_image_and_method():
    images = np.random.default_rng(1).uniform(size=(3, 1, 8, 8)).astype(np.float32)
    png = grid_png(images, {"a": result(True, 3), "b": result(False, 3)}, {"a": "A", "b": "B"}, ["x", "y", "z"], cell=64)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.format == "PNG"
    assert decoded.size == (150 + 3 * (64 + 6), 28 + 3 * (64 + 6))


def test_npz_holds_every_methods_maps_and_params():
    images = np.zeros((2, 1, 8, 8), dtype=np.float32)
    data = np.load(io.BytesIO(maps_npz(images, {"a": result(True)}, rows=[4, 9], meta={"scenario": "digits"})))
    assert data["a/maps"].shape == (2, 1, 8, 8) and data["a/heatmap"].shape == (2, 8, 8)
    assert json.loads(str(data["a/params"])) == {"k": 1} and bool(data["a/signed"])
    assert list(data["rows"]) == [4, 9] and json.loads(str(data["meta"]))["scenario"] == "digits"
    np.testing.assert_array_equal(data["a/extra_gap"], [0.0, 1.0])


def test_grid_figure_layout():
    images = np.zeros((2, 1, 8, 8), dtype=np.float32)
    proba = np.array([[0.1, 0.9], [0.6, 0.4]])
    fig = attribution_grid(images, {"a": result(True), "b": result(False)}, {"a": "A", "b": "B"}, ["r1", "r2"], proba,
                           ("0", "1"), opacity=0.5)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 2 and list(bars[0].marker.color) == ["#b2182b", "#4c78a8"]  # explained 0, predicted 1
    maps = [t for t in fig.data if t.type == "heatmap" and t.opacity == 0.5]
    assert len(maps) == 4 and maps[0].zmid is None and maps[0].zmin == -maps[0].zmax
    assert maps[1].zmin == 0.0  # unsigned map: sequential scale from 0
    assert fig.layout.yaxis.title.text == "r1"
