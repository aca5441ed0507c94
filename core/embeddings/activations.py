"""Hidden-layer activations of a whole dataset, batched on the model's device, cached on disk."""

from __future__ import annotations

import numpy as np

from core.adapters.base import ModelAdapter
from core.batching import map_batches
from core.bundle import DataBundle
from core.errors import InputShapeError, ParameterError, check_int
from core.progress import ProgressCallback
from core.store import ArtifactStore, default_store

SPLITS = ("train", "val", "test")


def default_layer(adapter: ModelAdapter) -> str:
    """The last hidden layer: the layer before the output, skipping dropout (identity at inference).

    For the built-in CNNs this is ``relu3``, the penultimate representation seed 003 projects.
    """
    names = adapter.layer_names()
    if not names:
        raise ParameterError(f"Model {adapter.info.name!r} lists no layers to embed.",
                             hint="pick a model with hidden layers (a torch model or a scikit-learn pipeline).")
    hidden = [n for n in names[:-1] if "dropout" not in n.lower()]
    return hidden[-1] if hidden else names[-1]


def collect_activations(
    adapter: ModelAdapter,
    bundle: DataBundle,
    layer: str,
    batch_size: int = 256,
    store: ArtifactStore | None = None,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """``adapter.activations(bundle.x, layer)`` over the whole bundle, stored by content.

    Parameters
    ----------
    adapter : ModelAdapter
        Its forward passes run on its own device; hooks are removed after every batch.
    bundle : DataBundle of n_samples
    layer : str
        One of ``adapter.layer_names()``.
    batch_size : int
        Samples per forward pass (not part of the cache key: the result does not depend on it).

    Returns
    -------
    ndarray of shape (n_samples, n_units), float32.
    """
    batch_size = check_int("batch_size", batch_size, "collect_activations")
    if layer not in adapter.layer_names():
        adapter._check_layer(layer)  # raises the UnknownNameError listing the layers
    if len(bundle) == 0:
        raise InputShapeError("collect_activations got an empty dataset (0 samples).",
                              hint="pick a split or scenario with samples.")
    store = store or default_store()
    libraries = ("numpy", "torch") if adapter.info.framework == "torch" else ("numpy", "scikit-learn")

    def compute() -> np.ndarray:
        # Chunks of several batches keep the progress bar moving without a callback per batch.
        chunk = batch_size * 8
        out = map_batches(lambda part: adapter.activations(part, layer, batch_size=batch_size), bundle.x, chunk,
                          owner="collect_activations", progress=progress, message=f"activations of {layer}")
        return np.ascontiguousarray(out, dtype=np.float32)

    return store.cached(compute, op="activations", model_fingerprint=adapter.fingerprint,
                        data_fingerprint=bundle.fingerprint, params={"layer": layer}, libraries=libraries)


def combine_splits(splits: dict[str, DataBundle], which: str = "all") -> tuple[DataBundle, np.ndarray, np.ndarray]:
    """One bundle of the chosen split(s), with each row's split name and position in it.

    Parameters
    ----------
    splits : dict of {"train", "val", "test"} -> DataBundle
    which : {"all", "train", "val", "test"}
        ``"all"`` concatenates train, val and test in that order (every point of the dataset).

    Returns
    -------
    bundle : DataBundle
    split_of : ndarray of shape (n,) of str
    position : ndarray of shape (n,) of int
        Index of each row inside its own split (what the image and text pages call the sample).
    """
    if which not in ("all", *SPLITS):
        raise ParameterError(f"The 'split' parameter must be one of {('all', *SPLITS)}. Got {which!r} instead.")
    names = [s for s in SPLITS if s in splits] if which == "all" else [which]
    if which != "all" and which not in splits:
        raise ParameterError(f"This scenario has no {which!r} split; it has {sorted(splits)}.")
    parts = [splits[n] for n in names]
    split_of = np.concatenate([np.full(len(p), n, dtype=object) for n, p in zip(names, parts)])
    position = np.concatenate([np.arange(len(p)) for p in parts])
    if len(parts) == 1:
        return parts[0], split_of, position
    import pandas as pd
    from dataclasses import replace

    first = parts[0]
    x = np.concatenate([np.asarray(p.x) for p in parts])
    y = None if any(p.y is None for p in parts) else np.concatenate([p.y for p in parts])
    display = None
    if all(p.display is not None for p in parts):
        display = pd.concat([p.display for p in parts], ignore_index=True)
    bundle = replace(first, x=x, y=y, display=display, name=f"{first.name.split('/')[0]}/all", index=None)
    return bundle, split_of, position
