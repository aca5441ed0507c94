"""DataBundle: one dataset split of images, texts or table rows, with labels and names.

Conventions (every adapter and method relies on them):

- ``image``: ``x`` is float32 of shape (n, channels, height, width) with values in [0, 1].
  Models normalise internally, so explanations are always in pixel space.
- ``text``: ``x`` is an object array of shape (n,) holding Python strings.
- ``tabular``: ``x`` is float32 of shape (n, n_features), already numeric; ``display`` keeps
  the human-readable columns (names, categories) for the data browser.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from core.errors import InputShapeError
from core.fingerprint import hash_array, hash_texts

Kind = Literal["image", "text", "tabular"]
KINDS: tuple[str, ...] = ("image", "text", "tabular")


@dataclass(frozen=True, eq=False)
class DataBundle:
    """A dataset split.

    Attributes
    ----------
    kind : {"image", "text", "tabular"}
    x : ndarray of shape (n_samples, ...)
        See the module docstring for the layout per kind.
    y : ndarray of shape (n_samples,) of int, or None
        Class indices into ``class_names``.
    class_names : tuple of str
    feature_names : tuple of str or None
        Column names for tabular data.
    name : str
        A label such as ``"digits/test"``.
    display : DataFrame or None
        Human-readable rows (tabular: the raw columns), aligned with ``x``.
    index : ndarray of shape (n_samples,) of int
        Position of each row in the split it was sliced from, so a subset can be traced back.
    """

    kind: Kind
    x: np.ndarray
    y: np.ndarray | None
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...] | None = None
    name: str = "data"
    display: pd.DataFrame | None = None
    index: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputShapeError(
                f"DataBundle kind must be one of {KINDS}; got {self.kind!r}.",
                hint="use 'image' for (n, C, H, W) arrays, 'text' for strings, 'tabular' for (n, d) tables.",
            )
        n = len(self.x)
        if self.kind == "image" and np.asarray(self.x).ndim != 4:
            raise InputShapeError(
                f"Image data must have shape (n, channels, height, width); got {np.shape(self.x)}.",
                hint="add a channel axis, e.g. x[:, None] for grey-scale images.",
            )
        if self.kind == "tabular" and np.asarray(self.x).ndim != 2:
            raise InputShapeError(f"Tabular data must have shape (n, n_features); got {np.shape(self.x)}.")
        if self.kind == "tabular" and self.feature_names is not None and len(self.feature_names) != self.x.shape[1]:
            raise InputShapeError(
                f"{len(self.feature_names)} feature names for {self.x.shape[1]} columns.",
                hint="give one name per column of x.",
            )
        if self.y is not None:
            y = np.asarray(self.y)
            if y.shape != (n,):
                raise InputShapeError(f"Labels must have shape ({n},) to match x; got {y.shape}.")
            if n and (y.min() < 0 or y.max() >= len(self.class_names)):
                raise InputShapeError(
                    f"Labels range over [{y.min()}, {y.max()}] but there are {len(self.class_names)} class names.",
                    hint="labels must be class indices 0..n_classes-1.",
                )
        if self.display is not None and len(self.display) != n:
            raise InputShapeError(f"display has {len(self.display)} rows for {n} samples.")
        if self.index is None:
            object.__setattr__(self, "index", np.arange(n))

    def __len__(self) -> int:
        return len(self.x)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __getitem__(self, key: int | slice | np.ndarray | list[int]) -> "DataBundle":
        """Slice rows; always returns a bundle (an int gives a bundle of one)."""
        if isinstance(key, (int, np.integer)):
            key = [int(key)]
        if isinstance(key, list):
            key = np.asarray(key)
            if key.dtype != bool:
                key = key.astype(int)  # an empty list is a float array: make it an index array
        display = None
        if self.display is not None:
            display = self.display.iloc[key] if not isinstance(key, np.ndarray) or key.dtype != bool else self.display[key]
        return replace(
            self,
            x=self.x[key],
            y=None if self.y is None else self.y[key],
            display=display,
            index=self.index[key],
        )

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of kind, x, y, class and feature names (not the display frame or the name)."""
        h = hashlib.sha256()
        h.update(f"{self.kind}|".encode())
        if self.kind == "text":
            hash_texts((str(t) for t in self.x), h)
        else:
            hash_array(np.asarray(self.x), h)
        h.update(b"|y|")
        if self.y is not None:
            hash_array(np.asarray(self.y, dtype=np.int64), h)
        hash_texts(self.class_names, h)
        h.update(b"|f|")
        hash_texts(self.feature_names or (), h)
        return h.hexdigest()

    def describe(self) -> dict[str, object]:
        """JSON-able summary (size, shape, class counts) for the CLI and the model card."""
        counts = (
            {self.class_names[i]: int(c) for i, c in enumerate(np.bincount(self.y, minlength=self.n_classes))}
            if self.y is not None
            else {}
        )
        shape = list(np.shape(self.x)[1:]) if self.kind != "text" else []
        return {"name": self.name, "kind": self.kind, "n": len(self), "shape": shape, "class_counts": counts}
