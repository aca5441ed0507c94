"""Explanation: one sliceable result object for per-feature attributions.

Every attribution method returns one and every figure builder takes one, so re-plotting never
recomputes (the pattern of scikit-learn's Display objects and shap's ``Explanation``, without
shap's class-swapping).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.errors import InputShapeError


@dataclass(frozen=True, eq=False)
class Explanation:
    """Attributions for ``n`` explained rows over ``d`` features, as parallel arrays.

    Attributes
    ----------
    values : ndarray of shape (n, d), float64
        Contribution of each feature to the explained output of each row.
    base_values : ndarray of shape (n,), float64
        The output with every feature "absent" (for SHAP: the mean output over the background).
    data : ndarray of shape (n, d)
        Feature values of the explained rows.
    feature_names : tuple of str, length d
    target : ndarray of shape (n,), int
        Class index whose output is explained, per row.
    output : ndarray of shape (n,), float64
        The model's output for ``target`` on each row (a probability).
    rows : ndarray of shape (n,), int
        Indices of the explained rows in the bundle they came from.
    method : str
        E.g. ``"shap/tree"``.
    params : dict
        The parameters that produced the values (JSON-like).
    signed : bool
        True when values can be negative (diverging colour map), False for magnitudes.
    """

    values: np.ndarray
    base_values: np.ndarray
    data: np.ndarray
    feature_names: tuple[str, ...]
    target: np.ndarray
    output: np.ndarray
    rows: np.ndarray
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    signed: bool = True

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2:
            raise InputShapeError(f"Explanation values must have shape (n, d); got {values.shape}.")
        n, d = values.shape
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "feature_names", tuple(str(f) for f in self.feature_names))
        for name, dtype in (("base_values", np.float64), ("target", np.int64), ("output", np.float64), ("rows", np.int64)):
            arr = np.asarray(getattr(self, name), dtype=dtype).reshape(-1)
            if arr.shape != (n,):
                raise InputShapeError(f"Explanation {name} must have shape ({n},) to match values; got {arr.shape}.")
            object.__setattr__(self, name, arr)
        data = np.asarray(self.data)
        if data.shape != (n, d):
            raise InputShapeError(f"Explanation data must have shape ({n}, {d}) to match values; got {data.shape}.")
        object.__setattr__(self, "data", data)
        if len(self.feature_names) != d:
            raise InputShapeError(f"{len(self.feature_names)} feature names for {d} features.")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def n_features(self) -> int:
        return self.values.shape[1]

    @property
    def additivity_error(self) -> np.ndarray:
        """``base_values + values.sum(1) - output``, ndarray of shape (n,).

        Zero up to rounding for exact Shapley values (tree, exact); the efficiency axiom.
        """
        return self.base_values + self.values.sum(axis=1) - self.output

    def __getitem__(self, key: int | slice | np.ndarray | list[int]) -> "Explanation":
        """Select explained rows (positions in this object); always returns an Explanation."""
        if isinstance(key, (int, np.integer)):
            key = [int(key)]
        if isinstance(key, list):
            arr = np.asarray(key)
            key = arr if arr.dtype == bool else arr.astype(int)
        return replace(
            self,
            values=self.values[key],
            base_values=self.base_values[key],
            data=self.data[key],
            target=self.target[key],
            output=self.output[key],
            rows=self.rows[key],
        )
