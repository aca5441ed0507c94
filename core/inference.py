"""Predictions over whole splits, cached on disk by model and data fingerprints."""

from __future__ import annotations

import numpy as np

from core.adapters.base import ModelAdapter
from core.bundle import DataBundle
from core.progress import ProgressCallback
from core.store import ArtifactStore, default_store


def predict_proba_cached(
    adapter: ModelAdapter,
    bundle: DataBundle,
    batch_size: int = 256,
    store: ArtifactStore | None = None,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """``adapter.predict_proba(bundle.x)``, stored under the model's and the data's fingerprints.

    Returns
    -------
    ndarray of shape (n_samples, n_classes), float64.
    """
    from core.batching import map_batches

    store = store or default_store()
    libraries = ("numpy", "torch") if adapter.info.framework == "torch" else ("numpy", "scikit-learn")

    def compute() -> np.ndarray:
        # Batches of batch_size go through the adapter; map_batches reports progress per chunk.
        chunk = max(batch_size, 1) * 8
        return map_batches(lambda part: adapter.predict_proba(part, batch_size=batch_size), bundle.x, chunk,
                           owner="predict_proba_cached", progress=progress, message="predicting")

    # batch_size is not part of the key: results do not depend on it (a tested invariant).
    return store.cached(compute, op="predict_proba", model_fingerprint=adapter.fingerprint,
                        data_fingerprint=bundle.fingerprint, libraries=libraries)
