"""SHAP values for tabular models, through the ``shap`` package.

One call, :func:`explain_tabular`, built from composable steps: :func:`choose_algorithm` picks
the estimator shap should use, :func:`background_data` summarises the training split into the
reference rows that stand in for "a feature is absent", and the result is an
:class:`~core.explanation.FeatureAttribution` of the *probability* of one class per row, cached in the
:class:`~core.store.ArtifactStore`.

Algorithms (all explain ``f(x) = P(class k | x)`` against the same background):

- ``"tree"``: ``shap.TreeExplainer(model, data=background, model_output="probability",
  feature_perturbation="interventional")``, exact and fast, for scikit-learn tree ensembles.
- ``"exact"``: ``shap.explainers.Exact`` over an ``Independent`` masker: every one of the 2**d
  coalitions, exact Shapley values of the interventional game. Used up to 15 features.
- ``"permutation"``: ``shap.explainers.Permutation``: antithetic random permutations; the values
  still sum exactly to ``f(x) - E[f(background)]`` (each permutation telescopes), but individual
  values carry sampling noise, reproducible through ``seed``.
- ``"kernel"``: ``shap.KernelExplainer``, weighted linear regression over sampled coalitions
  (approximate; the only one that uses k-means weights, see :func:`background_data`).

shap is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np

from core.adapters.base import ModelAdapter
from core.bundle import DataBundle
from core.errors import InputShapeError, ParameterError, check_int
from core.explanation import FeatureAttribution, Method, register, resolve_targets
from core.fingerprint import hash_array
from core.params import param
from core.progress import ProgressCallback, report
from core.rng import exclusive_global_rng
from core.store import ArtifactStore, default_store

ALGORITHMS = ("auto", "tree", "exact", "permutation", "kernel")
BACKGROUNDS = ("sample", "kmeans")
MAX_EXACT_FEATURES = 15  # 2**15 coalitions x background rows per explained row is the most we accept
LIBRARIES = ("numpy", "scikit-learn", "torch", "shap")
CHUNK_ROWS = 50  # explained rows per shap call, so progress moves (does not change tree/exact values)


@dataclass(frozen=True)
class ShapParams:
    """Parameters of :func:`explain_tabular` (their fields drive the UI form).

    Attributes
    ----------
    algorithm : {"auto", "tree", "exact", "permutation", "kernel"}
        ``"auto"`` resolves through :func:`choose_algorithm`.
    background : {"sample", "kmeans"}
        How the training split is summarised, see :func:`background_data`.
    background_size : int >= 1
        Rows (``"sample"``) or cluster centres (``"kmeans"``) in the background.
    seed : int >= 0
        Seeds the background sample and the permutation / kernel sampling.
    batch_size : int >= 1
        Most rows per model forward pass inside shap's evaluations (a memory cap). Table rows
        are tiny and shap evaluates (coalitions x background) rows per explained row, so the
        default is large: at 256, scikit-learn's per-call overhead made explanations 3-6x slower
        than calling shap directly (bench/shap.py); at 65,536 they are within ~10 %.
    """

    algorithm: str = param("auto", "Algorithm", "algorithm", choices=ALGORITHMS,
                           help="auto: TreeExplainer for tree ensembles, exact up to 15 features, permutation beyond")
    background: str = param("sample", "Background", "background", choices=BACKGROUNDS, widget="radio",
                            help="The base value is the model's average output over the background rows. A random "
                                 "sample is unbiased; a k-means summary is smaller (faster) but weights cluster centres.")
    background_size: int = param(100, "Background size", "background_size", low=10, high=300, step=10, widget="number")
    seed: int = 0
    batch_size: int = 65536

    def __post_init__(self) -> None:
        owner = "ShapParams"
        for name, choices in (("algorithm", ALGORITHMS), ("background", BACKGROUNDS)):
            value = getattr(self, name)
            if value not in choices:
                options = ", ".join(repr(c) for c in choices)
                raise ParameterError(
                    f"The {name!r} parameter of {owner} must be a str among {{{options}}}. Got {value!r} instead."
                )
        check_int("background_size", self.background_size, owner, minimum=1)
        check_int("seed", self.seed, owner, minimum=0)
        check_int("batch_size", self.batch_size, owner, minimum=1)


@dataclass(frozen=True, eq=False)
class Background:
    """Reference rows that replace "absent" features.

    Attributes
    ----------
    data : ndarray of shape (m, d), float32
    weights : ndarray of shape (m,), float64, summing to 1
        Uniform for a sample; cluster sizes for k-means.
    method : str
        ``"sample"``, ``"kmeans"`` or ``"given"``.
    """

    data: np.ndarray
    weights: np.ndarray
    method: str = "given"

    @classmethod
    def of(cls, background: "Background | np.ndarray") -> "Background":
        if isinstance(background, Background):
            return background
        data = np.asarray(background, dtype=np.float32)
        if data.ndim != 2 or len(data) == 0:
            raise InputShapeError(f"The background must have shape (m, n_features) with m >= 1; got {data.shape}.",
                                  hint="build one with core.tabular.shap_tabular.background_data(train_bundle, params).")
        return cls(data, np.full(len(data), 1.0 / len(data)), "given")

    def __len__(self) -> int:
        return len(self.data)

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        hash_array(np.asarray(self.data, dtype=np.float32), h)
        hash_array(np.asarray(self.weights, dtype=np.float64), h)
        return h.hexdigest()


def _is_tree_model(estimator: Any) -> bool:
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

    if getattr(estimator, "tree_shap", False):  # an XGBoost / LightGBM booster whose probability shap knows
        return True
    return isinstance(estimator, (GradientBoostingClassifier, RandomForestClassifier, ExtraTreesClassifier,
                                  DecisionTreeClassifier, ExtraTreeClassifier))


def choose_algorithm(adapter: ModelAdapter, n_features: int) -> str:
    """The algorithm ``"auto"`` resolves to.

    ``"tree"`` for a bare scikit-learn tree model (gradient boosting, random forest, extra
    trees, decision tree) or a binary XGBoost / LightGBM booster, ``"exact"`` for at most 15
    features, else ``"permutation"``.
    """
    estimator = getattr(adapter, "estimator", None)
    if estimator is not None and _is_tree_model(estimator):
        return "tree"
    return "exact" if n_features <= MAX_EXACT_FEATURES else "permutation"


def background_data(train_bundle: DataBundle, params: ShapParams = ShapParams()) -> Background:
    """Summarise the training split into SHAP's background.

    ``"sample"``: ``background_size`` rows drawn without replacement with ``seed`` (all rows
    when the split is smaller), equally weighted. The SHAP values are then exact Shapley values
    of the game "replace the absent features by those of a background row, average over rows".

    ``"kmeans"``: ``shap.kmeans(x, background_size)``: cluster centres with each feature rounded
    to the nearest value seen in the data, weighted by cluster size. Fewer, more representative
    rows; only ``"kernel"`` uses the weights (shap's maskers and TreeExplainer take unweighted
    rows, so tree / exact / permutation treat the centres as equally likely). Deterministic:
    shap fixes the clustering's random state, so ``seed`` does not change it.

    Returns
    -------
    Background with ``data`` of shape (m, n_features), m = min(background_size, len(train_bundle)).
    """
    if train_bundle.kind != "tabular":
        raise InputShapeError(f"SHAP backgrounds are built from tabular data; got a {train_bundle.kind!r} bundle.")
    x = np.asarray(train_bundle.x, dtype=np.float32)
    m = min(params.background_size, len(x))
    if m == 0:
        raise InputShapeError("The training split is empty; a background needs at least one row.")
    if params.background == "sample":
        rng = np.random.default_rng(params.seed)
        rows = np.sort(rng.choice(len(x), size=m, replace=False))
        return Background(x[rows], np.full(m, 1.0 / m), "sample")
    import shap

    summary = shap.kmeans(x.astype(np.float64), m)
    weights = np.asarray(summary.weights, dtype=np.float64)
    return Background(np.asarray(summary.data, dtype=np.float32), weights / weights.sum(), "kmeans")


def _targets(adapter: ModelAdapter, x: np.ndarray, target: str | int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(target per row (n,), probabilities (n, n_classes))."""
    proba = adapter.predict_proba(x, batch_size)
    targets = resolve_targets(target, tuple(adapter.class_names), len(x), predicted=lambda: proba.argmax(axis=1))
    return targets, proba


def class_function(adapter: ModelAdapter, k: int, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """``f(X) = adapter.predict_proba(X, batch_size)[:, k]``, ndarray of shape (n,), batched.

    Torch adapters compute only that column (``class_probability``): on titanic's MLP the exact
    explainer evaluates 45 million masked rows, and copying and renormalising both columns cost
    25 % on top of the forward passes (bench/shap.py).
    """
    one_column = getattr(adapter, "class_probability", None)

    def f(x: np.ndarray) -> np.ndarray:
        if one_column is not None:
            return one_column(np.asarray(x, dtype=np.float32), k, batch_size)
        return adapter.predict_proba(np.asarray(x, dtype=np.float32), batch_size)[:, k]

    return f


def _tree_values(adapter: ModelAdapter, x: np.ndarray, bg: Background, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, d, n_classes), base (n_classes,)) from TreeExplainer in probability space."""
    import shap

    # A booster (core/adapters/booster_adapter.py) is explained through the library's own object.
    model = getattr(adapter.estimator, "booster", adapter.estimator)  # type: ignore[attr-defined]
    explainer = shap.TreeExplainer(model, data=bg.data, model_output="probability",
                                   feature_perturbation="interventional")
    values = np.asarray(explainer.shap_values(x, check_additivity=False), dtype=np.float64)
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    if values.ndim == 2:  # one output: the positive class of a binary model
        if n_classes != 2:
            raise InputShapeError(f"TreeExplainer returned one output for a {n_classes}-class model.")
        values = np.stack([-values, values], axis=2)
        base = np.array([1.0 - base[0], base[0]])
    return values, base


def _masked_values(adapter: ModelAdapter, x: np.ndarray, k: int, bg: Background, algorithm: str,
                   params: ShapParams, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, d), base (n,)) of f = P(class k) from shap's Exact / Permutation / Kernel."""
    import shap

    f = class_function(adapter, k, params.batch_size)
    if algorithm == "kernel":
        # KernelExplainer samples with numpy's global generator, shared by every session's thread
        with exclusive_global_rng(params.seed, torch=False):
            data = shap.utils._legacy.DenseData(bg.data.astype(np.float64), [f"f{i}" for i in range(d)], None,
                                                 bg.weights * len(bg))
            explainer = shap.KernelExplainer(f, data)
            values = np.asarray(explainer.shap_values(x.astype(np.float64), silent=True), dtype=np.float64)
        return values.reshape(len(x), d), np.full(len(x), float(np.asarray(explainer.expected_value).reshape(-1)[0]))
    masker = shap.maskers.Independent(bg.data, max_samples=len(bg))
    if algorithm == "exact":
        result = shap.explainers.Exact(f, masker)(x, max_evals=2**d * 2 + 1, silent=True)
    else:
        with exclusive_global_rng(torch=False):  # Permutation seeds numpy's global generator and draws from it
            result = shap.explainers.Permutation(f, masker, seed=params.seed)(x, silent=True)
    return np.asarray(result.values, dtype=np.float64), np.asarray(result.base_values, dtype=np.float64).reshape(-1)


def resolve_algorithm(adapter: ModelAdapter, n_features: int, algorithm: str) -> str:
    """``algorithm`` with ``"auto"`` resolved, checked against the model and the width."""
    chosen = choose_algorithm(adapter, n_features) if algorithm == "auto" else algorithm
    if chosen == "tree" and not _is_tree_model(getattr(adapter, "estimator", None)):
        raise ParameterError(f"The 'tree' algorithm needs a scikit-learn tree model or a binary booster; model {adapter.info.name!r} "
                             "is not one.",
                             hint="use algorithm='auto', 'exact' (up to 15 features) or 'permutation'.")
    if chosen == "exact" and n_features > MAX_EXACT_FEATURES:
        raise ParameterError(f"The 'exact' algorithm evaluates 2**d coalitions; got d={n_features} features "
                             f"(at most {MAX_EXACT_FEATURES}).", hint="use algorithm='permutation' or 'kernel'.")
    return chosen


def explain_tabular(
    adapter: ModelAdapter,
    bundle: DataBundle,
    rows: int | slice | np.ndarray | list[int] | None,
    background: Background | np.ndarray,
    params: ShapParams = ShapParams(),
    target: str | int = "predicted",
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> FeatureAttribution:
    """SHAP values of the probability of one class for some rows of a tabular bundle.

    Parameters
    ----------
    adapter : ModelAdapter
        A tabular model (``SklearnAdapter`` or ``TorchAdapter``).
    bundle : DataBundle
        Tabular, ``x`` of shape (n_samples, d), with ``feature_names``.
    rows : int, slice, array of int, or None
        Rows of ``bundle`` to explain (None: all).
    background : Background or ndarray of shape (m, d)
        From :func:`background_data` (usually of the training split).
    params : ShapParams
    target : "predicted" or int
        Explain each row's predicted class, or this class index for every row.
    progress : callable, optional
        ``progress(fraction, message)``.
    store : ArtifactStore, optional
        Default: :func:`core.store.default_store`.

    Returns
    -------
    FeatureAttribution
        ``values`` of shape (n, d), ``output`` the probability of ``target`` per row;
        ``additivity_error`` is ~1e-12 for tree and exact, and for permutation.
    """
    if bundle.kind != "tabular" or adapter.info.input_kind != "tabular":
        raise InputShapeError(f"SHAP tabular explanations need a tabular model and bundle; got a "
                              f"{adapter.info.input_kind!r} model and a {bundle.kind!r} bundle.",
                              hint="use an image or text explainer for those.")
    if not isinstance(params, ShapParams):
        raise ParameterError(f"The 'params' parameter of explain_tabular must be a ShapParams. Got {type(params).__name__} instead.")
    if isinstance(target, str) and target != "predicted":
        raise ParameterError(f"The 'target' parameter of explain_tabular must be 'predicted' or a class index. Got {target!r} instead.")
    sub = bundle if rows is None else bundle[rows]
    if len(sub) == 0:
        raise InputShapeError("No rows to explain.", hint="pass at least one row index.")
    bg = Background.of(background)
    d = sub.x.shape[1]
    if bg.data.shape[1] != d:
        raise InputShapeError(f"The background has {bg.data.shape[1]} features; the data has {d}.")
    algorithm = resolve_algorithm(adapter, d, params.algorithm)
    key_params = {**asdict(params), "algorithm": algorithm, "target": target if isinstance(target, str) else int(target),
                  "background_method": bg.method}
    store = store or default_store()

    def compute() -> FeatureAttribution:
        return _compute(adapter, sub, bg, params, algorithm, target, progress, key_params)

    result = store.cached(compute, op="shap_tabular", model_fingerprint=adapter.fingerprint,
                          data_fingerprint=sub.fingerprint + bg.fingerprint, params=key_params, libraries=LIBRARIES)
    report(progress, 1.0, "SHAP values ready")
    # The key is the rows' content, not their positions: the same rows found at other positions
    # (another split, another upload) reuse the values but must carry their own row indices.
    return replace(result, rows=np.asarray(sub.index, dtype=np.int64))


def _compute(adapter: ModelAdapter, sub: DataBundle, bg: Background, params: ShapParams, algorithm: str,
             target: str | int, progress: ProgressCallback | None, key_params: dict[str, Any]) -> FeatureAttribution:
    x = np.asarray(sub.x, dtype=np.float32)
    n, d = x.shape
    report(progress, 0.0, f"SHAP ({algorithm}): predicting {n} rows")
    targets, proba = _targets(adapter, x, target, params.batch_size)
    values = np.empty((n, d))
    base = np.empty(n)
    if algorithm == "tree":
        report(progress, 0.05, "SHAP (tree)")
        all_values, all_base = _tree_values(adapter, x, bg, proba.shape[1])
        values[:] = all_values[np.arange(n), :, targets]
        base[:] = all_base[targets]
    else:
        # One shap call per target class (f depends on it), in row chunks so progress moves.
        # Permutation sampling follows the seeded global generator through the calls, so its
        # values depend on the chunking; the chunking is fixed, so results are reproducible.
        classes = np.unique(targets)
        done = 0
        for k in classes:
            idx = np.flatnonzero(targets == k)
            for start in range(0, len(idx), CHUNK_ROWS) if algorithm != "permutation" else [0]:
                part = idx[start:start + CHUNK_ROWS] if algorithm != "permutation" else idx
                v, b = _masked_values(adapter, x[part], int(k), bg, algorithm, params, d)
                values[part], base[part] = v, b
                done += len(part)
                report(progress, 0.05 + 0.9 * done / n, f"SHAP ({algorithm}): {done}/{n} rows")
    names = sub.feature_names or tuple(f"x{i}" for i in range(d))
    return FeatureAttribution(
        values=values, base_values=base, data=x, feature_names=tuple(names), target=targets,
        output=proba[np.arange(n), targets], rows=np.asarray(sub.index), method=f"shap/{algorithm}",
        params=key_params, signed=True,
    )


def explain_rows(adapter: ModelAdapter, rows: DataBundle, target: str | int, params: ShapParams,
                 progress: ProgressCallback | None = None, store: ArtifactStore | None = None, *,
                 train: DataBundle) -> FeatureAttribution:
    """SHAP values of every row of ``rows``, the background drawn from ``train`` as ``params`` say (the registry's run)."""
    return explain_tabular(adapter, rows, None, background_data(train, params), params, target, progress, store=store)


register(Method(
    name="shap", title="SHAP", params_type=ShapParams, modality="table", prefix="shap", order=0, run=explain_rows,
    unsupported=lambda adapter: None, signed=lambda p: True, output="probability", needs_gradients=False,
    description="Shapley values of the class probability: tree, exact, permutation or kernel estimators from shap.",
))
