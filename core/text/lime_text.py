"""LIME for text, our own: the same estimator as the ``lime`` package, without its slow parts.

What it computes (the ``lime`` package's ``LimeTextExplainer`` semantics, which tests check
against it):

1. Sample ``num_samples`` masks over the document's distinct words: the first keeps every
   word; each other one removes ``s`` words chosen at random, with ``s`` uniform in 1..d.
2. Predict the class probabilities of the masked documents (:mod:`core.text.text_perturb`: one
   sparse matrix and one estimator call for scikit-learn text pipelines, batched strings
   otherwise).
3. Weight each sample by an exponential kernel of its cosine distance to the document:
   ``sqrt(exp(-(100 * cos_dist)^2 / width^2))``, width 25 by default.
4. Select ``num_features`` words (``auto``: forward selection up to 6, highest weights
   beyond; ``none``: all) and fit a weighted ridge (alpha 1) of the explained class's
   probability on the selected words' presence. Its coefficients are the words' weights; its
   weighted R^2 (the local fit) and intercept are reported.

Where the time goes and what we changed: ``lime`` refits a scikit-learn ``Ridge`` for every
candidate word at every forward-selection step (65-72 % of its time). Forward selection is a
least-squares problem on the weighted Gram matrix, so we solve each step's candidates as one
stacked batch of tiny (k+1)x(k+1) systems. Sampling is vectorised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from core.adapters.base import ModelAdapter
from core.errors import ParameterError, check_int
from core.explanation import Attribution, resolve_targets
from core.params import param
from core.progress import ProgressCallback, report, subrange
from core.store import ArtifactStore, default_store
from core.text.text_perturb import perturber
from core.text.words import WordDocument

FEATURE_SELECTIONS = ("auto", "forward_selection", "highest_weights", "none")
LIBRARIES = ("numpy", "scipy", "scikit-learn", "torch")


@dataclass(frozen=True)
class LimeParams:
    """Parameters of :func:`explain_lime`.

    Attributes
    ----------
    num_samples : int >= 2
        Perturbed documents (lime's default 5000).
    num_features : int >= 1
        Words in the explanation (ignored by ``feature_selection="none"``).
    feature_selection : {"auto", "forward_selection", "highest_weights", "none"}
        As in lime: ``auto`` is forward selection for up to 6 words, highest weights beyond.
    kernel_width : float > 0
        Width of the exponential kernel on 100 x cosine distance (lime's default 25).
    seed : int >= 0
        Seeds the sampling: the same seed gives the same explanation.
    batch_size : int >= 1
        Perturbed documents per classifier call on the sparse path (a scikit-learn ensemble
        with ``n_jobs`` pays ~0.06 s per call whatever its size, so one call for all 5,000
        samples is 2x faster than five of 1,024: bench/lime_text.py), and per chunk of texts
        built on the string path (where the model's own batch size applies inside).
    fast_path : bool
        Use the sparse feature-space path for scikit-learn text pipelines when it applies.
    """

    num_samples: int = param(5000, "Samples", "samples", options=(500, 1000, 2000, 5000, 10000),
                             help="perturbed documents (lime's default 5000); more = less sampling noise")
    num_features: int = param(10, "Words in the explanation", "features", low=1, high=20)
    feature_selection: str = param("auto", "Feature selection", "selection", choices=FEATURE_SELECTIONS,
                                   help="auto: forward selection up to 6 words, highest weights beyond (as in lime)")
    kernel_width: float = 25.0
    seed: int = param(0, "Seed", "seed", low=0, high=10_000, widget="number")
    batch_size: int = 8192
    fast_path: bool = True

    @classmethod
    def form_defaults(cls, context: dict[str, Any]) -> dict[str, Any]:
        """The page's sample count for a slow model (``context["lime_samples"]``, see core/lecture/defaults.py)."""
        return {"num_samples": int(context["lime_samples"])} if context.get("lime_samples") else {}

    def __post_init__(self) -> None:
        owner = "LimeParams"
        check_int("num_samples", self.num_samples, owner, minimum=2)
        check_int("num_features", self.num_features, owner, minimum=1)
        check_int("seed", self.seed, owner, minimum=0)
        check_int("batch_size", self.batch_size, owner, minimum=1)
        if self.feature_selection not in FEATURE_SELECTIONS:
            options = ", ".join(repr(c) for c in FEATURE_SELECTIONS)
            raise ParameterError(f"The 'feature_selection' parameter of {owner} must be a str among {{{options}}}. "
                                 f"Got {self.feature_selection!r} instead.")
        if not isinstance(self.kernel_width, (int, float)) or not self.kernel_width > 0:
            raise ParameterError(f"The 'kernel_width' parameter of {owner} must be a float > 0. "
                                 f"Got {self.kernel_width!r} instead.")


@dataclass(frozen=True, eq=False)
class TextExplanation(Attribution):
    """Word weights toward one class for one document (units: words; any text method).

    Attributes
    ----------
    method : str
    doc : WordDocument
    weights : ndarray of shape (n_words,)
        Each distinct word's weight toward ``target`` (positive: supports it); 0 for words a
        feature-selecting method left out.
    selected : ndarray of int
        Indices of the words in the explanation, by decreasing absolute weight.
    target : int
    class_names : tuple of str
    proba : ndarray of shape (n_classes,)
        The model's probabilities for the whole document.
    intercept, score, local_pred : float or None
        LIME's surrogate: intercept, weighted R^2 (local fit) and its prediction for the document.
    path : str
        How perturbations were predicted (``sklearn-sparse`` or ``strings``), or ``gradient``.
    params : dict
    """

    method: str
    doc: WordDocument
    weights: np.ndarray
    selected: np.ndarray
    target: int
    class_names: tuple[str, ...]
    proba: np.ndarray
    intercept: float | None = None
    score: float | None = None
    local_pred: float | None = None
    path: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    units: ClassVar[str] = "words"

    @property
    def signed(self) -> bool:
        """False for methods whose weights have no direction (attention): pages shade them in one colour."""
        from core.explanation import REGISTRY

        method = REGISTRY["text"].get(self.method)
        return True if method is None else bool(method.signed(self.params))

    def unit_values(self) -> np.ndarray:
        """The word weights as one explained input, shape (1, n_words)."""
        return np.asarray(self.weights, dtype=np.float64)[None, :]

    def unit_names(self, i: int = 0) -> list[str]:
        return list(self.doc.words)

    def __len__(self) -> int:
        return 1

    @property
    def words(self) -> tuple[str, ...]:
        return self.doc.words

    @property
    def target_name(self) -> str:
        return self.class_names[self.target]

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.proba))

    def top(self, k: int | None = None) -> list[tuple[str, float]]:
        """(word, weight) of the selected words, by decreasing absolute weight."""
        chosen = self.selected if k is None else self.selected[:k]
        return [(self.doc.words[j], float(self.weights[j])) for j in chosen]

    def ranking(self) -> np.ndarray:
        """Every word index, most supporting first (by decreasing weight toward the target)."""
        return np.argsort(-self.weights, kind="stable")

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": self.target,
            "target_name": self.target_name,
            "predicted": self.predicted,
            "predicted_name": self.class_names[self.predicted],
            "probabilities": {c: float(p) for c, p in zip(self.class_names, self.proba)},
            "words": [{"word": w, "weight": v} for w, v in self.top()],
            "intercept": self.intercept,
            "local_r2": self.score,
            "local_prediction": self.local_pred,
            "path": self.path,
            "params": self.params,
        }


# -- sampling and kernel ------------------------------------------------------------------
def sample_masks(n_words: int, num_samples: int, seed: int) -> np.ndarray:
    """Masks (True = kept) of shape (num_samples, n_words); row 0 keeps every word.

    Each other row removes ``s`` distinct words chosen uniformly, ``s`` uniform in 1..n_words.
    The draws replay the ``lime`` package's (``RandomState(seed)``: ``randint`` for the sizes,
    then ``choice(..., replace=False)`` per row), so for the same seed both explain the same
    perturbed documents and their results can be compared number for number.
    """
    active = np.ones((num_samples, n_words), dtype=bool)
    if num_samples <= 1 or n_words == 0:
        return active
    rng = np.random.RandomState(seed)
    m = num_samples - 1
    sizes = rng.randint(1, n_words + 1, m)
    # choice(range(d), s, replace=False) is permutation(d)[:s] (numpy's documented legacy
    # stream); drawing the permutations directly skips its per-call overhead (3x faster).
    perms = np.empty((m, n_words), dtype=np.int64)
    permutation = rng.permutation
    for i in range(m):
        perms[i] = permutation(n_words)
    ranks = np.empty_like(perms)
    np.put_along_axis(ranks, perms, np.arange(n_words)[None, :], axis=1)
    active[1:] = ranks >= sizes[:, None]
    return active


def kernel_weights(active: np.ndarray, kernel_width: float) -> tuple[np.ndarray, np.ndarray]:
    """(distances, weights): 100 x cosine distance to the all-kept row, and lime's kernel of it."""
    n_words = active.shape[1]
    kept = active.sum(axis=1)
    distances = (1.0 - np.sqrt(kept / n_words)) * 100.0
    weights = np.sqrt(np.exp(-(distances ** 2) / kernel_width ** 2))
    return distances, weights


# -- the surrogate ------------------------------------------------------------------------
@dataclass(frozen=True)
class Surrogate:
    selected: np.ndarray  # feature indices by decreasing |coef|
    coef: np.ndarray      # coefficients in the order of ``selected``
    intercept: float
    score: float          # weighted R^2 on the samples
    local_pred: float     # prediction for row 0


_TINY = 1e-20  # a weighted sum of squares this small is rounding error: the target is constant


def _r2(sse: float, syy: float) -> float:
    # scikit-learn's r2_score with force_finite: a constant target scores 1 if fitted exactly.
    if syy <= _TINY:
        return 1.0 if sse <= _TINY else 0.0
    return 1.0 - sse / syy


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stacked least squares ``a @ x = b``; pseudo-inverse where a system is singular."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(a) @ b[..., None])[..., 0]


def forward_selection(xs: np.ndarray, ys: np.ndarray, num_features: int) -> np.ndarray:
    """Greedy forward selection by weighted R^2 of an unregularised least-squares fit.

    ``xs`` and ``ys`` are centred (weighted) and scaled by sqrt(weight). At each step every
    remaining candidate's fit is one (k+1)x(k+1) system built from the Gram matrix; all
    candidates are solved together. Ties go to the lowest index, as in lime.
    """
    n_features = xs.shape[1]
    diag = np.einsum("ij,ij->j", xs, xs)
    b = xs.T @ ys
    syy = float(ys @ ys)
    selected: list[int] = []
    cross = np.empty((n_features, 0))  # G[f, s] for s in selected
    for _ in range(min(num_features, n_features)):
        k = len(selected)
        a = np.empty((n_features, k + 1, k + 1))
        a[:, :k, :k] = cross[selected][None, :, :] if k else 0.0
        a[:, :k, k] = cross
        a[:, k, :k] = cross
        a[:, k, k] = diag
        rhs = np.empty((n_features, k + 1))
        rhs[:, :k] = b[selected][None, :]
        rhs[:, k] = b
        beta = _solve(a, rhs)
        explained = np.einsum("ij,ij->i", beta, rhs)  # b_S' G_S^-1 b_S = syy - SSE
        scores = np.ones(n_features) if syy <= _TINY else 1.0 - (syy - explained) / syy
        scores[selected] = -np.inf
        best = int(np.argmax(scores))
        selected.append(best)
        cross = np.column_stack([cross, xs.T @ xs[:, best]])
    return np.array(selected, dtype=np.int64)


def fit_surrogate(data: np.ndarray, labels: np.ndarray, weights: np.ndarray, num_features: int,
                  feature_selection: str = "auto") -> Surrogate:
    """Select features and fit lime's weighted ridge surrogate (alpha 1, with intercept).

    Matches ``lime.lime_base.LimeBase.explain_instance_with_data`` on the same inputs.
    """
    data = np.asarray(data, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    x_mean = weights @ data / total
    y_mean = float(weights @ labels / total)
    root = np.sqrt(weights)
    xs = (data - x_mean) * root[:, None]
    ys = (labels - y_mean) * root
    n_features = data.shape[1]
    method = feature_selection
    if method == "auto":
        method = "forward_selection" if num_features <= 6 else "highest_weights"
    if method == "none":
        used = np.arange(n_features)
    elif method == "forward_selection":
        used = forward_selection(xs, ys, num_features)
    elif method == "highest_weights":
        gram = xs.T @ xs
        coef = _solve(gram + 0.01 * np.eye(n_features), xs.T @ ys)
        used = np.argsort(-np.abs(coef * data[0]), kind="stable")[:num_features]
    else:
        raise ParameterError(f"Unknown feature selection {feature_selection!r}; choose from {', '.join(FEATURE_SELECTIONS)}.")
    sub = xs[:, used]
    coef = _solve(sub.T @ sub + np.eye(len(used)), sub.T @ ys)
    intercept = y_mean - float(x_mean[used] @ coef)
    residual = ys - sub @ coef
    score = _r2(float(residual @ residual), float(ys @ ys))
    local_pred = intercept + float(data[0, used] @ coef)
    order = np.argsort(-np.abs(coef), kind="stable")
    return Surrogate(used[order], coef[order], intercept, score, local_pred)


# -- the explainer ------------------------------------------------------------------------
def resolve_target(proba: np.ndarray, target: str | int, n_classes: int,
                   class_names: tuple[str, ...] | None = None) -> int:
    """The class a document's explanation is for (:func:`core.explanation.resolve_targets` for one input)."""
    names = tuple(class_names) if class_names else tuple(str(k) for k in range(n_classes))
    return int(resolve_targets(target, names, 1, predicted=np.array([np.argmax(proba)]))[0])


def explain_lime(
    adapter: ModelAdapter,
    text: str,
    params: LimeParams = LimeParams(),
    target: str | int = "predicted",
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> TextExplanation:
    """LIME word weights for ``text`` toward ``target`` (the predicted class by default).

    Cached by content: the model's fingerprint, the text, the parameters and library versions.
    """
    if not isinstance(params, LimeParams):
        raise ParameterError(f"The 'params' parameter of explain_lime must be a LimeParams. Got {type(params).__name__} instead.")
    doc = WordDocument.parse(text)
    doc.require_words()
    key_params = {**asdict(params), "target": target if isinstance(target, str) else int(target)}
    store = store or default_store()

    def compute() -> TextExplanation:
        return _lime(adapter, doc, params, target, progress, store)

    result = store.cached(compute, op="lime_text", model_fingerprint=adapter.fingerprint,
                          data_fingerprint=doc.fingerprint, params=key_params, libraries=LIBRARIES)
    report(progress, 1.0, "LIME explanation ready")
    return result


def _lime(adapter: ModelAdapter, doc: WordDocument, params: LimeParams, target: str | int,
          progress: ProgressCallback | None, store: ArtifactStore | None = None) -> TextExplanation:
    pert = perturber(adapter, doc, params.fast_path)
    report(progress, 0.0, f"LIME: sampling {params.num_samples} perturbations of {doc.n_words} words")
    active = sample_masks(doc.n_words, params.num_samples, params.seed)

    def predict() -> np.ndarray:
        return pert.predict(active, params.batch_size, progress=subrange(progress, 0.02, 0.9))

    if pert.path == "strings" and store is not None:
        # The model's answers on the samples depend on the samples only: another surrogate (a feature selection,
        # a target, a word count) on the same samples reuses them. Worth a disk entry where the model is slow.
        proba = store.cached(predict, op="lime_text_samples", model_fingerprint=adapter.fingerprint,
                             data_fingerprint=doc.fingerprint,
                             params={"num_samples": params.num_samples, "seed": params.seed}, libraries=LIBRARIES)
    else:
        proba = predict()
    k = resolve_target(proba[0], target, proba.shape[1], tuple(adapter.class_names))
    report(progress, 0.92, "LIME: fitting the local surrogate")
    _, weights = kernel_weights(active, params.kernel_width)
    fit = fit_surrogate(active, proba[:, k], weights, params.num_features, params.feature_selection)
    full = np.zeros(doc.n_words)
    full[fit.selected] = fit.coef
    return TextExplanation(
        method="lime", doc=doc, weights=full, selected=fit.selected, target=k,
        class_names=tuple(adapter.class_names), proba=proba[0], intercept=fit.intercept, score=fit.score,
        local_pred=fit.local_pred, path=pert.path, params={**asdict(params), "path_reason": pert.reason},
    )
