"""Predict on perturbed copies of one document, fast where the model allows it.

A perturbation is a boolean mask over the document's distinct words (True = kept). Two paths:

- ``sklearn-sparse``: a scikit-learn pipeline whose first step is a word-unigram
  ``CountVectorizer`` / ``TfidfVectorizer``. The perturbed documents are built directly as a
  sparse matrix in the vectorizer's feature space (the kept words' counts, then idf weighting
  and normalisation exactly as the vectorizer would do them) and the rest of the pipeline is
  called once per batch. No strings are built or re-tokenised.
- ``strings``: any text model; the perturbed texts are built and passed to
  ``adapter.predict_proba`` in batches.

Both give the same probabilities (tests compare them to 1e-12); :func:`perturber` picks the fast
one when it applies and says why when it does not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.errors import InputShapeError, check_int
from core.progress import ProgressCallback, report
from core.text.words import WordDocument


@dataclass
class Perturber:
    """Class probabilities of masked copies of ``doc``; ``path`` names how they are computed."""

    adapter: ModelAdapter
    doc: WordDocument
    path: str = "strings"
    reason: str = ""

    def predict(self, active: np.ndarray, batch_size: int = 8192,
                progress: ProgressCallback | None = None) -> np.ndarray:
        """Probabilities of shape (n, n_classes) for masks of shape (n, n_words)."""
        check_int("batch_size", batch_size, "Perturber.predict", minimum=1)
        active = np.asarray(active, dtype=bool)
        n = len(active)
        if n == 0:
            return np.empty((0, len(self.adapter.class_names)))
        parts = []
        for start in range(0, n, batch_size):
            report(progress, start / n, f"predicting perturbed documents {start:,}/{n:,} ({self.path})")
            parts.append(self._predict(active[start:start + batch_size], batch_size))
        return np.concatenate(parts)

    def _predict(self, active: np.ndarray, batch_size: int) -> np.ndarray:
        # ``batch_size`` texts are built at a time; the model runs them in its own batches (a
        # torch text model's activations grow with the batch, strings do not).
        return self.adapter.predict_proba(np.array(self.doc.texts(active), dtype=object))


class SparsePerturber(Perturber):
    """The ``sklearn-sparse`` path (see the module docstring)."""

    def __init__(self, adapter: ModelAdapter, doc: WordDocument, vectorizer: Any, rest: Any,
                 word_counts: Any) -> None:
        super().__init__(adapter, doc, "sklearn-sparse", "")
        self.vectorizer = vectorizer
        self.rest = rest
        self.word_counts = word_counts  # sparse (n_words, n_features): counts each word contributes
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.tfidf = isinstance(vectorizer, TfidfVectorizer)

    def features(self, active: np.ndarray) -> Any:
        """The vectorizer's output for the masked documents, as a CSR matrix."""
        import scipy.sparse as sp

        counts = sp.csr_matrix(np.asarray(active, dtype=np.float64)) @ self.word_counts
        counts = sp.csr_matrix(counts, dtype=np.float64)
        counts.sort_indices()
        vec = self.vectorizer
        if getattr(vec, "binary", False):
            counts.data[:] = np.minimum(counts.data, 1.0)
        if self.tfidf:
            counts.eliminate_zeros()
            if vec.sublinear_tf:
                np.log(counts.data, counts.data)
                counts.data += 1.0
            if vec.use_idf:
                counts = counts @ sp.diags(vec.idf_)
                counts = sp.csr_matrix(counts)
            if vec.norm is not None:
                from sklearn.preprocessing import normalize

                counts = normalize(counts, norm=vec.norm, copy=False)
        return counts.astype(vec.dtype, copy=False)

    def _predict(self, active: np.ndarray, batch_size: int) -> np.ndarray:
        return np.asarray(self.rest.predict_proba(self.features(active)), dtype=np.float64)


def check_text_input(adapter: ModelAdapter, doc: WordDocument) -> None:
    """Raise a clear error unless ``adapter`` is a text model and ``doc`` has words to explain."""
    doc.require_words()
    if adapter.info.input_kind != "text":
        raise InputShapeError(f"Text explanations need a text model; {adapter.info.name!r} takes {adapter.info.input_kind} input.")


def perturber(adapter: ModelAdapter, doc: WordDocument, allow_fast: bool = True) -> Perturber:
    """The fastest correct :class:`Perturber` for ``adapter`` and ``doc``."""
    check_text_input(adapter, doc)
    if not allow_fast:
        return Perturber(adapter, doc, "strings", "fast path switched off")
    fast, reason = _sparse_perturber(adapter, doc)
    return fast if fast is not None else Perturber(adapter, doc, "strings", reason)


def _sparse_perturber(adapter: ModelAdapter, doc: WordDocument) -> tuple[Perturber | None, str]:
    estimator = getattr(adapter, "estimator", None)
    try:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.pipeline import Pipeline
    except ImportError:  # pragma: no cover - scikit-learn is a requirement
        return None, "scikit-learn is missing"
    if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2:
        return None, "not a scikit-learn pipeline"
    vec = estimator.steps[0][1]
    if not isinstance(vec, CountVectorizer):
        return None, f"first step is {type(vec).__name__}, not a Count/Tfidf vectorizer"
    if vec.analyzer != "word" or tuple(vec.ngram_range) != (1, 1):
        return None, "the vectorizer uses n-grams or a custom analyzer (removing a word can create new tokens)"
    if not hasattr(vec, "vocabulary_"):
        return None, "the vectorizer is not fitted"
    analyze = vec.build_analyzer()
    vocabulary = vec.vocabulary_
    word_tokens = [analyze(w) for w in doc.words]
    # Check the premise: tokenising the whole document gives the union of its words' tokens.
    whole = Counter(analyze(doc.text))
    parts: Counter[str] = Counter()
    for tokens, count in zip(word_tokens, doc.counts):
        for token in tokens:
            parts[token] += int(count)
    if whole != parts:
        return None, "the vectorizer tokenises this document differently from word by word"
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for j, (tokens, count) in enumerate(zip(word_tokens, doc.counts)):
        for token, times in Counter(tokens).items():
            col = vocabulary.get(token)
            if col is not None:
                rows.append(j)
                cols.append(col)
                vals.append(float(times * count))
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(doc.n_words, len(vocabulary)))
    rest = estimator[1:] if len(estimator.steps) > 2 else estimator.steps[-1][1]
    return SparsePerturber(adapter, doc, vec, rest, matrix), ""
