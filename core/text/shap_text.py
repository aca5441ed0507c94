"""SHAP for text: shap's partition explainer with a text masker, mapped back to our words.

shap splits the document into tokens (a word and the separator after it, ``\\W+`` as the
splitter, the same words as LIME's), masks hierarchical groups of neighbouring tokens with
"..." and attributes P(target) to the tokens (Owen values over the token clustering). A word
that occurs several times gets the sum of its occurrences' values, so the result is a
:class:`~core.text.lime_text.TextExplanation` over the same distinct words as LIME and occlusion,
drawn by the same word-highlighting component. The base value (P(target) with every token
masked) plus the sum of the values equals the model's output (additivity, checked and stored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from core.adapters.base import ModelAdapter
from core.errors import ParameterError, check_int
from core.text.lime_text import TextExplanation, resolve_target
from core.progress import ProgressCallback, report
from core.store import ArtifactStore, default_store
from core.text.text_perturb import check_text_input
from core.text.words import WordDocument

LIBRARIES = ("numpy", "scikit-learn", "torch", "shap")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class TextShapParams:
    """``max_evals``: model evaluations shap may spend (more = finer attributions than whole
    phrases); ``batch_size``: masked documents per model call. shap's partition explainer
    expands its token tree a batch at a time, so the batch size (like ``max_evals``) changes
    which groups get split within the budget and hence the values: both are in the cache key."""

    max_evals: int = 1000
    batch_size: int = 500

    def __post_init__(self) -> None:
        check_int("max_evals", self.max_evals, "TextShapParams", minimum=10)
        check_int("batch_size", self.batch_size, "TextShapParams", minimum=1)


def explain_text_shap(adapter: ModelAdapter, text: str, params: TextShapParams = TextShapParams(),
                      target: str | int = "predicted", progress: ProgressCallback | None = None,
                      store: ArtifactStore | None = None) -> TextExplanation:
    """SHAP values (partition explainer, text masker) of P(target) for ``text``, per distinct word."""
    if not isinstance(params, TextShapParams):
        raise ParameterError(f"The 'params' parameter of explain_text_shap must be a TextShapParams. "
                             f"Got {type(params).__name__} instead.")
    doc = WordDocument.parse(text)
    check_text_input(adapter, doc)
    key = {"max_evals": params.max_evals, "batch_size": params.batch_size,
           "target": target if isinstance(target, str) else int(target)}

    def compute() -> TextExplanation:
        import shap

        report(progress, 0.0, "SHAP (partition): predicting the document")
        proba = adapter.predict_proba(np.array([text], dtype=object))[0]
        k = resolve_target(proba, target, len(proba), tuple(adapter.class_names))

        def f(texts) -> np.ndarray:
            return adapter.predict_proba(np.array(list(texts), dtype=object))[:, k]

        report(progress, 0.05, f"SHAP (partition): up to {params.max_evals} masked documents")
        explainer = shap.Explainer(f, shap.maskers.Text(r"\W+"), algorithm="partition")
        result = explainer([text], max_evals=params.max_evals, batch_size=params.batch_size, silent=True)
        tokens, values = list(result.data[0]), np.asarray(result.values[0], dtype=np.float64)
        base = float(np.ravel(result.base_values)[0])
        index = {w: j for j, w in enumerate(doc.words)}
        weights = np.zeros(doc.n_words)
        unassigned = 0.0
        for token, value in zip(tokens, values):
            words = _WORD.findall(token)
            if len(words) == 1 and words[0] in index:
                weights[index[words[0]]] += value
            else:  # a separator-only token (leading punctuation): keep it for the additivity check
                unassigned += value
        output = float(proba[k])
        additivity = abs(base + float(values.sum()) - output)
        return TextExplanation(
            "shap_partition", doc, weights, np.argsort(-np.abs(weights), kind="stable"), k,
            tuple(adapter.class_names), proba, intercept=base, path="strings",
            params={**key, "base_value": base, "additivity_error": additivity, "separator_value": unassigned},
        )

    result = (store or default_store()).cached(compute, op="shap_text", model_fingerprint=adapter.fingerprint,
                                               data_fingerprint=doc.fingerprint, params=key, libraries=LIBRARIES)
    report(progress, 1.0, "SHAP values ready")
    return result


def rank_agreement(a: TextExplanation, b: TextExplanation, k: int = 10) -> dict[str, float]:
    """How much two explanations of the same document agree.

    ``spearman``: rank correlation of the words' weights (all words; NaN when either explanation's
    weights are constant: :func:`core.trust.sanity.spearman`); ``top_k_overlap``: the
    fraction of the k words with the largest |weight| that both share; ``sign_agreement``: the
    fraction of those shared words whose weights have the same sign.
    """
    if a.doc.words != b.doc.words:
        raise ParameterError("Rank agreement needs two explanations of the same document.")
    from core.trust.sanity import spearman

    k = min(k, len(a.words))
    top_a = set(np.argsort(-np.abs(a.weights), kind="stable")[:k].tolist())
    top_b = set(np.argsort(-np.abs(b.weights), kind="stable")[:k].tolist())
    shared = top_a & top_b
    rho = spearman(a.weights, b.weights)[0]  # NaN when either's weights are constant (one word)
    same_sign = [np.sign(a.weights[j]) == np.sign(b.weights[j]) for j in shared]
    return {"spearman": float(rho), "top_k_overlap": len(shared) / k if k else 1.0,
            "sign_agreement": float(np.mean(same_sign)) if same_sign else 0.0, "k": k}
