"""Which feature interacts most with a given one, judged from SHAP values (for dependence plots)."""

from __future__ import annotations

import numpy as np


def strongest_interaction(values: np.ndarray, data: np.ndarray, feature: int, n_bins: int = 10) -> int | None:
    """Index of the feature that best explains the spread of ``values[:, feature]`` left after
    removing its dependence on the feature's own value.

    The feature's SHAP values are binned by the feature's value (equal-mass bins); within-bin
    residuals are correlated with every other feature; the largest absolute correlation wins (the
    same idea as shap's ``approximate_interactions``, without its sampling). Returns None when no
    other feature varies.

    Parameters
    ----------
    values, data : ndarray of shape (n_samples, n_features)
    feature : int
    """
    values = np.asarray(values, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    n, d = data.shape
    own = data[:, feature]
    edges = np.unique(np.quantile(own, np.linspace(0, 1, n_bins + 1)))
    bins = np.searchsorted(edges[1:-1], own, side="right")
    residual = values[:, feature].copy()
    for b in np.unique(bins):
        in_bin = bins == b
        residual[in_bin] -= residual[in_bin].mean()
    best, best_score = None, 0.0
    for k in range(d):
        if k == feature:
            continue
        other = data[:, k]
        if other.std() == 0 or residual.std() == 0:
            continue
        score = abs(float(np.corrcoef(other, residual)[0, 1]))
        if np.isfinite(score) and score > best_score:
            best, best_score = k, score
    return best
