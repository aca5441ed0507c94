"""Embeddings: 2-D maps of hidden activations (PCA, t-SNE, UMAP), their quality, and new points in them.

``embed`` is the one-call convenience (activations -> map, both cached on disk); the steps it is
built from live in :mod:`.activations`, :mod:`.projection`, :mod:`.quality`; :mod:`core.trust.adversarial` makes
adversarial inputs to place into a map, :mod:`.export` writes maps as CSV / Parquet, and
:mod:`.warm` takes numba's compilation off the request path.
"""

from __future__ import annotations

import numpy as np

from core.adapters.base import ModelAdapter
from core.bundle import DataBundle
from core.embeddings.activations import SPLITS, collect_activations, combine_splits, default_layer
from core.embeddings.projection import (
    METHODS,
    METRICS,
    Embedding,
    EmbeddingParams,
    FittedMap,
    LayoutCallback,
    Preprocessor,
    embed_activations,
    fitted_map,
    is_computed,
    transform_points,
)
from core.embeddings.quality import MapQuality, knn_accuracy, map_quality, nearest, trustworthiness
from core.progress import ProgressCallback, subrange
from core.store import ArtifactStore

__all__ = [
    "METHODS", "METRICS", "SPLITS", "Embedding", "EmbeddingParams", "FittedMap", "MapQuality", "Preprocessor",
    "collect_activations", "combine_splits", "default_layer", "embed", "embed_activations", "fitted_map", "is_computed",
    "knn_accuracy", "map_quality", "nearest", "neighbours_in_activations", "place", "transform_points",
    "trustworthiness",
]


def embed(adapter: ModelAdapter, bundle: DataBundle, layer: str, params: EmbeddingParams, batch_size: int = 256,
          store: ArtifactStore | None = None, progress: ProgressCallback | None = None,
          on_layout: LayoutCallback | None = None) -> Embedding:
    """Map every sample of ``bundle`` by its activations at ``layer`` (both steps cached on disk).

    Returns
    -------
    Embedding with ``coords`` of shape (len(bundle), params.n_components).
    """
    acts = collect_activations(adapter, bundle, layer, batch_size, store, subrange(progress, 0.0, 0.2))
    return embed_activations(acts, bundle.y, params, layer=layer, model_fingerprint=adapter.fingerprint,
                             data_fingerprint=bundle.fingerprint, store=store,
                             progress=subrange(progress, 0.2, 1.0), on_layout=on_layout)


def place(adapter: ModelAdapter, bundle: DataBundle, layer: str, params: EmbeddingParams, new_x: np.ndarray,
          batch_size: int = 256, store: ArtifactStore | None = None,
          progress: ProgressCallback | None = None) -> np.ndarray:
    """Coordinates of new inputs ``new_x`` (adversarial, uploaded) in the map of ``bundle``.

    Returns
    -------
    ndarray of shape (len(new_x), params.n_components), float32
    """
    acts = collect_activations(adapter, bundle, layer, batch_size, store)
    fitted = fitted_map(acts, bundle.y, params, layer=layer, model_fingerprint=adapter.fingerprint,
                        data_fingerprint=bundle.fingerprint, store=store, progress=progress)
    new_acts = adapter.activations(new_x, layer, batch_size=batch_size) if len(new_x) else acts[:0]
    return transform_points(fitted, new_acts)


def neighbours_in_activations(activations: np.ndarray, index: int, k: int = 8) -> np.ndarray:
    """The ``k`` nearest other samples of sample ``index`` in activation space, nearest first
    ("explanation by examples": which training points does the model see as alike?)."""
    activations = np.asarray(activations)
    return nearest(activations, np.asarray([int(index)]), min(int(k), len(activations) - 1))[0]
