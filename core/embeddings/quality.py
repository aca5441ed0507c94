"""How faithful is a 2-D map? Trustworthiness and kNN label accuracy, exact or on a sample of queries.

Both measures look at the k nearest neighbours of query points. With every point as a query
(``max_queries >= n``) they equal scikit-learn's ``trustworthiness`` and a leave-one-out k-NN
classifier (the tests use those as oracles); for large maps a fixed random sample of queries is
ranked against *all* points, so the estimate is unbiased and costs O(queries x n) instead of
scikit-learn's O(n^2) memory (70,000 points would need a 39 GB distance matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InputShapeError, check_int

_CHUNK_CELLS = 8_000_000  # distance-matrix cells per chunk (~32 MB of float32)


@dataclass(frozen=True)
class MapQuality:
    """Quality of a map against the space it was computed from.

    Attributes
    ----------
    trustworthiness : float
        In [0, 1]; 1 means every 2-D neighbour is also a neighbour in the original space.
    knn_accuracy_map, knn_accuracy_original : float
        Leave-one-out k-NN accuracy of the true labels in the map and in the original space.
    k : int
    n_queries : int
        Points whose neighbourhoods were checked (all of them when equal to ``n``).
    n : int
    """

    trustworthiness: float
    knn_accuracy_map: float
    knn_accuracy_original: float
    k: int
    n_queries: int
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"trustworthiness": self.trustworthiness, "knn_accuracy_map": self.knn_accuracy_map,
                "knn_accuracy_original": self.knn_accuracy_original, "k": self.k, "n_queries": self.n_queries,
                "n": self.n}


def _sq_norms(a) -> np.ndarray:
    if _is_sparse(a):
        return np.asarray(a.multiply(a).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", a, a)


def _is_sparse(a) -> bool:
    from scipy import sparse

    return sparse.issparse(a)


def _as_points(a):
    """float64 points: a scipy sparse matrix stays sparse (CSR), anything else becomes an ndarray."""
    return a.tocsr().astype(np.float64) if _is_sparse(a) else np.asarray(a, dtype=np.float64)


def _distance_chunks(data, queries: np.ndarray):
    """Yield (start, stop, squared distances of queries[start:stop] to every row of data).

    ``data``: an ndarray or a scipy sparse matrix (a wide tf-idf layer, see Preprocessor.scaled)."""
    data = _as_points(data)
    norms = _sq_norms(data)
    step = max(1, _CHUNK_CELLS // max(1, data.shape[0]))
    for start in range(0, len(queries), step):
        rows = queries[start:start + step]
        q = data[rows]
        product = q @ data.T
        product = product.toarray() if _is_sparse(product) else product
        d = _sq_norms(q)[:, None] + norms[None, :] - 2.0 * product
        np.maximum(d, 0.0, out=d)
        d[np.arange(len(rows)), rows] = np.inf  # a point is not its own neighbour
        yield start, start + len(rows), d


def query_points(n: int, max_queries: int, seed: int = 0) -> np.ndarray:
    """All indices when ``n <= max_queries``, else a fixed random sample (sorted)."""
    if n <= max_queries:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_queries, replace=False))


def nearest(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest rows of ``data`` (Euclidean, self excluded), nearest first.

    scikit-learn's ``NearestNeighbors`` (exact: a k-d tree on 2-D maps, chunked brute force on
    activations), asked for ``k + 1`` neighbours of each query row, the row itself dropped.

    Returns
    -------
    ndarray of shape (len(queries), k) of int
    """
    # bench/libraries.py, library / the former own chunked argpartition (same indices everywhere): 0.013x on
    # a 70,000-point 2-D map (k-d tree: 51 ms against 4.1 s), 0.83x on 20,000 MNIST images, 0.57x on digits'
    # 1,797 activations, 0.60x for the digits map's whole map_quality (on a machine at load 8 the digits
    # cases came out 1.1-3x instead: OpenMP threads wait for cores the most).
    from sklearn.neighbors import NearestNeighbors

    data = _as_points(data)  # sparse stays sparse: scikit-learn then takes sparse dot products (brute force)
    queries = np.asarray(queries, dtype=np.int64).reshape(-1)
    k = check_int("k", k, "nearest")
    if k >= data.shape[0]:
        raise InputShapeError(f"nearest needs k < n; got k={k} for n={data.shape[0]} points.")
    found = NearestNeighbors(n_neighbors=k + 1).fit(data).kneighbors(data[queries], return_distance=False)
    own = found == queries[:, None]
    own[~own.any(axis=1), -1] = True  # more than k copies of the row at distance 0: drop the farthest copy
    return found[~own].reshape(len(queries), k)


def trustworthiness(high: np.ndarray, low: np.ndarray, k: int = 5, max_queries: int = 5000, seed: int = 0) -> float:
    """Trustworthiness of ``low`` (the map) with respect to ``high`` (the original space).

    ``1 - 2 / (q k (2n - 3k - 1)) * sum over queries i and map neighbours j outside i's k original
    neighbours of (rank of j among i's original neighbours - k)``; with all n points as queries
    this is scikit-learn's ``sklearn.manifold.trustworthiness(high, low, n_neighbors=k)``.
    """
    high, low = _check_pair(high, low)
    n = high.shape[0]
    k = check_int("k", k, "trustworthiness")
    if k >= n / 2:
        raise InputShapeError(f"trustworthiness needs k < n / 2; got k={k} for n={n} points.",
                              hint="use a smaller k or more points.")
    queries = query_points(n, max_queries, seed)
    low_nn = nearest(low, queries, k)
    penalty = 0.0
    # Own code, kept for memory: the rank of each map neighbour among all n points is a count over
    # chunks of the distance matrix; sklearn.manifold.trustworthiness holds all of it (n x n).
    for start, stop, d in _distance_chunks(high, queries):
        # rank of j = 1 + number of points strictly closer to i than j (self excluded via inf).
        dj = np.take_along_axis(d, low_nn[start:stop], axis=1)
        ranks = np.stack([(d < dj[:, [c]]).sum(axis=1) + 1 for c in range(k)], axis=1)
        excess = ranks - k
        penalty += float(excess[excess > 0].sum())
    q = len(queries)
    return float(1.0 - penalty * (2.0 / (q * k * (2.0 * n - 3.0 * k - 1.0))))


def knn_accuracy(data: np.ndarray, labels: np.ndarray, k: int = 10, max_queries: int = 5000, seed: int = 0) -> float:
    """Leave-one-out k-NN accuracy of ``labels`` in ``data`` (majority vote, ties to the lower class)."""
    data = data if _is_sparse(data) else np.asarray(data)
    labels = np.asarray(labels)
    n = data.shape[0]
    if len(labels) != n:
        raise InputShapeError(f"knn_accuracy got {n} points but {len(labels)} labels.")
    k = check_int("k", k, "knn_accuracy")
    if k >= n:
        raise InputShapeError(f"knn_accuracy needs k < n; got k={k} for n={n} points.")
    queries = query_points(n, max_queries, seed)
    nn = nearest(data, queries, k)
    votes = labels[nn]
    n_classes = int(labels.max()) + 1
    counts = np.zeros((len(queries), n_classes), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(queries)), k), votes.ravel()), 1)
    return float(np.mean(counts.argmax(axis=1) == labels[queries]))


def map_quality(high: np.ndarray, low: np.ndarray, labels: np.ndarray | None, k: int = 10,
                max_queries: int = 5000, seed: int = 0) -> MapQuality:
    """Trustworthiness (k neighbours) and kNN accuracy in the map and in the original space."""
    high, low = _check_pair(high, low)
    n = high.shape[0]
    k = min(check_int("k", k, "map_quality"), max(1, (n - 1) // 2 - 1))
    trust = trustworthiness(high, low, k, max_queries, seed)
    if labels is None:
        acc_map = acc_high = float("nan")
    else:
        acc_map = knn_accuracy(low, labels, k, max_queries, seed)
        acc_high = knn_accuracy(high, labels, k, max_queries, seed)
    return MapQuality(trust, acc_map, acc_high, k, int(min(n, max_queries)), n)


def _check_pair(high, low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``high`` may be a scipy sparse matrix (kept sparse); ``low`` is the map."""
    high = high if _is_sparse(high) else np.asarray(high)
    low = np.asarray(low)
    if high.ndim != 2 or low.ndim != 2 or high.shape[0] != len(low):
        raise InputShapeError(
            f"Map quality needs two 2-D arrays with one row per point; got shapes {high.shape} and {low.shape}.")
    if len(low) < 4:
        raise InputShapeError(f"Map quality needs at least 4 points; got {len(low)}.")
    return high, low
