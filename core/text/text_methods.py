"""More ways to explain a text, and checks of whether an explanation can be trusted.

- :func:`explain_occlusion`: leave one word out (every occurrence) and measure the drop in the
  explained class's probability.
- :func:`explain_gradient_embedding`: gradient x embedding for torch text models with an
  ``nn.Embedding`` and a :class:`core.text.vocab.Vocabulary` encoder, summed over each word's tokens.
- :func:`explain_text`: one entry point for the three methods (LIME in :mod:`core.text.lime_text`).
- :func:`deletion_curves`: delete words in order of importance and follow the probability;
  the mean drop over the first ``steps`` deletions is the faithfulness score.
- :func:`lime_stability`: LIME's weights over several seeds.
- :func:`submodular_pick`: SP-LIME, a few documents whose explanations cover the globally
  important words.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.errors import InputShapeError, check_int
from core.explanation import Method, get_method, method_names, register, register_loader
from core.explanation import supported_methods as supported
from core.text.lime_text import LIBRARIES, LimeParams, TextExplanation, explain_lime, resolve_target
from core.progress import ProgressCallback, report, subrange
from core.store import ArtifactStore, default_store
from core.text.shap_text import TextShapParams
from core.text.text_perturb import perturber
from core.text.words import WordDocument



@dataclass(frozen=True)
class OcclusionTextParams:
    """Leave-one-word-out parameters.

    Attributes
    ----------
    batch_size : int >= 1
        Documents (each missing one word) per classifier call. Does not change the result.
    """

    batch_size: int = 8192

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, "OcclusionTextParams", minimum=1)


@dataclass(frozen=True)
class NoTextParams:
    """This method has no parameters."""


def supported_methods(adapter: ModelAdapter) -> dict[str, str | None]:
    """Every text method -> None when it can run on ``adapter``, else the reason it cannot."""
    return supported(adapter, "text")


# -- occlusion ----------------------------------------------------------------------------
def explain_occlusion(adapter: ModelAdapter, text: str, target: str | int = "predicted", batch_size: int = 8192,
                      store: ArtifactStore | None = None) -> TextExplanation:
    """Weight of a word = P(target | text) - P(target | text without that word)."""
    check_int("batch_size", batch_size, "explain_occlusion", minimum=1)
    doc = WordDocument.parse(text)
    doc.require_words()

    def compute() -> TextExplanation:
        pert = perturber(adapter, doc)
        d = doc.n_words
        active = np.ones((d + 1, d), dtype=bool)
        active[np.arange(1, d + 1), np.arange(d)] = False
        proba = pert.predict(active, batch_size)
        k = resolve_target(proba[0], target, proba.shape[1], tuple(adapter.class_names))
        weights = proba[0, k] - proba[1:, k]
        return TextExplanation("occlusion", doc, weights, np.argsort(-np.abs(weights), kind="stable"), k,
                               tuple(adapter.class_names), proba[0], path=pert.path, params={"batch_size": batch_size})

    return (store or default_store()).cached(
        compute, op="occlusion_text", model_fingerprint=adapter.fingerprint, data_fingerprint=doc.fingerprint,
        params={"target": target if isinstance(target, str) else int(target)}, libraries=LIBRARIES)


# -- gradient x embedding -----------------------------------------------------------------
def _embedding_layer(adapter: ModelAdapter) -> tuple[str, Any] | None:
    """The layer whose output the gradient methods differentiate: the model's token embeddings.

    A transformer names it (``get_input_embeddings()``, through the adapter); another torch model's is its
    first ``nn.Embedding``.
    """
    module = getattr(adapter, "torch_module", None)
    if module is None or module() is None:
        return None
    if hasattr(adapter, "input_embeddings"):
        return "input embeddings", adapter.input_embeddings()
    import torch

    for name, layer in module().named_modules():
        if isinstance(layer, torch.nn.Embedding):
            return name, layer
    return None


def _vocabulary(adapter: ModelAdapter) -> Any:
    from core.text.vocab import Vocabulary

    owner = getattr(getattr(adapter, "encoder", None), "__self__", None)
    return owner if isinstance(owner, Vocabulary) else None


def _gradient_unsupported(adapter: ModelAdapter) -> str:
    if adapter.info.framework != "torch":
        return adapter.info.gradients_unavailable or f"{adapter.info.framework} models have no torch gradients."
    if _embedding_layer(adapter) is None:
        return "the model has no nn.Embedding layer to take the gradient at."
    if not hasattr(adapter, "token_words") and _vocabulary(adapter) is None:
        return "the model's encoder is not a core.text.vocab.Vocabulary, so tokens cannot be mapped back to words."
    return ""


def token_words(doc: WordDocument, vocabulary: Any) -> np.ndarray:
    """For each token position the vocabulary encodes, the index of its word in ``doc.words``."""
    from core.text.vocab import tokenize

    owners: list[int] = []
    for segment, j in zip(doc.segments, doc.word_index):
        if j >= 0:
            owners += [int(j)] * len(tokenize(segment))
    if len(owners) != len(tokenize(doc.text)):  # pragma: no cover - guards a tokeniser change
        raise InputShapeError("The vocabulary tokenises this text differently from word by word.")
    return np.array(owners[: vocabulary.max_length], dtype=np.int64)


def token_owners(adapter: ModelAdapter, doc: WordDocument) -> np.ndarray:
    """Each token position's word in ``doc.words`` as the model sees the text; -1 for special tokens."""
    if hasattr(adapter, "token_words"):
        return adapter.token_words(doc)
    return token_words(doc, _vocabulary(adapter))


def words_from_tokens(doc: WordDocument, owners: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-word sums of per-token ``scores`` (tokens owned by no word are dropped)."""
    weights = np.zeros(doc.n_words)
    n = min(len(owners), len(scores))
    keep = owners[:n] >= 0
    np.add.at(weights, owners[:n][keep], np.asarray(scores[:n], dtype=np.float64)[keep])
    return weights


def require_gradients(adapter: ModelAdapter, title: str) -> None:
    reason = _gradient_unsupported(adapter)
    if reason:
        raise InputShapeError(f"{title} does not support {adapter.info.name!r}: {reason}",
                              hint="use LIME or leave-one-word-out occlusion, which work for any text model.")


def explain_gradient_embedding(adapter: ModelAdapter, text: str, target: str | int = "predicted",
                               store: ArtifactStore | None = None) -> TextExplanation:
    """Sum over a word's tokens of (d P(target) / d embedding) . embedding.

    The gradient is of the explained class's probability (as LIME and occlusion explain), taken
    at the output of the model's first ``nn.Embedding``, on the model's device.
    """
    require_gradients(adapter, "Gradient x embedding")
    doc = WordDocument.parse(text)
    doc.require_words()

    def compute() -> TextExplanation:
        import torch

        from core.attribution.torch_ops import this_thread_hooks

        _, layer = _embedding_layer(adapter)
        owners = token_owners(adapter, doc)
        module = adapter.torch_module()
        captured: list[Any] = []

        # The module is shared by every session: the hook records this thread's forward pass only
        # (another session's pass may run at the same time, in inference mode), and the gradient is
        # taken with autograd.grad, so the shared parameters' .grad is never written.
        with this_thread_hooks(module, {layer: lambda _m, _i, output: captured.append(output)}), torch.enable_grad():
            out = module(adapter.to_tensor([text]))
            proba = torch.softmax(out.float(), dim=1) if adapter.outputs == "logits" else out.float()
            k = resolve_target(proba[0].detach().cpu().numpy(), target, proba.shape[1], tuple(adapter.class_names))
            emb = captured[0]
            (grad,) = torch.autograd.grad(proba[0, k], emb)
        scores = (emb * grad).sum(dim=-1)[0].detach().cpu().double().numpy()
        weights = words_from_tokens(doc, owners, scores)
        p = proba[0].detach().cpu().double().numpy()
        return TextExplanation("gradient_x_embedding", doc, weights, np.argsort(-np.abs(weights), kind="stable"), k,
                               tuple(adapter.class_names), p / p.sum(), path="gradient")

    return (store or default_store()).cached(
        compute, op="gradient_embedding_text", model_fingerprint=adapter.fingerprint, data_fingerprint=doc.fingerprint,
        params={"target": target if isinstance(target, str) else int(target)}, libraries=LIBRARIES)


def explain_text(adapter: ModelAdapter, text: str, method: str = "lime", params: Any = None,
                 target: str | int = "predicted", progress: ProgressCallback | None = None,
                 store: ArtifactStore | None = None) -> TextExplanation:
    """Explain ``text`` with a registered text method (:func:`core.explanation.method_names` ``("text")``).

    ``params``: the method's params dataclass, or None for its defaults. A ``LimeParams`` given to
    another method is the page's LIME settings: that method then runs with its own defaults (and
    leave-one-word-out with LIME's batch size).
    """
    spec = get_method(method, "text")
    if params is None or not isinstance(params, spec.params_type):
        batch = getattr(params, "batch_size", None)
        params = (OcclusionTextParams(batch) if spec.params_type is OcclusionTextParams and batch
                  else spec.params_type())
    reason = spec.unsupported(adapter)
    if reason:
        raise InputShapeError(f"{spec.title} does not support {adapter.info.name!r}: {reason}",
                              hint="use LIME or leave-one-word-out occlusion, which work for any text model.")
    result = spec.run(adapter, text, target, params, progress, store)
    report(progress, 1.0, f"{spec.title} ready")
    return result


def _run_shap(adapter: ModelAdapter, text: str, target: str | int, params: Any, progress: ProgressCallback | None,
              store: ArtifactStore | None) -> TextExplanation:
    from core.text.shap_text import explain_text_shap

    return explain_text_shap(adapter, text, params, target=target, progress=progress, store=store)


register(Method(
    name="lime", title="LIME", params_type=LimeParams, modality="text", prefix="lime", order=0,
    run=lambda adapter, text, target, params, progress, store: explain_lime(adapter, text, params, target, progress, store),
    unsupported=lambda adapter: None, signed=lambda p: True, output="probability", needs_gradients=False,
    description="A weighted linear model fitted to the classifier on copies of the text with words removed.",
))
register(Method(
    name="occlusion", title="Leave one word out", params_type=OcclusionTextParams, modality="text", prefix="occ", order=1,
    run=lambda adapter, text, target, params, progress, store: explain_occlusion(adapter, text, target,
                                                                                 params.batch_size, store),
    unsupported=lambda adapter: None, signed=lambda p: True, output="probability", needs_gradients=False,
    description="The drop in the class probability when every occurrence of a word is removed.",
))
register(Method(
    name="gradient_x_embedding", title="Gradient x embedding", params_type=NoTextParams, modality="text", order=2,
    run=lambda adapter, text, target, params, progress, store: explain_gradient_embedding(adapter, text, target, store),
    unsupported=lambda adapter: _gradient_unsupported(adapter) or None, signed=lambda p: True, output="probability",
    needs_gradients=True,
    description="The gradient of the class probability at the word embeddings, times the embeddings.",
))
register(Method(
    name="shap_partition", title="SHAP (partition)", params_type=TextShapParams, modality="text", prefix="tshap",
    order=3, run=_run_shap, unsupported=lambda adapter: None, signed=lambda p: True, output="probability",
    needs_gradients=False,
    description="Owen values over a hierarchy of the text's words (shap's Partition explainer).",
))
# Integrated Gradients and attention on the input tokens (their own module; imported before a text lookup).
register_loader("text", lambda: importlib.import_module("core.text.token_methods"))
METHODS = tuple(method_names("text"))
METHOD_TITLES = {name: get_method(name, "text").title for name in METHODS}


# -- faithfulness: deletion curves --------------------------------------------------------
@dataclass(frozen=True)
class DeletionCurve:
    """P(target) as the first 0..steps words of an order are deleted.

    ``probabilities[k]`` is after deleting k words (for ``random``: the mean over the random
    orders). ``score`` is the mean drop P(0) - P(k) over k = 1..steps: higher means the order
    finds the words the prediction depends on sooner (more faithful).
    """

    method: str
    order: np.ndarray
    probabilities: np.ndarray

    @property
    def drops(self) -> np.ndarray:
        return self.probabilities[0] - self.probabilities

    @property
    def score(self) -> float:
        return float(np.mean(self.drops[1:])) if len(self.drops) > 1 else 0.0


def deletion_curves(adapter: ModelAdapter, text: str, target: int, orders: dict[str, np.ndarray], steps: int = 10,
                    n_random: int = 10, seed: int = 0, batch_size: int = 8192,
                    store: ArtifactStore | None = None) -> dict[str, DeletionCurve]:
    """Deletion curves for each named word order, plus ``random`` (mean of ``n_random`` orders)."""
    check_int("steps", steps, "deletion_curves", minimum=1)
    check_int("n_random", n_random, "deletion_curves", minimum=1)
    doc = WordDocument.parse(text)
    doc.require_words()
    steps = min(steps, doc.n_words)
    rng = np.random.default_rng(seed)
    all_orders = {name: np.asarray(order, dtype=np.int64)[:steps] for name, order in orders.items()}
    random_orders = [rng.permutation(doc.n_words)[:steps] for _ in range(n_random)]
    sequences = [*all_orders.values(), *random_orders]
    key = {"target": int(target), "steps": steps, "n_random": n_random, "seed": seed,
           "orders": {name: order.tolist() for name, order in all_orders.items()}}

    def compute() -> dict[str, DeletionCurve]:
        from core.trust.maskers import WordMasker, deletion_orders

        proba = deletion_orders(WordMasker(adapter, [text]), 0, target, sequences, steps, batch_size)
        curves = {name: DeletionCurve(name, order, proba[i]) for i, (name, order) in enumerate(all_orders.items())}
        curves["random"] = DeletionCurve("random", np.array([], dtype=np.int64), proba[len(all_orders):].mean(axis=0))
        return curves

    return (store or default_store()).cached(compute, op="deletion_text", model_fingerprint=adapter.fingerprint,
                                             data_fingerprint=doc.fingerprint, params=key, libraries=LIBRARIES)


# -- stability over seeds -----------------------------------------------------------------
@dataclass(frozen=True)
class Stability:
    """LIME's weights for one document over several seeds.

    ``weights[s, j]`` is word ``words[j]``'s weight with seed ``seeds[s]`` (0 when that run did
    not select it); ``jaccard`` is the mean pairwise Jaccard similarity of the selected sets.
    """

    words: tuple[str, ...]
    seeds: tuple[int, ...]
    weights: np.ndarray
    jaccard: float

    @property
    def mean(self) -> np.ndarray:
        return self.weights.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        return self.weights.std(axis=0, ddof=1) if len(self.seeds) > 1 else np.zeros(len(self.words))


def lime_stability(adapter: ModelAdapter, text: str, params: LimeParams = LimeParams(), target: str | int = "predicted",
                   n_seeds: int = 5, progress: ProgressCallback | None = None,
                   store: ArtifactStore | None = None) -> Stability:
    """Run LIME with seeds ``params.seed .. params.seed + n_seeds - 1``; words are the union selected."""
    check_int("n_seeds", n_seeds, "lime_stability", minimum=1)
    seeds = tuple(params.seed + s for s in range(n_seeds))
    runs = []
    for i, seed in enumerate(seeds):
        runs.append(explain_lime(adapter, text, LimeParams(**{**asdict(params), "seed": seed}), target,
                                 subrange(progress, i / n_seeds, (i + 1) / n_seeds), store))
    union = sorted({int(j) for r in runs for j in r.selected},
                   key=lambda j: -abs(np.mean([r.weights[j] for r in runs])))
    weights = np.array([[r.weights[j] for j in union] for r in runs])
    sets = [set(int(j) for j in r.selected) for r in runs]
    pairs = [(a, b) for i, a in enumerate(sets) for b in sets[i + 1:]]
    jaccard = float(np.mean([len(a & b) / len(a | b) for a, b in pairs])) if pairs else 1.0
    return Stability(tuple(runs[0].doc.words[j] for j in union), seeds, weights, jaccard)


# -- SP-LIME ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pick:
    """SP-LIME's choice: ``picked`` positions into the explained list, in pick order.

    ``coverage[i]`` is the covered importance after the first i+1 picks, ``total`` the
    importance of every word; ``importance`` maps each word to sqrt(sum of |weight|).
    """

    picked: tuple[int, ...]
    coverage: tuple[float, ...]
    total: float
    importance: dict[str, float]


def submodular_pick(explanations: list[TextExplanation], budget: int) -> Pick:
    """Greedy submodular pick (Ribeiro et al. 2016, Algorithm 2) over the words of explanations."""
    check_int("budget", budget, "submodular_pick", minimum=1)
    if not explanations:
        raise InputShapeError("SP-LIME needs at least one explained document.")
    vocab: dict[str, int] = {}
    for e in explanations:
        for w, _ in e.top():
            vocab.setdefault(w, len(vocab))
    matrix = np.zeros((len(explanations), len(vocab)))
    for i, e in enumerate(explanations):
        for w, v in e.top():
            matrix[i, vocab[w]] = abs(v)
    importance = np.sqrt(matrix.sum(axis=0))
    covered = np.zeros(len(vocab), dtype=bool)
    picked: list[int] = []
    coverage: list[float] = []
    for _ in range(min(budget, len(explanations))):
        gains = [-1.0 if i in picked else float(importance[~covered & (matrix[i] > 0)].sum()) for i in range(len(explanations))]
        best = int(np.argmax(gains))
        picked.append(best)
        covered |= matrix[best] > 0
        coverage.append(float(importance[covered].sum()))
    return Pick(tuple(picked), tuple(coverage), float(importance.sum()),
                {w: float(importance[j]) for w, j in vocab.items()})


def explain_many(adapter: ModelAdapter, texts: list[str], params: LimeParams = LimeParams(),
                 progress: ProgressCallback | None = None, store: ArtifactStore | None = None) -> list[TextExplanation]:
    """LIME for each text (predicted class), with progress across the documents."""
    n = len(texts)
    out = []
    for i, text in enumerate(texts):
        report(progress, i / max(n, 1), f"LIME on document {i + 1} of {n}")
        out.append(explain_lime(adapter, text, params, "predicted", None, store))
    report(progress, 1.0, f"{n} documents explained")
    return out


def summarize(explanation: TextExplanation, k: int = 6) -> dict[str, Any]:
    """Top-k words and how many of them come from the document's Usenet header."""
    header = explanation.doc.header_words()
    top = [w for w, _ in explanation.top(k)]
    from_header = [w for w in top if w in header]
    return {"top": top, "from_header": from_header, "header_share": len(from_header) / max(len(top), 1)}
