"""Can a text explanation be trusted? The image sanity checks of :mod:`core.trust.sanity`, on words.

- :func:`text_explanations`: word weights of several methods for several documents, each toward
  a fixed class (the original model's prediction), so randomised models explain the same class.
- :func:`text_randomization_test`: re-initialise a torch text model's layers from the output down
  (cascading) or one at a time (independent) and measure how similar each method's word weights
  stay (Spearman of |weights|, top-k word overlap).
- :func:`text_faithfulness_curves`: delete (or insert) words in order of their weight, most
  relevant first and least relevant first, against random orders; x axis = fraction of words.
- :func:`text_agreement`: every pair of methods' rank correlation and top-k overlap per document.

Word weights are per distinct word (LIME's bag of words: removing a word removes every
occurrence). Documents have different numbers of words, so similarities are computed per
document and then averaged.
"""

from __future__ import annotations

import numpy as np

from core.adapters.base import ModelAdapter
from core.errors import InputShapeError, ParameterError
from core.text.lime_text import LimeParams, TextExplanation
from core.progress import ProgressCallback, subrange
from core.trust.sanity import (
    FaithfulnessCurves,
    RandomizationResult,
    agreement,
    randomization,
    spearman,
    top_k_overlap,
)
from core.store import ArtifactStore
from core.text.text_methods import METHOD_TITLES, explain_text, supported_methods

TOP_K_WORDS = 10
# LIME for comparisons weighs every word (no feature selection) so rank correlations see them all.
COMPARISON_LIME = LimeParams(num_samples=2000, feature_selection="none")


def available_methods(adapter: ModelAdapter) -> list[str]:
    """Text methods that support ``adapter`` (gradient x embedding only for torch text models)."""
    return [m for m, reason in supported_methods(adapter).items() if not reason]


def predicted_classes(adapter: ModelAdapter, texts: list[str]) -> np.ndarray:
    """The model's predicted class per text, the target every check explains."""
    return adapter.predict_proba(list(texts)).argmax(axis=1)


def text_explanations(
    adapter: ModelAdapter,
    texts: list[str],
    methods: list[str],
    targets: np.ndarray,
    *,
    lime: LimeParams = COMPARISON_LIME,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> dict[str, list[TextExplanation]]:
    """Explanations per method (a list over ``texts``), each toward ``targets[i]``."""
    if len(targets) != len(texts):
        raise InputShapeError(f"{len(texts)} texts but {len(targets)} targets; give one target per text.")
    support = supported_methods(adapter)
    for m in methods:
        if m not in support:
            raise ParameterError(f"Unknown text method {m!r}; choose from {', '.join(support)}.")
        if support[m]:
            raise ParameterError(f"{METHOD_TITLES[m]} does not support {adapter.info.name!r}: {support[m]}")
    out: dict[str, list[TextExplanation]] = {m: [] for m in methods}
    total = max(1, len(methods) * len(texts))
    for j, method in enumerate(methods):
        for i, text in enumerate(texts):
            step = j * len(texts) + i
            out[method].append(explain_text(adapter, text, method, lime, target=int(targets[i]),
                                            progress=subrange(progress, step / total, (step + 1) / total), store=store))
    return out


def _word_similarity(a: np.ndarray, b: np.ndarray, k: int = TOP_K_WORDS) -> tuple[float, float]:
    """(Spearman of |a|, |b|; share of a's top-k words by |weight| also in b's top-k) for one document."""
    a = np.abs(np.asarray(a, dtype=np.float64))[None]
    b = np.abs(np.asarray(b, dtype=np.float64))[None]
    return float(spearman(a, b)[0]), float(top_k_overlap(a, b, fraction=min(1.0, k / a.shape[1]))[0])


def text_randomization_test(
    adapter: ModelAdapter,
    texts: list[str],
    methods: list[str],
    *,
    mode: str = "cascading",
    seed: int = 0,
    lime: LimeParams = COMPARISON_LIME,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> dict[str, RandomizationResult]:
    """Model parameter randomisation test of text methods on a torch text model.

    Returns per method a :class:`core.trust.sanity.RandomizationResult` whose ``heatmaps`` is an object
    array of shape (n_stages, n_texts) holding each stage's word weights, and whose similarity
    has ``spearman`` and ``top_k`` of shape (n_stages, n_texts).
    """
    if not texts or not methods:
        raise ParameterError("Give at least one text and one method to the randomisation test.")
    targets = predicted_classes(adapter, texts) if adapter.torch_module() is not None else None

    def explain_stage(stage_adapter: ModelAdapter, part: ProgressCallback | None) -> dict[str, list[np.ndarray]]:
        found = text_explanations(stage_adapter, texts, methods, targets, lime=lime, store=store, progress=part)
        return {m: [e.weights for e in found[m]] for m in methods}

    def similarity(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
        rho, top = _word_similarity(a[0], b[0])
        return {"spearman": np.array([rho]), "top_k": np.array([top])}

    return randomization(adapter, list(methods), explain_stage, similarity, mode=mode, seed=seed,
                         noun="word weights", ragged=True, progress=progress,
                         hint="pick the torch text model (bag of embeddings).")


def text_faithfulness_curves(
    adapter: ModelAdapter,
    texts: list[str],
    targets: np.ndarray,
    weights: list[np.ndarray],
    *,
    method: str = "",
    steps: int = 10,
    random_orders: int = 5,
    seed: int = 0,
    batch_size: int = 8192,
    progress: ProgressCallback | None = None,
) -> FaithfulnessCurves:
    """Deletion / insertion curves of word weights, one row per text.

    ``weights[i]`` has one value per distinct word of ``texts[i]`` (larger = more evidence for
    ``targets[i]``). At point k of ``steps`` the first round(k / steps * n_words) words of the order
    are deleted (deletion) or are the only ones kept (insertion, starting from the empty text).
    Curves: ``deletion`` (most relevant first), ``deletion_least`` (least relevant first),
    ``insertion``, ``deletion_random`` and ``insertion_random`` (means over ``random_orders``).
    The same implementation as the images' (:func:`core.trust.maskers.deletion_insertion`), with a
    :class:`~core.trust.maskers.WordMasker`.
    """
    from core.trust.maskers import WordMasker, deletion_insertion

    return deletion_insertion(WordMasker(adapter, list(texts)), list(weights), np.asarray(targets, dtype=np.int64),
                              method=method, steps=steps, random_orders=random_orders, seed=seed,
                              batch_size=batch_size, progress=progress)


def text_agreement(explanations: dict[str, list[TextExplanation]],
                   k: int = TOP_K_WORDS) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, Spearman (m, m, n), top-k word overlap (m, m, n)) between every pair of methods.

    The same measures as :func:`core.trust.sanity.agreement`, per document (word counts differ between
    documents); top-k is ``k`` words (at most the document's word count). Pairs involving
    degenerate (all-zero or constant) word weights are NaN.
    """
    names = list(explanations)
    n = len(next(iter(explanations.values())))
    rho = np.ones((len(names), len(names), n))
    top = np.ones((len(names), len(names), n))
    for i in range(n):
        d = explanations[names[0]][i].doc.n_words
        one = {m: explanations[m][i].weights[None] for m in names}
        _, r, t = agreement(one, fraction=min(1.0, k / d))
        rho[:, :, i], top[:, :, i] = r[:, :, 0], t[:, :, 0]
    return names, rho, top
