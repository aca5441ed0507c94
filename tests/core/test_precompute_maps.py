"""core/precompute/maps.py: the map of every precomputed point, its raster, its overlay and selections over all points."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from core.precompute.maps import (
    _ray_cast,
    chunks,
    density_raster,
    find_activations,
    find_predictions,
    overlay_sample,
    pca_map,
    predictions_of,
    publish_arrays,
    raster_rgb,
    select_box,
    select_polygon,
)
from core.store import ArtifactStore

MODEL, DATA = "a" * 64, "b" * 64


@pytest.fixture
def published(tmp_path):
    rng = np.random.default_rng(3)
    # far from the origin and of unequal spread: a covariance summed naively would lose digits
    x = (rng.normal(size=(2500, 12)) * np.arange(1, 13) + 1000.0).astype(np.float32)
    proba = rng.dirichlet(np.ones(4), size=len(x))
    url = str(tmp_path / "store")
    publish_arrays(url, "activations", {"layer": "relu3"}, MODEL, DATA, {"activations": x}, shard_rows=300)
    publish_arrays(url, "predictions", {}, MODEL, DATA, {"proba": proba, "predicted": proba.argmax(1)}, shard_rows=300)
    return url, x, proba


def test_pca_of_all_points_in_chunks_equals_scikit_learn(published, tmp_path):
    url, x, _ = published
    found = find_activations(url, MODEL, DATA, "relu3")
    assert found is not None and found.rows == len(x)
    assert find_activations(url, MODEL, DATA, "relu2") is None  # another layer: another key
    starts = [s for s, _ in chunks(found, "activations", rows=1000)]
    assert starts == [0, 1200, 2400]  # chunks end on shard boundaries
    store = ArtifactStore(tmp_path / "cache")
    points = pca_map(found, "relu3", store=store, rows=1000)
    reference = PCA(2).fit(x.astype(np.float64))
    np.testing.assert_allclose(points.components, reference.components_, atol=1e-9)
    np.testing.assert_allclose(points.coords, reference.transform(x.astype(np.float64)), atol=2e-4)
    np.testing.assert_allclose(points.explained, reference.explained_variance_ratio_, rtol=1e-9)
    again = pca_map(found, "relu3", store=store, rows=1000)  # from the store: the same arrays
    assert store.stats().hits == 1 and np.array_equal(again.coords, points.coords)
    np.testing.assert_allclose(points.transform(x[:5]), points.coords[:5], atol=1e-4)


def test_predictions_are_read_back_per_row(published):
    url, _, proba = published
    predicted, confidence = predictions_of(find_predictions(url, MODEL, DATA), rows=700)
    assert np.array_equal(predicted, proba.argmax(1))
    np.testing.assert_allclose(confidence, proba.max(1), rtol=1e-6)


def test_raster_counts_every_point_once_per_class():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(20_000, 2)).astype(np.float32)
    labels = rng.integers(0, 5, len(coords))
    raster = density_raster(coords, labels, 5, bins=64)
    assert raster.counts.shape == (5, 64, 64) and raster.total.sum() == len(coords)
    assert np.array_equal(raster.counts.sum(axis=(1, 2)), np.bincount(labels, minlength=5))
    # a point lands in the bin its coordinates say (row: y, col: x), the extent is square and covers all
    k = 123
    col = int((coords[k, 0] - raster.x0) // raster.step)
    row = int((coords[k, 1] - raster.y0) // raster.step)
    assert raster.counts[labels[k], row, col] >= 1
    assert raster.x0 < coords[:, 0].min() and raster.x0 + 64 * raster.step > coords[:, 0].max()
    assert raster.y0 < coords[:, 1].min() and raster.y0 + 64 * raster.step > coords[:, 1].max()
    image = raster_rgb(raster, np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0], [9, 9, 9]]))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert (image[raster.total == 0] == 255).all() and (image[raster.total > 0] < 255).any(axis=-1).all()


def test_overlay_is_a_valid_stratified_sample():
    rng = np.random.default_rng(1)
    labels = rng.choice(4, size=100_000, p=[0.7, 0.2, 0.0999, 0.0001])
    rows = overlay_sample(labels, len(labels), size=5000, seed=0)
    assert len(rows) <= 5000 + 20 and len(np.unique(rows)) == len(rows) and np.all(np.diff(rows) > 0)
    assert rows.min() >= 0 and rows.max() < len(labels)
    counts, share = np.bincount(labels[rows], minlength=4), np.bincount(labels, minlength=4) / len(labels)
    assert np.all(np.abs(counts[:3] - 5000 * share[:3]) <= 1)  # each class its share
    assert counts[3] == np.sum(labels == 3)  # a rare class: all of it (fewer than the floor of 20)
    assert np.array_equal(rows, overlay_sample(labels, len(labels), size=5000, seed=0))  # fixed seed
    assert np.array_equal(overlay_sample(None, 10, size=5000), np.arange(10))


def _inside_winding(px: float, py: float, xs, ys) -> bool:
    """Brute force, another algorithm than the code's: the winding number of the polygon around the point."""
    angle = 0.0
    for ax, ay, bx, by in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1)):
        a, b = np.arctan2(ay - py, ax - px), np.arctan2(by - py, bx - px)
        angle += (b - a + np.pi) % (2 * np.pi) - np.pi
    return abs(angle) > np.pi


def test_box_and_lasso_select_exactly_the_points_inside():
    rng = np.random.default_rng(2)
    coords = rng.uniform(-10, 10, size=(3000, 2)).astype(np.float32)
    box = select_box(coords, (3.0, -2.5), (-4.0, 6.0))  # corners in any order
    brute = [i for i, (x, y) in enumerate(coords) if -2.5 <= x <= 3.0 and -4.0 <= y <= 6.0]
    assert box.tolist() == brute and len(brute) > 100
    xs = np.array([-8.0, 7.0, 1.0, 6.0, -5.0])  # a concave pentagon
    ys = np.array([-7.0, -6.0, 0.0, 8.0, 5.0])
    lasso = select_polygon(coords, xs, ys)
    brute = [i for i, (x, y) in enumerate(coords) if _inside_winding(float(x), float(y), xs, ys)]
    assert lasso.tolist() == brute and len(brute) > 500
    assert np.flatnonzero(_ray_cast(coords, xs, ys)).tolist() == brute  # the fallback without matplotlib
    assert len(select_polygon(coords, [0, 1], [0, 1])) == 0  # not a polygon
