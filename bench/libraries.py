"""Own code against the library that could replace it (issue 20, item 5; a benchmark, not a test).

Issue 20 item 5 moves computations onto libraries that are already dependencies, unless a
measurement says ours is faster or memory forces our own (then the code says so, naming this file
and its ratio). ``own_*`` below are verbatim copies of the own implementations as they were at
663fd48; each part runs own and library side by side on real data, in one process:

- AUROC: own rank-sum (Mann-Whitney) formula, still ``core.uncertainty.metrics.auroc`` (kept: the
  library is slower), against ``sklearn.metrics.roc_auc_score``; digits CNN's test errors scored by
  1 - confidence, MNIST's 70,000 images scored by mean intensity for "is a 1", digits' count of
  inked pixels (integers: many ties).
- kNN: chunked distance matrices + ``argpartition`` against ``core.embeddings.quality.nearest``
  (now ``sklearn.neighbors.NearestNeighbors``); digits CNN relu3 activations (all 1,797 points as
  queries), 20,000 MNIST images (784 pixels; 5,000 queries), a 2-D map (MNIST's first two principal
  components, 70,000 points, 5,000 queries: the map side of ``trustworthiness``), the whole
  ``map_quality`` of the digits PCA map, and ``core.lecture.curated.neighbour_share`` (own float32
  matrices before, ``nearest`` now) on the digits CNN's mistakes.
- PCA axes: eigendecomposition of the smaller Gram matrix against ``sklearn.decomposition.PCA``
  (``covariance_eigh`` when d <= n, else ``full``): standardised digits relu3 (1,797 x 128), MNIST
  (70,000 x 784), newsgroups' tf-idf layer (1,796 x 21,665: wide; core keeps its own code there).
  Axes compared up to sign; the note says how far ``core``'s axes are from the own ones.
- Strongest SHAP interaction: equal-mass bins + correlation of residuals against
  ``core.tabular.interactions.strongest_interaction`` (now ``shap.utils.approximate_interactions``),
  for every feature of breast-cancer's default model on the Shapley page's default rows; "max diff"
  is the share of features whose partner changed (listed below the row).
- Spearman per row: ``scipy.stats.spearmanr`` row by row (the oracle) and the old own ``spearman``
  (1 / 0 for a constant row instead of NaN) against ``core.trust.sanity.spearman`` (the one
  vectorised function); rows: 1,000 pairs of |MNIST images| (many tied zeros); and
  ``scipy.stats.spearmanrho(axis=1)`` where scipy has it (1.17+; not a requirement).

Times are medians after one warm-up, of at least ``--repeats`` runs (more for fast calls: about 2 s
of runs; slow ones such as PCA's full SVD of the tf-idf layer run once); ``ratio = library / own``
(above 1: the library is slower). Prints a table, then one JSON line of ratios and largest differences.
Run: ``TRUSTLENS_DATA_DIR=../shared/data python bench/libraries.py [--parts knn pca ...]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds a shap.py: drop this folder from the path so `import shap` finds the library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int) -> tuple[float, int]:
    """(median seconds, runs) of ``fn`` after one warm-up: at least ``repeats`` runs, more for fast calls
    (up to ~2 s of runs, at most 200), since one short run on a shared machine is mostly noise."""
    started = time.perf_counter()
    fn()
    first = time.perf_counter() - started
    runs = int(min(200, max(repeats, 2.0 // max(first, 1e-6))))
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), runs


# -- the own implementations as they were at 663fd48 -------------------------------------------


_CHUNK_CELLS = 8_000_000


def _own_distance_chunks(data, queries):
    data = np.asarray(data, dtype=np.float64)
    norms = np.einsum("ij,ij->i", data, data)
    step = max(1, _CHUNK_CELLS // max(1, len(data)))
    for start in range(0, len(queries), step):
        rows = queries[start : start + step]
        q = data[rows]
        d = np.einsum("ij,ij->i", q, q)[:, None] + norms[None, :] - 2.0 * (q @ data.T)
        np.maximum(d, 0.0, out=d)
        d[np.arange(len(rows)), rows] = np.inf
        yield start, start + len(rows), d


def own_nearest(data, queries, k):
    out = np.empty((len(queries), k), dtype=np.int64)
    for start, stop, d in _own_distance_chunks(data, queries):
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1, kind="stable")
        out[start:stop] = np.take_along_axis(part, order, axis=1)
    return out


def own_principal_axes(centred, k):
    n, d = centred.shape
    if d <= n:
        values, vectors = np.linalg.eigh(centred.T @ centred)
        axes = vectors[:, np.argsort(values)[::-1][:k]].T
    else:
        values, u = np.linalg.eigh(centred @ centred.T)
        order = np.argsort(values)[::-1][:k]
        keep = values[order] > values[order].max(initial=0.0) * 1e-12
        axes = (centred.T @ u[:, order[keep]]).T / np.sqrt(values[order[keep]])[:, None]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)]) if len(axes) else np.zeros(0)
    return axes * np.where(signs == 0, 1.0, signs)[:, None]


def own_strongest_interaction(values, data, feature, n_bins=10):
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


def own_spearman(a, b):
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=-1), rankdata(b, axis=-1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (ra * rb).sum(axis=1) / denominator
    identical = np.all(np.asarray(a) == np.asarray(b), axis=1)
    return np.where(denominator > 0, out, np.where(identical, 1.0, 0.0))


def own_neighbour_share(activations, labels, queries, classes, k=15, chunk=256):
    a = np.asarray(activations, dtype=np.float32).reshape(len(activations), -1)
    labels = np.asarray(labels)
    queries = np.asarray(queries, dtype=np.int64)
    k = min(k, len(a) - 1)
    out = np.zeros(len(queries), dtype=np.float64)
    norms = np.einsum("ij,ij->i", a, a)
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        d = norms[q][:, None] + norms[None, :] - 2.0 * (a[q] @ a.T)
        d[np.arange(len(q)), q] = np.inf
        nearest = np.argpartition(d, k - 1, axis=1)[:, :k]
        out[start : start + len(q)] = (labels[nearest] == np.asarray(classes)[start : start + len(q), None]).mean(
            axis=1
        )
    return out


# -- data ----------------------------------------------------------------------------------------


class Data(dict):
    """The real inputs, each group loaded on first use (the models and activations come from the store)."""

    def __missing__(self, key):
        from core import scenarios
        from core.embeddings import collect_activations, combine_splits

        if key.startswith("digits"):
            digits = scenarios.load_model("digits", "cnn").adapter
            splits = scenarios.load_data("digits")
            both, _, _ = combine_splits(splits)
            acts = collect_activations(digits, both, "relu3").astype(np.float64)
            std = acts.std(axis=0)
            self["digits_relu3"] = (acts - acts.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)
            self["digits_labels"] = np.asarray(both.y)
            self["digits_pred"] = digits.predict_proba(np.asarray(both.x, dtype=np.float32)).argmax(axis=1)
            test = splits["test"]
            proba = digits.predict_proba(np.asarray(test.x, dtype=np.float32))
            self["digits_test_conf"] = 1.0 - proba.max(axis=1)
            self["digits_test_error"] = proba.argmax(axis=1) != np.asarray(test.y)
            self["digits_inked"] = (np.asarray(both.x).reshape(len(both), -1) > 0).sum(axis=1).astype(float)
        elif key.startswith("mnist"):
            mnist, _, _ = combine_splits(scenarios.load_data("mnist"))
            self["mnist"] = np.asarray(mnist.x, dtype=np.float32).reshape(len(mnist), -1)
            self["mnist_labels"] = np.asarray(mnist.y)
        elif key.startswith("newsgroups"):
            news = scenarios.load_model("newsgroups", "logreg", "headers").adapter
            both, _, _ = combine_splits(scenarios.load_data("newsgroups", "headers"))
            tfidf = collect_activations(news, both, "tfidf").astype(np.float64)
            self["newsgroups_tfidf"] = tfidf - tfidf.mean(axis=0)
        return dict.__getitem__(self, key)


def shap_default():
    """SHAP values of the Shapley page's default view of breast-cancer (warm --all computes them)."""
    from core import scenarios
    from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular

    spec = scenarios.get_spec("breast-cancer")
    loaded = scenarios.load_model("breast-cancer", spec.default_model)
    splits = scenarios.load_data("breast-cancer")
    params = ShapParams()  # the page's defaults: auto algorithm, 100 sampled background rows
    rows = np.arange(min(150, len(splits["test"])))  # the page's first 150 test rows
    expl = explain_tabular(
        loaded.adapter, splits["test"], rows, background_data(splits["train"], params), params, "predicted"
    )
    return spec.default_model, np.asarray(expl.values), np.asarray(expl.data), list(expl.feature_names)


# -- parts ---------------------------------------------------------------------------------------


def row(part, case, own_s, lib_s, diff, note=""):
    print(
        f"{part:<12} {case:<40} {own_s * 1e3:10.2f} {lib_s * 1e3:10.2f} {lib_s / own_s:7.2f}  {diff:<12.3g} {note}",
        flush=True,
    )
    return {
        "part": part,
        "case": case,
        "own_ms": round(own_s * 1e3, 3),
        "library_ms": round(lib_s * 1e3, 3),
        "ratio": round(lib_s / own_s, 3),
        "diff": float(diff),
        "note": note,
    }


def bench_auroc(data, repeats):
    from sklearn.metrics import roc_auc_score

    from core.uncertainty.metrics import auroc as own_auroc  # kept: own code (see its comment)

    def auroc(s, pos):
        return roc_auc_score(pos, s)

    cases = {
        "digits CNN errors by 1 - confidence": (data["digits_test_conf"], data["digits_test_error"]),
        "MNIST 70,000: is a 1, by mean intensity": (data["mnist"].mean(axis=1), data["mnist_labels"] == 1),
        "digits: is a 1, by inked pixels (ties)": (data["digits_inked"], data["digits_labels"] == 1),
    }
    out = []
    for case, (s, pos) in cases.items():
        diff = abs(own_auroc(s, pos) - auroc(s, pos))
        out.append(
            row(
                "auroc",
                case,
                timed(lambda: own_auroc(s, pos), repeats)[0],
                timed(lambda: auroc(s, pos), repeats)[0],
                diff,
                f"AUROC {auroc(s, pos):.4f}",
            )
        )
    return out


def _compare_neighbours(data, queries, own, lib):
    """(share of rows with identical index lists, largest |distance| difference rank by rank)."""
    same = float(np.mean(np.all(own == lib, axis=1)))
    q = data[queries][:, None, :]
    d_own = np.sqrt(((data[own] - q) ** 2).sum(axis=2))
    d_lib = np.sqrt(((data[lib] - q) ** 2).sum(axis=2))
    return same, float(np.abs(d_own - d_lib).max())


def bench_knn(data, repeats):
    from core.embeddings.quality import nearest
    from core.lecture import curated

    rng = np.random.default_rng(0)
    mnist = data["mnist"].astype(np.float64)
    sub = mnist[np.sort(rng.choice(len(mnist), 20_000, replace=False))]
    centred = mnist - mnist.mean(axis=0)
    plane = centred @ own_principal_axes(centred, 2).T
    cases = {
        "digits relu3 1,797 x 128, all queries": (data["digits_relu3"], np.arange(len(data["digits_relu3"]))),
        "MNIST 20,000 x 784, 5,000 queries": (sub, np.sort(rng.choice(len(sub), 5000, replace=False))),
        "2-D map 70,000 points, 5,000 queries": (plane, np.sort(rng.choice(len(plane), 5000, replace=False))),
    }
    out = []
    for case, (x, queries) in cases.items():
        own, lib = own_nearest(x, queries, 10), nearest(x, queries, 10)
        same, ddiff = _compare_neighbours(x, queries, own, lib)
        out.append(
            row(
                "knn",
                case,
                timed(lambda: own_nearest(x, queries, 10), repeats)[0],
                timed(lambda: nearest(x, queries, 10), repeats)[0],
                ddiff,
                f"identical index lists {same:.2%}",
            )
        )
    from core.embeddings import quality
    from core.embeddings.projection import pca_coords

    high, labels = data["digits_relu3"], data["digits_labels"]
    low, _ = pca_coords(high)

    def own_quality():
        swapped, quality.nearest = quality.nearest, own_nearest
        try:
            return quality.map_quality(high, low, labels)
        finally:
            quality.nearest = swapped

    own_q, lib_q = own_quality().as_dict(), quality.map_quality(high, low, labels).as_dict()
    out.append(
        row(
            "knn",
            "map_quality of digits' PCA map (page)",
            timed(own_quality, repeats)[0],
            timed(lambda: quality.map_quality(high, low, labels), repeats)[0],
            max(abs(own_q[k] - lib_q[k]) for k in own_q),
            "trustworthiness + kNN accuracy, both spaces",
        )
    )
    acts = data["digits_relu3"].astype(np.float32)
    queries = np.flatnonzero(data["digits_pred"] != labels)  # curated examples: the model's mistakes
    classes = data["digits_pred"][queries]
    share_own = own_neighbour_share(acts, labels, queries, classes)
    share_lib = curated.neighbour_share(acts, labels, queries, classes)
    out.append(
        row(
            "knn",
            f"curated.neighbour_share, {len(queries)} mistakes",
            timed(lambda: own_neighbour_share(acts, labels, queries, classes), repeats)[0],
            timed(lambda: curated.neighbour_share(acts, labels, queries, classes), repeats)[0],
            float(np.abs(share_own - share_lib).max()),
            f"shares equal {np.mean(share_own == share_lib):.2%}",
        )
    )
    return out


def _axes_gap(own, lib):
    """Largest |own - lib| after flipping each library axis to the own axis' sign; and sign flips."""
    k = min(len(own), len(lib))
    signs = np.sign(np.sum(own[:k] * lib[:k], axis=1))
    return float(np.abs(own[:k] - lib[:k] * signs[:, None]).max()), int((signs < 0).sum())


def bench_pca(data, repeats):
    """Library: ``PCA`` with the solver core would use (covariance_eigh when d <= n, else full)."""
    from sklearn.decomposition import PCA

    from core.embeddings.projection import principal_axes

    def library(x, k):
        return PCA(k, svd_solver="covariance_eigh" if x.shape[1] <= len(x) else "full").fit(x).components_

    mnist = data["mnist"].astype(np.float64)
    cases = {
        "digits relu3 1,797 x 128, 50 axes": (data["digits_relu3"], 50),
        "digits relu3 1,797 x 128, 2 axes": (data["digits_relu3"], 2),
        "MNIST 70,000 x 784, 50 axes": (mnist - mnist.mean(axis=0), 50),
        "newsgroups tf-idf 1,796 x 21,665, 50 axes": (data["newsgroups_tfidf"], 50),
        "newsgroups tf-idf 1,796 x 21,665, 2 axes": (data["newsgroups_tfidf"], 2),
    }
    out = []
    for case, (x, k) in cases.items():
        own, lib = own_principal_axes(x, k), library(x, k)
        gap, flips = _axes_gap(own, lib)
        core_gap, core_flips = _axes_gap(own, principal_axes(x, k))
        kept = "own" if x.shape[1] > len(x) else "library"
        out.append(
            row(
                "pca",
                case,
                timed(lambda: own_principal_axes(x, k), 1)[0],
                timed(lambda: library(x, k), 1)[0],
                gap,
                f"{len(lib)} axes, {flips} sign flips; core uses {kept}: {core_gap:.1e} from own, {core_flips} flips",
            )
        )
    return out


def bench_interactions(repeats):
    from core.tabular.interactions import strongest_interaction

    model, values, x, names = shap_default()
    own = [own_strongest_interaction(values, x, j) for j in range(x.shape[1])]
    lib = [strongest_interaction(values, x, j) for j in range(x.shape[1])]
    order = list(np.argsort(-np.abs(values).mean(axis=0)))
    top = int(order[0])
    differ = [
        f"{names[j]}: {names[o] if o is not None else None} -> {names[n] if n is not None else None}"
        for j, (o, n) in enumerate(zip(own, lib))
        if o != n
    ]
    same = 1.0 - len(differ) / len(own)
    note = (
        f"breast-cancer/{model}, {len(values)} rows: same partner for {same:.0%} of features; default feature "
        f"{names[top]}: own {names[own[top]]}, shap {names[lib[top]]}"
    )
    result = row(
        "interaction",
        "every feature, one call each",
        timed(lambda: [own_strongest_interaction(values, x, j) for j in range(x.shape[1])], repeats)[0],
        timed(lambda: [strongest_interaction(values, x, j) for j in range(x.shape[1])], repeats)[0],
        1.0 - same,
        note,
    )
    for line in differ:
        print(f"    differs: {line}")
    result.update(
        default_feature=names[top], own_partner=names[own[top]], shap_partner=names[lib[top]], differing=differ
    )
    return [result]


def bench_spearman(data, repeats):
    """Own: the one vectorised ``core.trust.sanity.spearman``; library: scipy row by row / vectorised."""
    from scipy.stats import spearmanr

    from core.trust.sanity import spearman

    x = np.abs(data["mnist"][-1001:].astype(np.float64))
    a, b = x[:-1], x[1:]
    new = spearman(a, b)
    ours = timed(lambda: spearman(a, b), repeats)[0]
    oracle = np.array([spearmanr(u, v).statistic for u, v in zip(a, b)])
    out = [
        row(
            "spearman",
            "1,000 |MNIST| pairs: scipy.stats.spearmanr",
            ours,
            timed(lambda: [spearmanr(u, v).statistic for u, v in zip(a, b)], 1)[0],
            float(np.abs(new - oracle).max()),
            "library: one call per row",
        )
    ]
    out.append(
        row(
            "spearman",
            "the same: the old own spearman",
            ours,
            timed(lambda: own_spearman(a, b), repeats)[0],
            float(np.abs(new - own_spearman(a, b)).max()),
            "'library' column: the old function (1 / 0 on constant rows, now NaN)",
        )
    )
    try:
        from scipy.stats import spearmanrho  # scipy >= 1.17 only: not required by the project
    except ImportError:
        return out
    out.append(
        row(
            "spearman",
            "the same: scipy.stats.spearmanrho(axis=1)",
            ours,
            timed(lambda: spearmanrho(a, b, axis=1).statistic, repeats)[0],
            float(np.abs(new - spearmanrho(a, b, axis=1).statistic).max()),
            "vectorised, also computes p-values",
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", nargs="+", default=["auroc", "knn", "pca", "interaction", "spearman"])
    args = parser.parse_args(argv)

    data = Data()
    print(f"{'part':<12} {'case':<40} {'own ms':>10} {'lib ms':>10} {'ratio':>7}  {'max diff':<12} note")
    rows = []
    for part, fn in (
        ("auroc", lambda: bench_auroc(data, args.repeats)),
        ("knn", lambda: bench_knn(data, args.repeats)),
        ("pca", lambda: bench_pca(data, args.repeats)),
        ("interaction", lambda: bench_interactions(args.repeats)),
        ("spearman", lambda: bench_spearman(data, args.repeats)),
    ):
        if part in args.parts:
            rows += fn()
    print(
        json.dumps(
            {
                "bench": "libraries",
                "ratios": {f"{r['part']}: {r['case']}": r["ratio"] for r in rows},
                "max_diff": {f"{r['part']}: {r['case']}": r["diff"] for r in rows},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
