"""Which feature interacts most with a given one, judged from SHAP values (for dependence plots)."""

from __future__ import annotations

import numpy as np

MAX_ROWS = 10_000  # shap's approximate_interactions shuffles (unseeded) above this: we pass a seeded sample


def strongest_interaction(values: np.ndarray, data: np.ndarray, feature: int) -> int | None:
    """Index of the feature that best explains the spread of ``values[:, feature]``: the first of
    ``shap.utils.approximate_interactions`` (rows sorted by the feature's value, cut into bins of
    up to 50 rows; within each bin, |correlation| of the SHAP values with every other feature,
    summed over bins). None when no other feature varies or the feature's SHAP values do not.

    Parameters
    ----------
    values, data : ndarray of shape (n_samples, n_features)
    feature : int
    """
    # The library although bench/libraries.py measured it 12x slower than the former own heuristic (39 ms a
    # call on breast-cancer's 143 rows x 30 features): that heuristic answered a different question (28 of 30
    # partners differed), and shap's choice is what its dependence plots colour by.
    from shap.utils import approximate_interactions

    values = np.asarray(values, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    n, d = data.shape
    others = np.delete(np.arange(d), feature)
    if not len(others) or np.all(np.nanstd(data[:, others], axis=0) == 0) or np.std(values[:, feature]) == 0:
        return None
    if n > MAX_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(n, size=MAX_ROWS, replace=False))
        values, data = values[rows], data[rows]
    order = approximate_interactions(feature, values, data)
    return int(next(j for j in order if j != feature))
