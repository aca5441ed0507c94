"""Maps of every precomputed point: a 2-D map of up to millions of rows, a density raster, a sampled overlay,
and selections over all points.

The embeddings page maps the points it computes itself (up to MNIST's 70,000). When a precompute run
(``python -m core precompute SCENARIO --ops activations --layer L --store URL``) has published a layer's
activations for the mapped rows, this module maps **all** of them without holding them as float64:

- :func:`find_activations` / :func:`find_predictions`: the published results, by the precompute's own key
  (:func:`core.precompute.find`; no second key scheme).
- :func:`pca_map`: PCA over all N points, read shard by shard: pass 1 sums the rows and their d x d products
  (float64, shifted by the first chunk's mean against cancellation), pass 2 projects each chunk onto the two
  leading axes (signed as scikit-learn signs them). Only one chunk is float64 at a time. Cached in the
  artifact store by the precompute's key (which holds the model's and the rows' fingerprints and the layer).
  Measured: 1,000,000 x 64 in ~4 s on the 2-core CI machine (docs/benchmarks.md). t-SNE / UMAP are not
  offered here: fitted on a sample and the rest placed with their ``transform`` they take minutes at 1M.
- :func:`density_raster`: per-class counts on a square grid (one ``bincount``), :func:`raster_rgb` an image
  of them (class colours mixed by count, intensity by log count).
- :func:`overlay_sample`: a stratified sample (fixed seed) drawn as points over the raster; it keeps the
  rows' indices so hover, click and selection map back to rows.
- :func:`select_box` / :func:`select_polygon`: every point inside a box or a lasso, over all N (vectorised;
  matplotlib's ``Path`` when installed, else own ray casting).
- :func:`publish_arrays`: write arrays computed elsewhere as a precompute result (the same shards and
  manifest); the benchmark and the tests use it for synthetic activations.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ParameterError
from core.precompute.output import FORMAT, VERSION, INDEX, Precomputed, Prefix, encode_shard, describe_columns, \
    find, now_iso, sha256

CHUNK_ROWS = 65_536  # rows per float64 chunk: 65,536 x 64 x 8 bytes = 32 MB
MAP_LIBRARIES = ("numpy",)


def find_activations(store_url: str, model_fingerprint: str, data_fingerprint: str, layer: str) -> Precomputed | None:
    """Published activations of ``layer`` for these rows of this model (the precompute's ``activations``), or None."""
    return find(store_url, model_fingerprint, data_fingerprint, "activations", {"layer": layer})


def find_predictions(store_url: str, model_fingerprint: str, data_fingerprint: str) -> Precomputed | None:
    """Published ``predictions`` (``proba``, ``predicted``) of the same rows and model, or None."""
    return find(store_url, model_fingerprint, data_fingerprint, "predictions", {})


def chunks(found: Precomputed, column: str, rows: int = CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """(start, rows start..start+len) of one column, in chunks that end on shard boundaries (each shard is
    decoded once) and hold about ``rows`` rows."""
    bounds, start = [], 0
    for entry in found.manifest["shards"]:
        if entry["stop"] - start >= rows:
            bounds.append((start, entry["stop"]))
            start = entry["stop"]
    if start < found.rows:
        bounds.append((start, found.rows))
    for a, b in bounds:
        yield a, found.read(slice(a, b), [column])[column]


# -- the map -----------------------------------------------------------------------------------------
@dataclass
class PointsMap:
    """PCA coordinates of every precomputed point.

    coords : (n, 2) float32; mean : (d,); components : (2, d) the axes; explained : (2,) their share of variance.
    """

    coords: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray
    layer: str
    key: str
    seconds: float

    @property
    def n(self) -> int:
        return len(self.coords)

    def transform(self, activations: np.ndarray) -> np.ndarray:
        """New rows of the same layer placed into this map."""
        return ((np.asarray(activations, dtype=np.float64) - self.mean) @ self.components.T).astype(np.float32)


def pca_axes(found: Precomputed, column: str = "activations", n_components: int = 2,
             rows: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, axes (k, d), explained variance ratio (k,)) of all rows, from the covariance summed chunk by chunk."""
    from core.embeddings.projection import _signed

    n, shift, total, gram = 0, None, None, None
    for _, part in chunks(found, column, rows):
        x = np.asarray(part, dtype=np.float64).reshape(len(part), -1)
        if shift is None:
            shift = x.mean(axis=0)  # sums of (x - shift): no cancellation when the mean is far from 0
            total, gram = np.zeros_like(shift), np.zeros((len(shift), len(shift)))
        x -= shift
        total += x.sum(axis=0)
        gram += x.T @ x
        n += len(x)
    if n < 2 or shift is None:
        raise ParameterError(f"A map needs at least 2 points; the precomputed result has {n}.")
    centre = total / n
    cov = (gram - n * np.outer(centre, centre)) / (n - 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:n_components]
    axes = _signed(vectors[:, order].T)
    explained = values[order] / max(float(values.sum()), 1e-300)
    return shift + centre, axes, explained


def pca_map(found: Precomputed, layer: str, store: Any = None, rows: int = CHUNK_ROWS) -> PointsMap:
    """The PCA map of every row of ``found`` (activations), computed once and then read from the artifact store."""
    from core.store import default_store

    store = store or default_store()

    def compute() -> PointsMap:
        started = time.perf_counter()
        mean, axes, explained = pca_axes(found, "activations", 2, rows)
        coords = np.empty((found.rows, 2), dtype=np.float32)
        for start, part in chunks(found, "activations", rows):
            x = np.asarray(part, dtype=np.float64).reshape(len(part), -1)
            coords[start:start + len(x)] = (x - mean) @ axes.T
        if axes.shape[0] < 2:  # a single unit: the second axis is 0
            coords[:, axes.shape[0]:] = 0.0
        return PointsMap(coords, mean, axes, explained, layer, found.key, time.perf_counter() - started)

    manifest = found.manifest
    return store.cached(compute, op="precomputed_map", model_fingerprint=manifest.get("model"),
                        data_fingerprint=manifest.get("data"),
                        params={"precompute_key": found.key, "layer": layer, "method": "pca", "n_components": 2},
                        libraries=MAP_LIBRARIES)


def predictions_of(found: Precomputed, rows: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class int64, its probability float32) of every row of a ``predictions`` result, chunk by chunk."""
    predicted = np.empty(found.rows, dtype=np.int64)
    confidence = np.empty(found.rows, dtype=np.float32)
    for start, proba in chunks(found, "proba", rows):
        k = proba.argmax(axis=1)
        predicted[start:start + len(k)] = k
        confidence[start:start + len(k)] = proba[np.arange(len(k)), k]
    return predicted, confidence


# -- the raster ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Raster:
    """Counts of points per class and bin: ``counts[c, row, col]``, row 0 the lowest y, col 0 the lowest x."""

    counts: np.ndarray  # (n_classes, bins, bins) int32
    x0: float
    y0: float
    step: float  # a bin's side in map units (square bins)

    @property
    def bins(self) -> int:
        return self.counts.shape[1]

    @property
    def total(self) -> np.ndarray:
        return self.counts.sum(axis=0)


def square_extent(coords: np.ndarray, pad: float = 0.02) -> tuple[float, float, float]:
    """(x0, y0, side) of a square around every point, ``pad`` of the side added on each edge."""
    lo, hi = coords.min(axis=0).astype(np.float64), coords.max(axis=0).astype(np.float64)
    side = float(max(hi - lo)) or 1.0
    centre = (lo + hi) / 2
    side *= 1 + 2 * pad
    return float(centre[0] - side / 2), float(centre[1] - side / 2), side


def density_raster(coords: np.ndarray, labels: np.ndarray | None = None, n_classes: int = 1,
                   bins: int = 400) -> Raster:
    """Per-class counts of ``coords`` (n, 2) on a ``bins`` x ``bins`` square grid (labels None: one class)."""
    coords = np.asarray(coords)
    if len(coords) == 0:
        raise ParameterError("A raster needs at least one point.")
    x0, y0, side = square_extent(coords)
    step = side / bins
    col = np.clip(((coords[:, 0] - x0) / step).astype(np.int64), 0, bins - 1)
    row = np.clip(((coords[:, 1] - y0) / step).astype(np.int64), 0, bins - 1)
    flat = row * bins + col
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.min(initial=0) < 0 or labels.max(initial=0) >= n_classes:
            raise ParameterError(f"labels must be in 0..{n_classes - 1}.")
        flat += labels * (bins * bins)
    counts = np.bincount(flat, minlength=n_classes * bins * bins).astype(np.int32)
    return Raster(counts.reshape(n_classes, bins, bins), x0, y0, step)


def raster_rgb(raster: Raster, palette: np.ndarray) -> np.ndarray:
    """(bins, bins, 3) uint8 over white: each bin the count-weighted mix of its classes' colours (palette
    (n_classes, 3) in 0..255), its strength log(1 + count) / log(1 + the largest count). Row 0 is the lowest y."""
    counts = raster.counts.astype(np.float32)
    total = counts.sum(axis=0)
    palette = np.asarray(palette, dtype=np.float32)[: len(counts)]
    mix = np.einsum("cyx,cd->yxd", counts, palette) / np.maximum(total, 1)[..., None]
    strength = (np.log1p(total) / np.log1p(max(float(total.max()), 1.0)))[..., None]
    strength = np.where(total[..., None] > 0, 0.25 + 0.75 * strength, 0.0)  # a single point stays visible
    return np.clip(255 - strength * (255 - mix), 0, 255).astype(np.uint8)


# -- the overlay ------------------------------------------------------------------------------------
def overlay_sample(labels: np.ndarray | None, n: int, size: int = 5000, seed: int = 0,
                   min_per_class: int = 20) -> np.ndarray:
    """Sorted row indices of a stratified sample of at most ``size`` of ``n`` rows: each class gets its share
    (largest remainders), at least ``min_per_class`` (or all of it), drawn without replacement with ``seed``."""
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, size, replace=False))
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    exact = size * counts / n
    quota = np.floor(exact).astype(np.int64)
    quota[np.argsort(exact - quota)[::-1][: size - quota.sum()]] += 1
    quota = np.minimum(np.maximum(quota, np.minimum(counts, min_per_class)), counts)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    picked = [order[s + rng.choice(c, q, replace=False)] for s, c, q in zip(starts, counts, quota) if q]
    return np.sort(np.concatenate(picked))


# -- selections over all points --------------------------------------------------------------------
def select_box(coords: np.ndarray, x: tuple[float, float], y: tuple[float, float]) -> np.ndarray:
    """Sorted indices of the points inside the box (edges included; the corners in any order)."""
    (x0, x1), (y0, y1) = sorted(map(float, x)), sorted(map(float, y))
    c = np.asarray(coords)
    return np.flatnonzero((c[:, 0] >= x0) & (c[:, 0] <= x1) & (c[:, 1] >= y0) & (c[:, 1] <= y1))


def _ray_cast(points: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Inside-polygon test by ray casting (even-odd rule), vectorised over points, looped over edges."""
    px, py = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    inside = np.zeros(len(points), dtype=bool)
    for ax, ay, bx, by in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1)):
        crosses = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (px < at)
    return inside


def select_polygon(coords: np.ndarray, xs: Any, ys: Any, chunk: int = 262_144) -> np.ndarray:
    """Sorted indices of the points inside the polygon (a lasso: its vertices in order, closed implicitly).

    Only the points inside the polygon's bounding box are tested; matplotlib's ``Path.contains_points``
    when matplotlib is installed, else own ray casting (the same even-odd answer off the boundary)."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if len(xs) < 3 or len(xs) != len(ys):
        return np.empty(0, dtype=np.int64)
    candidates = select_box(coords, (xs.min(), xs.max()), (ys.min(), ys.max()))
    if not len(candidates):
        return candidates
    try:
        from matplotlib.path import Path

        path = Path(np.column_stack([xs, ys]))

        def test(points: np.ndarray) -> np.ndarray:
            return path.contains_points(points)
    except ImportError:  # pragma: no cover - matplotlib comes with the requirements
        def test(points: np.ndarray) -> np.ndarray:
            return _ray_cast(points, xs, ys)
    c = np.asarray(coords)
    keep = [candidates[i:i + chunk][test(c[candidates[i:i + chunk]].astype(np.float64))]
            for i in range(0, len(candidates), chunk)]
    return np.concatenate(keep)


# -- writing arrays as a precompute result ----------------------------------------------------------
def publish_arrays(store_url: str, op: str, params: dict[str, Any], model_fingerprint: str, data_fingerprint: str,
                   columns: dict[str, np.ndarray], shard_rows: int = 65_536,
                   source: dict[str, Any] | None = None) -> Precomputed:
    """Publish ``columns`` (each with one row per sample) as the result of ``op`` with ``params`` for these
    fingerprints, in the precompute's own format (shards, then the manifest): the key is the precompute's.

    For arrays computed outside ``python -m core precompute`` (the benchmark's synthetic activations, tests).
    """
    from core.precompute.ops import get_op
    from core.precompute.plan import precompute_key
    from core.store import library_versions

    spec = get_op(op)
    key = precompute_key(spec, model_fingerprint, data_fingerprint, params)
    n = len(next(iter(columns.values())))
    if any(len(v) != n for v in columns.values()):
        raise ParameterError("Every column needs one row per sample.")
    prefix = Prefix(store_url, key)
    prefix.clear()
    shards = []
    for start in range(0, n, shard_rows):
        stop = min(n, start + shard_rows)
        arrays = {INDEX: np.arange(start, stop, dtype=np.int64), **{k: v[start:stop] for k, v in columns.items()}}
        payload = encode_shard(arrays)
        name = f"shard-published-{start:010d}.npz"
        prefix.write(name, payload)
        shards.append({"path": name, "start": start, "stop": stop, "sha256": sha256(payload), "bytes": len(payload)})
    first = {k: v[:1] for k, v in columns.items()}
    prefix.publish({
        "format": FORMAT, "version": VERSION, "key": key, "op": op, "method": None, "params": params,
        "main": spec.main, "model": model_fingerprint, "data": data_fingerprint, "rows": n,
        "columns": describe_columns(first), "shards": shards, "sum": 0.0, "abs_sum": 0.0, "engine": "published",
        "workers": 1, "seconds": 0.0, "created": now_iso(), "libraries": library_versions(spec.libraries),
        "workers_seen": [], "source": source or {},
    })
    opened = prefix.open(verify=False)
    assert opened is not None
    return opened
