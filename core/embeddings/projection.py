"""2-D maps of activations: PCA, t-SNE (openTSNE) and UMAP, with placement of new points.

A map is computed in composable steps, like openTSNE's own API: optional standardisation and
PCA pre-reduction (:class:`Preprocessor`), then the projection (:func:`fit_projection`), then
its quality (:func:`core.embeddings.quality.map_quality`). :func:`embed` runs them all behind
the ArtifactStore, so a map computed once (from the page or ``python -m core embed``) reopens
instantly; the fitted projection is stored in a second entry so new points (adversarial or
uploaded inputs) can be placed into the same map with :func:`place`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.embeddings.quality import MapQuality, map_quality
from core.errors import ParameterError, TrustLensError, check_int
from core.progress import ProgressCallback, report, subrange
from core.rng import exclusive_global_rng
from core.store import ArtifactStore, StoreReadError, default_store

log = logging.getLogger(__name__)
# Fitted maps (model key -> FittedMap) a read-only store could not keep: the last few, for placing new points.
_unsaved: dict[str, Any] = {}
_UNSAVED_MAX = 4

METHODS = ("pca", "tsne", "umap")
METRICS = ("euclidean", "cosine", "manhattan", "correlation")
LIBRARIES = ("numpy", "scikit-learn", "openTSNE", "umap-learn", "pynndescent", "numba")
LayoutCallback = Callable[[int, np.ndarray], None]


@dataclass(frozen=True)
class EmbeddingParams:
    """Everything a map depends on besides the activations (part of the cache key).

    Attributes
    ----------
    method : {"pca", "tsne", "umap"}
    n_components : {2, 3}
    standardize : bool
        Scale every unit to zero mean and unit variance first (units with no variance are kept at 0).
    pca_dims : int
        Pre-reduce to this many principal components before t-SNE / UMAP (0: never). Ignored when
        the activations have fewer dimensions.
    perplexity, early_exaggeration, exaggeration : float
        t-SNE: effective number of neighbours; exaggeration of the first phase and of the main phase.
    early_iter, n_iter : int
        t-SNE iterations of the exaggerated first phase and of the main phase.
    n_neighbors, min_dist, metric :
        UMAP's parameters of the same names.
    seed : int
    """

    method: str = "pca"
    n_components: int = 2
    standardize: bool = False
    pca_dims: int = 50
    perplexity: float = 30.0
    early_exaggeration: float = 12.0
    exaggeration: float = 1.0
    early_iter: int = 100
    n_iter: int = 250
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "euclidean"
    seed: int = 0

    def validated(self) -> "EmbeddingParams":
        owner = "EmbeddingParams"
        if self.method not in METHODS:
            raise ParameterError(f"The 'method' parameter of {owner} must be one of {METHODS}. Got {self.method!r} instead.",
                                 hint="use 'pca' (instant), 'tsne' or 'umap'.")
        if self.n_components not in (2, 3):
            raise ParameterError(f"The 'n_components' parameter of {owner} must be 2 or 3. Got {self.n_components!r} instead.")
        check_int("pca_dims", self.pca_dims, owner, minimum=0)
        check_int("early_iter", self.early_iter, owner, minimum=0)
        check_int("n_iter", self.n_iter, owner, minimum=1)
        check_int("n_neighbors", self.n_neighbors, owner, minimum=2)
        check_int("seed", self.seed, owner, minimum=0)
        for name in ("perplexity", "early_exaggeration", "exaggeration"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value <= 0:
                raise ParameterError(f"The {name!r} parameter of {owner} must be a number > 0. Got {value!r} instead.")
        if not isinstance(self.min_dist, (int, float)) or not 0 <= self.min_dist <= 1:
            raise ParameterError(f"The 'min_dist' parameter of {owner} must be in [0, 1]. Got {self.min_dist!r} instead.")
        if self.metric not in METRICS:
            raise ParameterError(f"The 'metric' parameter of {owner} must be one of {METRICS}. Got {self.metric!r} instead.")
        return self

    def key(self) -> dict[str, Any]:
        """Only the fields the chosen method reads (changing t-SNE's perplexity keeps the UMAP map)."""
        shared = {"method": self.method, "n_components": self.n_components, "standardize": self.standardize,
                  "pca_dims": self.pca_dims, "seed": self.seed}
        if self.method == "tsne":
            shared.update(perplexity=float(self.perplexity), early_exaggeration=float(self.early_exaggeration),
                          exaggeration=float(self.exaggeration), early_iter=self.early_iter, n_iter=self.n_iter)
        elif self.method == "umap":
            shared.update(n_neighbors=self.n_neighbors, min_dist=float(self.min_dist), metric=self.metric)
        return shared


def _signed(axes: np.ndarray) -> np.ndarray:
    """Each axis signed so that its largest loading is positive (scikit-learn's ``svd_flip`` convention)."""
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)]) if len(axes) else np.zeros(0)
    return axes * np.where(signs == 0, 1.0, signs)[:, None]


# -- preprocessing -----------------------------------------------------------------------------
def principal_axes(centred: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` leading principal axes (k, d) of centred points (n, d), each signed so that its largest
    loading is positive (scikit-learn's ``svd_flip`` convention: maps do not flip between runs);
    directions without variance (rank < k) are dropped.

    Tall data (d <= n; n may be 70,000): scikit-learn's ``PCA`` through the d x d covariance
    (``svd_solver="covariance_eigh"``). Wide data (a tf-idf layer: d = 21,665 words for 1,800 posts):
    own code, the eigendecomposition of the n x n Gram matrix of the points.
    """
    n, d = centred.shape
    k = min(int(k), n, d)
    if k < 1:
        return np.zeros((0, d))
    if d <= n:  # bench/libraries.py: 1.04x the former own eigh on MNIST (70,000 x 784), 1.6x (+1.8 ms) on digits
        from sklearn.decomposition import PCA

        pca = PCA(k, svd_solver="covariance_eigh").fit(centred)
        keep = pca.explained_variance_ > pca.explained_variance_.max(initial=0.0) * 1e-12
        return pca.components_[keep]
    # Own code, kept for speed and memory: bench/libraries.py measured PCA(svd_solver="full") 7x slower on
    # newsgroups' tf-idf layer (1,796 x 21,665, 50 axes: 14.7 s against 2.1 s; 18x for 2 axes), and it copies
    # the points and holds an n x d factor; the covariance solver would need d x d (3.7 GB), and eigh on that
    # crashed OpenBLAS.
    values, u = np.linalg.eigh(centred @ centred.T)
    order = np.argsort(values)[::-1][:k]
    keep = values[order] > values[order].max(initial=0.0) * 1e-12  # drop null directions (rank < k)
    axes = (centred.T @ u[:, order[keep]]).T / np.sqrt(values[order[keep]])[:, None]
    return _signed(axes)


SPARSE_DENSITY = 0.1  # a wide layer with at most this share of non-zero values is handled as a sparse matrix


def wide_sparse(x: np.ndarray):
    """``x`` as a float64 scipy CSR matrix when it has more columns than rows and at most
    :data:`SPARSE_DENSITY` of its values are non-zero (a tf-idf layer: newsgroups' 21,665 words hold ~0.5 %
    non-zero values), else None."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] <= x.shape[0] or np.count_nonzero(x) > SPARSE_DENSITY * x.size:
        return None
    from scipy import sparse

    return sparse.csr_matrix(x, dtype=np.float64)


def principal_axes_sparse(scaled, mean: np.ndarray, k: int) -> np.ndarray:
    """:func:`principal_axes` of ``scaled - mean`` (``scaled``: a sparse (n, d) matrix, d > n), through the
    same n x n Gram matrix, built from sparse products: (S - 1m')(S - 1m')' = SS' - (Sm)1' - 1(Sm)' + m'm.

    Own code, for speed: measured on newsgroups' tf-idf layer (1,796 x 21,665, 50 axes), the dense Gram
    matrix of the centred points took most of the Embeddings page's 38 s cold default here.
    """
    n, d = scaled.shape
    k = min(int(k), n, d)
    if k < 1:
        return np.zeros((0, d))
    from scipy.linalg import eigh

    sm = np.asarray(scaled @ mean).ravel()
    gram = np.asarray((scaled @ scaled.T).toarray()) - sm[:, None] - sm[None, :] + float(mean @ mean)
    values, u = eigh(gram, subset_by_index=(n - k, n - 1))  # the k largest only (1,796 x 1,796: 0.2 s, not 2 s)
    order = np.argsort(values)[::-1]
    keep = values[order] > values[order].max(initial=0.0) * 1e-12
    v = u[:, order[keep]]
    axes = (np.asarray(scaled.T @ v) - mean[:, None] * v.sum(axis=0)[None, :]).T / np.sqrt(values[order[keep]])[:, None]
    return _signed(axes)


@dataclass(frozen=True)
class Preprocessor:
    """Standardisation then PCA, fitted on the map's points and applied unchanged to new points."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray | None  # (k, d) or None when no reduction

    @classmethod
    def fit(cls, x: np.ndarray, standardize: bool, pca_dims: int) -> "Preprocessor":
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
        mean = x.mean(axis=0, dtype=np.float64)  # float64 sums without a float64 copy of x
        if standardize:
            std = x.std(axis=0, dtype=np.float64)
            scale = np.where(std > 1e-12, std, 1.0)
        else:
            scale = np.ones(x.shape[1])
        components = None
        if pca_dims and x.shape[1] > pca_dims:
            sparse = wide_sparse(x)
            if sparse is not None:  # a tf-idf layer: never materialise the centred points
                components = principal_axes_sparse(sparse.multiply(1.0 / scale).tocsr(), mean / scale, pca_dims)
            else:
                components = principal_axes((x - mean) / scale, pca_dims)
        return cls(mean, scale, components)

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.components is not None:
            # ((x - mean) / scale) @ C.T without building the centred, scaled (n, d) points (d may be 21,665 words)
            axes = self.components / self.scale
            z = np.asarray(x, dtype=np.float64) @ axes.T - self.mean @ axes.T
        else:
            z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return np.ascontiguousarray(z, dtype=np.float32)

    def scaled(self, x: np.ndarray):
        """Standardised (not reduced) activations: the 'original space' the quality is measured in.

        A wide, mostly-zero layer comes back as a scipy CSR matrix scaled but not centred: distances,
        all the quality measures look at, do not change with a shift, and sparse products are what make
        them fast there (core.embeddings.quality accepts either)."""
        sparse = wide_sparse(x)
        if sparse is not None:
            return sparse.multiply(1.0 / self.scale).tocsr()
        return np.ascontiguousarray((np.asarray(x, dtype=np.float64) - self.mean) / self.scale, dtype=np.float32)


# -- result objects ----------------------------------------------------------------------------
@dataclass
class Embedding:
    """A computed map: stores its arrays so re-plotting never recomputes.

    Attributes
    ----------
    coords : ndarray of shape (n_samples, n_components), float32
    params : EmbeddingParams
    layer : str
    quality : MapQuality
    seconds : float
        Wall time of the projection (not counting activations or quality).
    """

    coords: np.ndarray
    params: EmbeddingParams
    layer: str
    quality: MapQuality
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.params.method


@dataclass
class FittedMap:
    """What placing new points needs: the preprocessor and the fitted projection object."""

    preprocessor: Preprocessor
    params: EmbeddingParams
    model: Any  # PCA: components ndarray; t-SNE: openTSNE.TSNEEmbedding; UMAP: umap.UMAP
    coords: np.ndarray


# -- projections -------------------------------------------------------------------------------
def _n_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def pca_coords(z: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(coords, components) of a plain PCA of the preprocessed points (instant even at 70,000)."""
    z = np.asarray(z, dtype=np.float64)
    centred = z - z.mean(axis=0)
    comps = principal_axes(centred, n_components)
    coords = centred @ comps.T
    if coords.shape[1] < n_components:  # fewer input dimensions than requested
        coords = np.pad(coords, ((0, 0), (0, n_components - coords.shape[1])))
    return coords.astype(np.float32), comps


def tsne_fit(z: np.ndarray, params: EmbeddingParams, progress: ProgressCallback | None = None,
             on_layout: LayoutCallback | None = None, layout_every: int = 25):
    """openTSNE in two phases (exaggerated, then main), reporting progress and intermediate layouts.

    Tuned for speed at equal quality (see bench/embeddings.py): approximate neighbours (Annoy),
    the FFT-accelerated gradient from 10,000 points (Barnes-Hut below) on a coarser grid (3
    intervals per unit instead of 1: the grid grows with the map, and its cost dominated the main
    phase), PCA initialisation, openTSNE's automatic learning rate (n / exaggeration), and 100 +
    250 iterations instead of openTSNE's 250 + 500.
    """
    from openTSNE import TSNEEmbedding, affinity, initialization

    n = len(z)
    perplexity = float(min(params.perplexity, max(1.0, (n - 1) / 3.0)))
    report(progress, 0.0, f"t-SNE: nearest neighbours of {n:,} points")
    method = "exact" if n < 1000 else "annoy"
    aff = affinity.PerplexityBasedNN(z, perplexity=perplexity, method=method, n_jobs=_n_jobs(),
                                     random_state=params.seed, verbose=False)
    init = initialization.pca(z, n_components=params.n_components, random_state=params.seed)
    # Barnes-Hut below 10,000 points (the FFT grid costs more than it saves on small maps), FFT above.
    gradient = "bh" if n < 10_000 else "fft"
    grid = {"ints_in_interval": 3} if gradient == "fft" else {}
    emb = TSNEEmbedding(init, aff, negative_gradient_method=gradient, n_jobs=_n_jobs(), random_state=params.seed)
    total = params.early_iter + params.n_iter
    span = 0.9  # the neighbour search above is the first ~10 %

    def callback(phase_offset: int):
        def cb(iteration: int, error: float, embedding: Any) -> bool:
            step = phase_offset + iteration
            report(progress, 0.1 + span * step / total, f"t-SNE: iteration {step}/{total}, KL {error:.3f}")
            if on_layout is not None:
                on_layout(step, np.asarray(embedding, dtype=np.float32).copy())
            return False
        return cb

    every = max(1, int(layout_every))
    if params.early_iter:
        emb = emb.optimize(n_iter=params.early_iter, exaggeration=params.early_exaggeration, momentum=0.5,
                           callbacks=callback(0), callbacks_every_iters=every, **grid)
    emb = emb.optimize(n_iter=params.n_iter, exaggeration=params.exaggeration, momentum=0.8,
                       callbacks=callback(params.early_iter), callbacks_every_iters=every, **grid)
    report(progress, 1.0, "t-SNE: done")
    return emb


def umap_fit(z: np.ndarray, params: EmbeddingParams, progress: ProgressCallback | None = None):
    """umap-learn's UMAP (its first call in a process compiles with numba: see core.embeddings.warm)."""
    report(progress, 0.0, f"UMAP: loading umap-learn ({len(z):,} points)")
    import umap

    report(progress, 0.15, f"UMAP: neighbour graph and layout of {len(z):,} points")
    # A fixed random_state makes UMAP single-threaded; the seed still fixes the initialisation
    # through numpy when we do not pass it, so pass it only for small maps where speed is moot.
    model = umap.UMAP(n_components=params.n_components, n_neighbors=min(params.n_neighbors, len(z) - 1),
                      min_dist=params.min_dist, metric=params.metric,
                      random_state=params.seed if len(z) <= 5000 else None,
                      n_jobs=1 if len(z) <= 5000 else _n_jobs(), low_memory=True, verbose=False)
    if len(z) > 5000:
        # unseeded umap-learn draws from numpy's global generator, shared by every session's thread
        with exclusive_global_rng(params.seed, torch=False):
            model.fit(z)
    else:
        model.fit(z)
    report(progress, 1.0, "UMAP: done")
    return model


def fit_projection(z: np.ndarray, params: EmbeddingParams, progress: ProgressCallback | None = None,
                   on_layout: LayoutCallback | None = None) -> tuple[np.ndarray, Any]:
    """(coords of shape (n, n_components) float32, fitted model) of preprocessed points ``z``."""
    params = params.validated()
    if len(z) < 5:
        raise ParameterError(f"A map needs at least 5 points; got {len(z)}.", hint="pick a larger split.")
    if params.method == "pca":
        coords, comps = pca_coords(z, params.n_components)
        return coords, (np.asarray(z, dtype=np.float64).mean(axis=0), comps)
    if params.method == "tsne":
        emb = tsne_fit(z, params, progress, on_layout)
        return np.asarray(emb, dtype=np.float32).copy(), emb
    model = umap_fit(z, params, progress)
    return np.asarray(model.embedding_, dtype=np.float32).copy(), model


def transform_points(fitted: FittedMap, activations: np.ndarray) -> np.ndarray:
    """Coordinates of new points (rows of raw activations of the same layer) in the fitted map.

    PCA projects; t-SNE uses openTSNE's ``transform`` (optimises the new points against the
    fixed map); UMAP uses ``UMAP.transform``.
    """
    z = fitted.preprocessor.transform(activations)
    if len(z) == 0:
        return np.empty((0, fitted.params.n_components), dtype=np.float32)
    method = fitted.params.method
    if method == "pca":
        centre, comps = fitted.model
        coords = (np.asarray(z, dtype=np.float64) - centre) @ comps.T
        if coords.shape[1] < fitted.params.n_components:
            coords = np.pad(coords, ((0, 0), (0, fitted.params.n_components - coords.shape[1])))
        return coords.astype(np.float32)
    # openTSNE's and UMAP's transform both optimise the new points against the fixed map.
    return np.asarray(fitted.model.transform(z), dtype=np.float32).copy()


# -- the cached entry point --------------------------------------------------------------------
def _keys(model_fingerprint: str, data_fingerprint: str, layer: str, params: EmbeddingParams) -> tuple[dict, dict]:
    base = {"model_fingerprint": model_fingerprint, "data_fingerprint": data_fingerprint,
            "params": {"layer": layer, **params.key()}, "libraries": LIBRARIES}
    return {"op": "embedding", **base}, {"op": "embedding_model", **base}


def embed_activations(
    activations: np.ndarray,
    labels: np.ndarray | None,
    params: EmbeddingParams,
    *,
    layer: str,
    model_fingerprint: str,
    data_fingerprint: str,
    store: ArtifactStore | None = None,
    progress: ProgressCallback | None = None,
    on_layout: LayoutCallback | None = None,
    quality_queries: int = 5000,
) -> Embedding:
    """The map of ``activations`` (one row per point), computed once and then read from the store.

    Parameters
    ----------
    activations : ndarray of shape (n_samples, n_units)
    labels : ndarray of shape (n_samples,) or None
        True labels, for the kNN accuracy shown with the map.
    params : EmbeddingParams
    layer, model_fingerprint, data_fingerprint : str
        What the activations are of (part of the cache key, with ``params.key()``).
    progress : ProgressCallback, optional
        Fractions in [0, 1]: the projection up to 0.9, the quality measures after it.
    on_layout : callable(iteration, coords), optional
        t-SNE's intermediate layouts while it converges (not called on a cache hit).

    Returns
    -------
    Embedding
    """
    from core.store import cache_key

    params = params.validated()
    store = store or default_store()
    map_doc, model_doc = _keys(model_fingerprint, data_fingerprint, layer, params)
    model_key = cache_key(**model_doc)

    def compute() -> Embedding:
        report(progress, 0.0, "preprocessing")
        pre = Preprocessor.fit(activations, params.standardize, params.pca_dims)
        z = pre.transform(activations)
        started = time.perf_counter()
        coords, model = fit_projection(z, params, subrange(progress, 0.0, 0.9), on_layout)
        seconds = time.perf_counter() - started
        report(progress, 0.9, "measuring trustworthiness and kNN accuracy")
        quality = map_quality(pre.scaled(activations), coords, labels, max_queries=quality_queries)
        fitted = FittedMap(pre, params, model, coords)
        if store.readonly:  # a read-only server keeps its own fits in memory (the last few)
            _unsaved[model_key] = fitted
            while len(_unsaved) > _UNSAVED_MAX:
                _unsaved.pop(next(iter(_unsaved)))
        try:
            store.save(model_key, fitted, {"op": "embedding_model"})
        except Exception as exc:  # an unpicklable fitted model only costs a refit when placing points
            log.warning("could not store the fitted %s map: %s", params.method, exc)
        report(progress, 1.0, "done")
        return Embedding(coords=coords, params=params, layer=layer, quality=quality, seconds=seconds,
                         extra={"input_dims": int(z.shape[1])})

    return store.cached(compute, **map_doc)


def fitted_map(
    activations: np.ndarray,
    labels: np.ndarray | None,
    params: EmbeddingParams,
    *,
    layer: str,
    model_fingerprint: str,
    data_fingerprint: str,
    store: ArtifactStore | None = None,
    progress: ProgressCallback | None = None,
) -> FittedMap:
    """The fitted projection behind :func:`embed_activations` (recomputed if its entry is gone)."""
    from core.store import cache_key

    params = params.validated()
    store = store or default_store()
    map_doc, model_doc = _keys(model_fingerprint, data_fingerprint, layer, params)
    key = cache_key(**model_doc)
    for attempt in range(2):
        found = _unsaved.get(key)
        if found is not None:
            return found
        try:
            return store.load(key)
        except (KeyError, ValueError, StoreReadError):
            if attempt:
                break
        # The map exists without its model (evicted, or written by an older version): recompute both.
        store.discard(cache_key(**map_doc))
        _unsaved.pop(key, None)
        embed_activations(activations, labels, params, layer=layer, model_fingerprint=model_fingerprint,
                          data_fingerprint=data_fingerprint, store=store, progress=progress)
    raise TrustLensError(f"The fitted {params.method} map of layer {layer!r} could not be kept: placing new "
                           "points needs it.", hint="check the server log for why the store did not keep it.")


def is_computed(params: EmbeddingParams, *, layer: str, model_fingerprint: str, data_fingerprint: str,
                store: ArtifactStore | None = None) -> bool:
    """Whether :func:`embed_activations` would answer from the store (the page then skips the live view)."""
    from core.store import cache_key

    map_doc, _ = _keys(model_fingerprint, data_fingerprint, layer, params.validated())
    return (store or default_store()).contains(cache_key(**map_doc))
