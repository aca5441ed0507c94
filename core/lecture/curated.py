"""Curated examples per page: the few inputs worth putting on a projector.

Presentation mode steps through :func:`examples` with a "next example" button; ``warm --all``
precomputes them and their explanations before a lecture. Every list is computed from the data
and the models' (disk-cached) predictions, never from hard-coded indices, and is itself cached by
content: the models' fingerprints, the test split's fingerprint, the page and the parameters.

What each page gets (``index`` is a row of the scenario's TEST split):

- ``images`` / ``trust`` (image scenarios): the model's most confident mistakes, then a few
  confidently correct images of other classes for contrast.
- ``text`` / ``trust`` (text scenarios): documents where the page's two compared models disagree
  (different predictions), posts where they agree but their leave-one-word-out explanations share
  few top words, and posts where the headers variant's model relies on Usenet header words.
- ``shapley``: tabular: the most confident mistake, the row closest to the decision boundary and a
  typical row of each class; image and text scenarios: as on their explanation pages.
- ``uncertainty`` (image scenarios): the most disputed test inputs of the page's default source
  (MC dropout: highest mutual information between the passes), then its confident mistakes.
- ``embeddings``: mistakes whose activations lie among another class's points (most of their
  nearest neighbours in activation space belong to the class the model predicted), else confident
  mistakes.
- ``calibration``: one page-level example per model (``index`` None): its ECE and the direction of
  its miscalibration.
- ``home``: typical test samples of each class (the most confidently right ones), class by class.

Titles and reasons may quote document words and class names: escape them before writing HTML.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from core import scenarios
from core.errors import check_int, unknown_name
from core.fingerprint import hash_json
from core.progress import ProgressCallback, report, subrange
from core.store import ArtifactStore, default_store

PAGES = ("home", "calibration", "images", "text", "trust", "shapley", "uncertainty", "embeddings")
CURATED_VERSION = 4  # bump when a selection rule changes: the cached lists are keyed by it

# Widgets that offer only the first rows of the test split (a pick outside them cannot be shown).
PICKER_ROWS = {"trust": 500, "shapley-image": 500, "shapley-tabular": 150}
TEXT_POOL = 24  # agreeing documents explained word by word to find different reasons (bounded cost)
TEXT_MAX_WORDS = 300  # longer posts cost more model calls per leave-one-word-out explanation
TOP_WORDS = 6  # words compared between the two models' explanations (the text page's reliance caption)
NEIGHBOURS = 15  # neighbours in activation space that decide whether a mistake sits in another class's cluster


@dataclass(frozen=True)
class Example:
    """One curated example of a page.

    Attributes
    ----------
    index : int or None
        Row of the scenario's TEST split; None for page-level examples (a model on the calibration page).
    title : str
        One line for the projector, e.g. "Most confident mistake: a 4 read as 9 (99.8 %)".
    why : str
        One sentence: why this example is worth showing.
    model : str or None
        Show it with this model (None: keep the current one).
    variant : str or None
        newsgroups: "headers" / "no-headers" (None: keep the current one).
    """

    index: int | None
    title: str
    why: str
    model: str | None = None
    variant: str | None = None


# -- pure selection rules (unit-tested against plain numpy) -----------------------------------------
def confident_mistakes(y: np.ndarray, proba: np.ndarray, k: int | None = None, max_index: int | None = None) -> np.ndarray:
    """Rows predicted wrongly, most confident first (ties: lower row first).

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    proba : ndarray of shape (n_samples, n_classes)
    max_index : int, optional
        Only rows below this (a picker that offers the first rows only).
    """
    y, proba = np.asarray(y), np.asarray(proba)
    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(len(proba)), pred]
    rows = np.flatnonzero(pred != y)
    if max_index is not None:
        rows = rows[rows < max_index]
    order = np.lexsort((rows, -confidence[rows]))
    return rows[order][:k]


def confident_correct(y: np.ndarray, proba: np.ndarray, k: int, max_index: int | None = None) -> np.ndarray:
    """The most confidently right row of each class, classes in order of that confidence; ``k`` at most."""
    y, proba = np.asarray(y), np.asarray(proba)
    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(len(proba)), pred]
    rows = np.flatnonzero(pred == y)
    if max_index is not None:
        rows = rows[rows < max_index]
    rows = rows[np.lexsort((rows, -confidence[rows]))]
    _, first = np.unique(y[rows], return_index=True)  # the best row of each class
    best = rows[np.sort(first)]
    return best[np.lexsort((best, -confidence[best]))][:k]


def typical_per_class(y: np.ndarray, proba: np.ndarray, per_class: int) -> np.ndarray:
    """Up to ``per_class`` most confidently right rows of each class, interleaved class by class."""
    y, proba = np.asarray(y), np.asarray(proba)
    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(len(proba)), pred]
    ranked = []
    for c in np.unique(y):
        rows = np.flatnonzero((y == c) & (pred == c))
        ranked.append(rows[np.lexsort((rows, -confidence[rows]))][:per_class])
    out = [int(r[i]) for i in range(per_class) for r in ranked if i < len(r)]
    return np.asarray(out, dtype=np.int64)


def most_disputed(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows with the highest score, highest first (ties: lower row first), as the uncertainty page's gallery."""
    scores = np.asarray(scores)
    return np.lexsort((np.arange(len(scores)), -scores))[:k]


def neighbour_share(activations: np.ndarray, labels: np.ndarray, queries: np.ndarray, classes: np.ndarray,
                    k: int = NEIGHBOURS) -> np.ndarray:
    """Share of each query's ``k`` nearest other points (euclidean, in ``activations``) whose label is ``classes[i]``.

    Parameters
    ----------
    activations : ndarray of shape (n_points, n_units)
    labels : ndarray of shape (n_points,)
    queries : ndarray of shape (n_queries,), rows of ``activations``
    classes : ndarray of shape (n_queries,), the class to count per query
    """
    # scikit-learn's NearestNeighbors, the query row left out. bench/libraries.py: 2.0 ms against 0.28 ms of
    # the former own float32 distance matrix for the digits CNN's 6 mistakes (7x, a fixed cost), once per
    # cached curated list: one kNN function instead of two.
    from core.embeddings.quality import nearest

    a = np.asarray(activations).reshape(len(activations), -1)
    queries = np.asarray(queries, dtype=np.int64)
    k = min(k, len(a) - 1)
    if k < 1 or len(queries) == 0:
        return np.zeros(len(queries), dtype=np.float64)
    found = nearest(a, queries, k)
    return (np.asarray(labels)[found] == np.asarray(classes)[:, None]).mean(axis=1)


def top_word_overlap(a: list[str], b: list[str]) -> float:
    """Jaccard overlap of two top-word lists (1: the same words, 0: none shared)."""
    sa, sb = set(a), set(b)
    return len(sa & sb) / max(len(sa | sb), 1)


# -- helpers ------------------------------------------------------------------------------------------
def _pct(p: float) -> str:
    return f"{100 * p:.1f} %"


def _a(name: str) -> str:
    """'a 4', 'an 8', 'an atheism post' style article for a class name."""
    return f"an {name}" if name[:1].lower() in "8aeiou" or name in ("11", "18") else f"a {name}"


def _noun(spec: scenarios.ScenarioSpec, name: str, plural: bool = False) -> str:
    """A class as a thing on screen: '4' / '4s', 'atheism post(s)', 'benign row(s)'."""
    thing = {"image": name, "text": f"{name} post", "tabular": f"{name} row"}[spec.kind]
    return thing + "s" if plural else _a(thing)


def _read(spec: scenarios.ScenarioSpec, true: int, pred: int) -> str:
    names = spec.class_names
    if spec.kind == "image":
        return f"{_a(names[true])} read as {names[pred]}"
    return f"{names[true]} predicted as {names[pred]}"


class _Context:
    """Lazily loaded models, data and predictions shared by one :func:`examples` call."""

    def __init__(self, spec: scenarios.ScenarioSpec, variant: str | None, model: str, store: ArtifactStore,
                 progress: ProgressCallback | None) -> None:
        self.spec, self.variant, self.model, self.store, self.progress = spec, variant, model, store, progress
        self.test = scenarios.load_data(spec.name, variant)["test"]

    def loaded(self, model: str | None = None, variant: str | None = "current") -> scenarios.TrainedModel:
        variant = self.variant if variant == "current" else variant
        return scenarios.load_model(self.spec.name, model or self.model, variant, progress=self.progress,
                                    store=self.store)

    def proba(self, model: str | None = None, variant: str | None = "current", split: str = "test") -> np.ndarray:
        from core.inference import predict_proba_cached

        variant = self.variant if variant == "current" else variant
        bundle = scenarios.load_data(self.spec.name, variant)[split]
        return predict_proba_cached(self.loaded(model, variant).adapter, bundle, store=self.store)


def _row(index: int | None, title: str, why: str, model: str | None = None, variant: str | None = None) -> dict[str, Any]:
    return asdict(Example(None if index is None else int(index), title, why, model, variant))


# -- per page ------------------------------------------------------------------------------------------
def _image_mistakes(ctx: _Context, limit: int, max_index: int | None = None) -> list[dict[str, Any]]:
    """The model's most confident mistakes, then confidently correct images for contrast."""
    spec, y = ctx.spec, np.asarray(ctx.test.y)
    proba = ctx.proba()
    contrast = 0 if limit < 3 else max(1, limit // 4)
    mistakes = confident_mistakes(y, proba, limit - contrast, max_index)
    correct = confident_correct(y, proba, limit - len(mistakes), max_index)
    pred = proba.argmax(axis=1)
    rows = []
    for rank, i in enumerate(mistakes):
        what = "Most confident mistake" if rank == 0 else f"Confident mistake #{rank + 1}"
        rows.append(_row(i, f"{what}: {_read(spec, y[i], pred[i])} ({_pct(proba[i, pred[i]])})",
                         f"{ctx.model} is {_pct(proba[i, pred[i]])} sure and wrong: does the explanation show what "
                         f"made it see {_a(spec.class_names[pred[i]])}?"))
    for i in correct:
        rows.append(_row(i, f"Confidently right: {_a(spec.class_names[y[i]])} ({_pct(proba[i, pred[i]])})",
                         "For contrast: what the model looks at when it is right and sure."))
    return rows


def text_comparison(model: str, variant: str | None, spec: scenarios.ScenarioSpec) -> tuple[str, str | None]:
    """The (model, variant) the text page compares the selected one with by default (its rule, kept in step)."""
    combos = [(m, v) for v in (spec.variants or (None,)) for m in spec.model_names]
    default = ("logreg", "no-headers") if (model, variant) != ("logreg", "no-headers") else ("forest", "headers")
    if default not in combos:
        default = next((c for c in combos if c != (model, variant)), combos[0])
    return default


def _text(ctx: _Context, limit: int, max_index: int | None = None) -> list[dict[str, Any]]:
    """Documents where the page's two models disagree, or agree for different reasons, or read headers."""
    from core.text.text_methods import explain_occlusion, summarize
    from core.text.words import WordDocument

    spec, y = ctx.spec, np.asarray(ctx.test.y)
    other_model, other_variant = text_comparison(ctx.model, ctx.variant, spec)
    name_a = f"{ctx.model}" + (f" [{ctx.variant}]" if ctx.variant else "")
    name_b = f"{other_model}" + (f" [{other_variant}]" if other_variant else "")
    # The page shows the compared model the selected variant's text, so its predictions are taken on that text too.
    from core.inference import predict_proba_cached

    adapter_a, adapter_b = ctx.loaded().adapter, ctx.loaded(other_model, other_variant).adapter
    pa = ctx.proba()
    pb = predict_proba_cached(adapter_b, ctx.test, store=ctx.store)
    texts = ctx.test.x
    pred_a, pred_b = pa.argmax(axis=1), pb.argmax(axis=1)
    limit_rows = len(y) if max_index is None else min(max_index, len(y))
    rows_all = np.arange(limit_rows)
    names = spec.class_names
    out: list[dict[str, Any]] = []

    # 1. different predictions, the largest gap in P(first class) first
    n_disagree = max(1, limit // 3)
    gap = np.abs(pa[:, 0] - pb[:, 0])
    disagree = rows_all[pred_a[rows_all] != pred_b[rows_all]]
    disagree = disagree[np.lexsort((disagree, -gap[disagree]))][:n_disagree]
    for i in disagree:
        out.append(_row(i, f"{name_a} says {names[pred_a[i]]} ({_pct(pa[i, pred_a[i]])}), {name_b} says "
                           f"{names[pred_b[i]]} ({_pct(pb[i, pred_b[i]])}); it is {names[y[i]]}",
                        "The two models disagree: compare the words each one relies on.", ctx.model, ctx.variant))

    # 2. and 3. the same prediction, explained word by word on a bounded pool of agreeing posts of the first
    # class (the lecture's atheism posts), shortest reading first
    agree = rows_all[(pred_a[rows_all] == pred_b[rows_all]) & (pred_a[rows_all] == y[rows_all])]
    agree = np.concatenate([agree[y[agree] == 0], agree[y[agree] != 0]])
    pool = [int(i) for i in agree if WordDocument.parse(str(texts[i])).n_words <= TEXT_MAX_WORDS][:TEXT_POOL]
    found = []
    for j, i in enumerate(pool):
        report(ctx.progress, j / max(len(pool), 1), f"explaining document #{i} with both models (leave one word out)")
        ea = explain_occlusion(adapter_a, str(texts[i]), store=ctx.store)
        eb = explain_occlusion(adapter_b, str(texts[i]), store=ctx.store)
        sa, sb = summarize(ea, TOP_WORDS), summarize(eb, TOP_WORDS)
        found.append((i, top_word_overlap(sa["top"], sb["top"]), sa, sb))
    taken = {int(r["index"]) for r in out}
    n_reasons = max(1, (limit - len(out)) // 2)
    for i, overlap, sa, sb in sorted(found, key=lambda f: (f[1], f[0]))[:n_reasons]:
        out.append(_row(i, f"Both say {names[pred_a[i]]}, for different reasons: {name_a}: {', '.join(sa['top'][:3])} · "
                           f"{name_b}: {', '.join(sb['top'][:3])}",
                        f"Same prediction, {_pct(overlap)} of their top {TOP_WORDS} words shared: which model would you "
                        "trust?", ctx.model, ctx.variant))
        taken.add(i)
    # The model that reads headers: the selected one, or the compared one when only it sees them.
    header_side = [(name_a, 2, ctx.model, ctx.variant), (name_b, 3, other_model, other_variant)]
    for label, slot, _model, variant in header_side:
        if variant == "no-headers":
            continue
        readers = sorted(((-len(f[slot]["from_header"]), f[0], f[slot]) for f in found
                          if f[slot]["from_header"] and f[0] not in taken))
        for _, i, s in readers[:max(0, limit - len(out))]:
            out.append(_row(i, f"{label} relies on header words: {', '.join(s['from_header'][:4])}",
                            f"{len(s['from_header'])} of its top {TOP_WORDS} words come from the Usenet header: they say "
                            "where a post came from, not what it argues.", ctx.model, ctx.variant))
            taken.add(i)
        break
    return out[:limit]


def _tabular(ctx: _Context, limit: int) -> list[dict[str, Any]]:
    """Most confident mistake, the row closest to the decision boundary, a typical row of each class."""
    spec, y = ctx.spec, np.asarray(ctx.test.y)
    proba = ctx.proba()
    n = min(PICKER_ROWS["shapley-tabular"], len(y))
    pred = proba.argmax(axis=1)
    out = []
    mistakes = confident_mistakes(y, proba, 1, n)
    for i in mistakes:
        out.append(_row(i, f"Most confident mistake: {_read(spec, y[i], pred[i])} ({_pct(proba[i, pred[i]])})",
                        "Which features pushed the model so far the wrong way?"))
    top2 = np.sort(proba[:n], axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    boundary = int(np.lexsort((np.arange(n), margin))[0])
    if boundary not in mistakes:
        out.append(_row(boundary, f"On the fence: {spec.class_names[pred[boundary]]} by a margin of "
                                  f"{_pct(margin[boundary])} (true {spec.class_names[y[boundary]]})",
                        "Closest to the decision boundary: small feature changes would flip it."))
    x = np.asarray(ctx.test.x, dtype=np.float64)[:n]
    scale = x.std(axis=0)
    z = (x - np.median(x, axis=0)) / np.where(scale > 0, scale, 1.0)
    for c in range(len(spec.class_names)):
        rows = np.flatnonzero((y[:n] == c) & (pred[:n] == c))
        if not len(rows):
            continue
        centre = np.median(z[rows], axis=0)
        distance = np.linalg.norm(z[rows] - centre, axis=1)
        i = int(rows[np.lexsort((rows, distance))[0]])
        out.append(_row(i, f"Typical: {_noun(spec, spec.class_names[c])} ({_pct(proba[i, c])})",
                        f"Correctly predicted and the closest row to the median {spec.class_names[c]}: the usual reasons."))
    return out[:limit]


def default_uncertainty_source(scenario: str, model: str) -> tuple[str, int]:
    """(kind, n) the uncertainty page opens with: 30 MC dropout passes of the scenario's own model (nothing to
    train) where the model has dropout, else its first available source (5 members; the page trains them only
    when asked, with an estimate of the time)."""
    from core.uncertainty.members import ENSEMBLE_KINDS, supported_sources

    support = supported_sources(scenario, model)
    kind = "mc_dropout" if support.get("mc_dropout") is None else next(k for k, r in support.items() if r is None)
    return kind, 5 if kind in ENSEMBLE_KINDS else 30


def _uncertainty(ctx: _Context, limit: int) -> list[dict[str, Any]]:
    """The most disputed test inputs of the page's default source, then the ensemble's confident mistakes."""
    from core.uncertainty.metrics import uncertainty_scores
    from core.uncertainty.sources import SOURCES, load_source

    spec, y = ctx.spec, np.asarray(ctx.test.y)
    kind, n = default_uncertainty_source(spec.name, ctx.model)
    source = load_source(spec.name, ctx.model, ctx.variant, kind, n, progress=subrange(ctx.progress, 0.0, 0.8),
                         store=ctx.store)
    proba = source.probabilities(ctx.test, store=ctx.store, progress=subrange(ctx.progress, 0.8, 1.0))
    mean = proba.mean(axis=0)
    scores = uncertainty_scores(proba)
    mi = scores["mutual_information"]
    votes = proba.argmax(axis=2)
    pred = mean.argmax(axis=1)
    members = "members" if source.is_ensemble else "passes"
    who = f"{source.n_members} {members} of the {SOURCES[source.kind]}"
    out = []
    n_disputed = max(1, (limit + 1) // 2)
    for i in most_disputed(mi, n_disputed):
        counts = np.bincount(votes[:, i], minlength=len(spec.class_names))
        voted = ", ".join(f"{spec.class_names[c]}:{v}" for c, v in enumerate(counts) if v)
        out.append(_row(i, f"Most disputed: {_a(spec.class_names[y[i]])}, votes {voted} (mutual information {mi[i]:.3f})",
                        f"The {who} disagree most about it: epistemic uncertainty at its highest."))
    taken = {int(r["index"]) for r in out}
    for i in confident_mistakes(y, mean):
        if len(out) >= limit:
            break
        if int(i) in taken:
            continue
        out.append(_row(i, f"Confident mistake: {_read(spec, y[i], pred[i])} ({_pct(mean[i, pred[i]])}, "
                           f"mutual information {mi[i]:.3f})",
                        f"Wrong although the {members} agree: uncertainty does not flag every error."))
    return out


def _embeddings(ctx: _Context, limit: int) -> list[dict[str, Any]]:
    """Mistakes whose activations sit among the predicted class's points (the page's default layer, all splits)."""
    from core.embeddings import collect_activations, combine_splits, default_layer

    spec = ctx.spec
    adapter = ctx.loaded().adapter
    proba = ctx.proba()
    y = np.asarray(ctx.test.y)
    pred = proba.argmax(axis=1)
    mistakes = confident_mistakes(y, proba)
    if not adapter.layer_names():
        return [dict(r, why=r["why"] + " (this model exposes no layers to map)") for r in _image_or_plain(ctx, limit)]
    layer = default_layer(adapter)
    bundle, split_of, position = combine_splits(scenarios.load_data(spec.name, ctx.variant), "all")
    acts = collect_activations(adapter, bundle, layer, store=ctx.store, progress=ctx.progress)
    test_rows = np.flatnonzero(split_of == "test")
    test_rows = test_rows[np.argsort(position[test_rows])]  # map row of each test index
    share = neighbour_share(acts, np.asarray(bundle.y), test_rows[mistakes], pred[mistakes])
    confidence = proba[mistakes, pred[mistakes]]
    order = np.lexsort((mistakes, -confidence, -share))
    out = []
    for j in order[:limit]:
        i = int(mistakes[j])
        inside = int(round(share[j] * min(NEIGHBOURS, len(bundle) - 1)))
        where = f"among the {_noun(spec, spec.class_names[pred[i]], True)}" if share[j] >= 0.5 else "between clusters"
        read = _read(spec, y[i], pred[i])
        space = "its raw features" if layer == "input" else f"layer {layer}"
        out.append(_row(i, f"{read[0].upper()}{read[1:]}, mapped {where} "
                           f"({inside} of {min(NEIGHBOURS, len(bundle) - 1)} neighbours)",
                        f"In {space} it looks like the {_noun(spec, spec.class_names[pred[i]], True)} around it: the representation, "
                        "not just the last step, got it wrong." if share[j] >= 0.5 else
                        f"A mistake ({_pct(confidence[j])} sure) whose neighbours in {space} are mixed: the model "
                        "sits between classes here."))
    return out


def _image_or_plain(ctx: _Context, limit: int) -> list[dict[str, Any]]:
    spec, y = ctx.spec, np.asarray(ctx.test.y)
    proba = ctx.proba()
    pred = proba.argmax(axis=1)
    return [_row(i, f"Confident mistake: {_read(spec, y[i], pred[i])} ({_pct(proba[i, pred[i]])})",
                 "The model is sure and wrong.") for i in confident_mistakes(y, proba, limit)]


def _calibration(ctx: _Context, limit: int) -> list[dict[str, Any]]:
    """One page-level example per model: its ECE and whether it is over- or underconfident."""
    from core.calibration import expected_calibration_error, top_label_curve

    y = np.asarray(ctx.test.y)
    out = []
    for model in ctx.spec.model_names:
        proba = ctx.proba(model)
        pred = proba.argmax(axis=1)
        confidence = float(proba[np.arange(len(y)), pred].mean())
        accuracy = float(np.mean(pred == y))
        ece = expected_calibration_error(top_label_curve(proba, y, 15, "uniform"))
        direction = "overconfident" if confidence > accuracy else "underconfident"
        out.append(_row(None, f"{model}: ECE {_pct(ece)}, {direction}",
                        f"Mean confidence {_pct(confidence)} against an accuracy of {_pct(accuracy)} on the test split.",
                        model, ctx.variant))
    return out[:limit]


def _home(ctx: _Context, limit: int) -> list[dict[str, Any]]:
    spec, y = ctx.spec, np.asarray(ctx.test.y)
    proba = ctx.proba()
    per_class = -(-limit // len(spec.class_names))
    out = []
    for i in typical_per_class(y, proba, per_class)[:limit]:
        out.append(_row(i, f"Typical: {_noun(spec, spec.class_names[y[i]])}, #{i} ({_pct(proba[i, y[i]])})",
                        "A test sample the model gets right with the most confidence in its class."))
    return out


def _builder(kind: str, page: str) -> Callable[[_Context, int], list[dict[str, Any]]] | None:
    if page == "home":
        return _home
    if page == "calibration":
        return _calibration
    if page == "embeddings":
        return _embeddings
    if kind == "image":
        return {
            "images": _image_mistakes,
            "trust": lambda ctx, limit: _image_mistakes(ctx, limit, PICKER_ROWS["trust"]),
            "shapley": lambda ctx, limit: _image_mistakes(ctx, limit, PICKER_ROWS["shapley-image"]),
            "uncertainty": _uncertainty,
        }.get(page)
    if kind == "text":
        return {
            "text": _text,
            "trust": lambda ctx, limit: _text(ctx, limit, PICKER_ROWS["trust"]),
            "shapley": _text,
        }.get(page)
    if kind == "tabular" and page == "shapley":
        return _tabular
    return None


def _fingerprints(ctx: _Context, page: str) -> list[str]:
    """Fingerprints of every model whose predictions decide the list (loads them, training on first use)."""
    if page == "calibration":
        return [ctx.loaded(m).adapter.fingerprint for m in ctx.spec.model_names]
    fingerprints = [ctx.loaded().adapter.fingerprint]
    if ctx.spec.kind == "text" and page in ("text", "trust", "shapley"):
        other_model, other_variant = text_comparison(ctx.model, ctx.variant, ctx.spec)
        fingerprints.append(ctx.loaded(other_model, other_variant).adapter.fingerprint)
    if page == "uncertainty":
        from core.uncertainty.sources import load_source

        kind, n = default_uncertainty_source(ctx.spec.name, ctx.model)
        fingerprints.append(load_source(ctx.spec.name, ctx.model, ctx.variant, kind, n, progress=ctx.progress,
                                        store=ctx.store).fingerprint)
    return fingerprints


def examples(
    scenario: str,
    page: str,
    variant: str | None = None,
    model: str | None = None,
    limit: int = 8,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> list[Example]:
    """Curated examples of ``page`` for a built-in scenario, best first (at most ``limit``).

    Parameters
    ----------
    scenario : str
        A built-in scenario (see ``core.scenarios.SCENARIOS``).
    page : str
        One of :data:`PAGES`.
    variant, model : str, optional
        The dataset variant and the model (default: the scenario's defaults).
    limit : int
        At most this many examples.

    Returns
    -------
    list of Example
        Empty when the page has nothing to curate for this scenario (e.g. ``images`` on a table).
        The first call trains what it needs (models, the uncertainty page's ensemble) and computes
        predictions; the list is then read from the disk cache.
    """
    if page not in PAGES:
        raise unknown_name("page", str(page), PAGES)
    spec = scenarios.get_spec(scenario)
    limit = check_int("limit", limit, "curated.examples")
    variant = spec.variant(variant)
    model = spec.model(model or spec.default_model).name
    builder = _builder(spec.kind, page)
    if builder is None:
        return []
    store = store or default_store()
    report(progress, 0.0, f"curating {page} examples of {scenario}/{model}")
    ctx = _Context(spec, variant, model, store, subrange(progress, 0.0, 0.5))
    fingerprints = _fingerprints(ctx, page)
    ctx.progress = subrange(progress, 0.5, 1.0)
    rows = store.cached(lambda: builder(ctx, limit), op="curated_examples", model_fingerprint=hash_json(fingerprints),
                        data_fingerprint=ctx.test.fingerprint,
                        params={"scenario": scenario, "page": page, "variant": variant, "model": model, "limit": limit,
                                "version": CURATED_VERSION},
                        libraries=("numpy", "scikit-learn", "torch"))
    report(progress, 1.0, f"{len(rows)} {page} examples of {scenario}/{model}")
    return [Example(**row) for row in rows]
