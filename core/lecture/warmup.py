"""``python -m core warm --all``: precompute what the default views need, so a lecture runs offline.

For every built-in scenario whose data is available, :func:`warm_all` trains or loads the models,
computes their predictions on every split, the calibration lists, the curated examples of every
page (:mod:`core.lecture.curated`) and the heavy parts of each page's default view and of each curated
example: image attributions with the images page's default methods, LIME with the text page's
defaults, SHAP values with the Shapley page's defaults, the embeddings page's activations and PCA
map, the uncertainty page's default source (MC dropout) and stress-set report, and the deep ensemble
its button trains. Everything goes through the same
core functions and the same ArtifactStore keys the pages use, so a fresh server reads it from disk.

Each step reports how long it took and whether it computed anything (store misses) or found
everything cached. The page defaults come from :mod:`core.lecture.defaults` and the methods'
params dataclasses, which the pages read too; ``tests/pages/test_open_from_cache.py`` opens the pages after a warm-up
with computation disabled, which fails if the two drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from core import datasets, scenarios

from core.lecture import curated
from core.errors import TrustLensError
from core.progress import ProgressCallback, report, subrange
from core.store import ArtifactStore, default_store

from core.lecture.defaults import (
    CALIBRATION_BINS,
    EMBEDDING_SPLITS,
    IMAGE_BATCH,
    IMAGE_METHODS,
    IMAGE_PICKS,
    SHAP_IMAGE_BACKGROUND,
    SHAP_IMAGE_PICKS,
    SHAP_IMAGE_SAMPLES,
    SHAP_ROWS,
    SHAP_TARGET,
    TEXT_DELETION_STEPS,
    TEXT_STABILITY_SEEDS,
    TRUST_METHODS,
    UNCERTAINTY_EPSILON,
)


@dataclass
class WarmItem:
    """One step of the warm-up: what, how long, and whether anything had to be computed."""

    scenario: str
    item: str
    seconds: float
    status: str  # "computed", "cached", "skipped" or "failed"
    misses: int = 0  # ArtifactStore misses during the step: results computed and written
    detail: str = ""


def available_scenarios() -> tuple[list[str], list[tuple[str, str]]]:
    """(built-in scenarios whose data is available offline, [(scenario, why not) for the others])."""
    ready, skipped = [], []
    for name, spec in scenarios.SCENARIOS.items():
        avail = datasets.availability(spec.dataset)
        if avail.available:
            ready.append(name)
        else:
            skipped.append((name, f"data not available: {avail.source}"))
    return ready, skipped


# -- steps: each takes (spec, store, progress) and returns a short detail line ---------------------
def _models(spec: scenarios.ScenarioSpec, store: ArtifactStore, progress: ProgressCallback | None) -> str:
    variants = list(spec.variants) or [None]
    reports = []
    for i, variant in enumerate(variants):
        reports += scenarios.warm(spec.name, variant, progress=subrange(progress, i / len(variants),
                                                                       (i + 1) / len(variants)), store=store)
    return ", ".join(f"{r['model']}{'[' + r['variant'] + ']' if r['variant'] else ''} {r['test_accuracy']:.3f}"
                     for r in reports)


def _predictions(spec: scenarios.ScenarioSpec, store: ArtifactStore, progress: ProgressCallback | None) -> str:
    from core.inference import predict_proba_cached

    jobs = [(v, m, s) for v in (list(spec.variants) or [None]) for m in spec.model_names
            for s in ("train", "val", "test")]
    for i, (variant, model, split) in enumerate(jobs):
        report(progress, i / len(jobs), f"predicting {spec.name}/{model} {split}")
        adapter = scenarios.load_model(spec.name, model, variant, store=store).adapter
        predict_proba_cached(adapter, scenarios.load_data(spec.name, variant)[split], store=store)
    return f"{len(jobs)} model x split predictions"


def _calibration(spec: scenarios.ScenarioSpec, store: ArtifactStore, progress: ProgressCallback | None) -> str:
    """The calibration page's report of every model (15 bins), stored on disk (core/report_cache.py)."""
    from core.inference import predict_proba_cached
    from core.report_cache import calibration_report_cached

    variant = spec.variants[0] if spec.variants else None
    splits = scenarios.load_data(spec.name, variant)
    eces = []
    for j, model in enumerate(spec.model_names):
        report(progress, j / len(spec.model_names), f"calibration of {spec.name}/{model}")
        adapter = scenarios.load_model(spec.name, model, variant, store=store).adapter
        val, test = (predict_proba_cached(adapter, splits[s], store=store) for s in ("val", "test"))
        result = calibration_report_cached(model, val, splits["val"].y, test, splits["test"].y, CALIBRATION_BINS,
                                           store=store)
        eces.append(f"{model} ECE {result.metrics.ece:.3f}")
    return ", ".join(eces)


def _curated(spec: scenarios.ScenarioSpec, store: ArtifactStore, progress: ProgressCallback | None) -> str:
    counts = []
    for i, page in enumerate(curated.PAGES):
        found = curated.examples(spec.name, page, progress=subrange(progress, i / len(curated.PAGES),
                                                                    (i + 1) / len(curated.PAGES)), store=store)
        counts.append(f"{page} {len(found)}")
    return ", ".join(counts)


def _indices(spec: scenarios.ScenarioSpec, page: str, store: ArtifactStore) -> list[int]:
    return [e.index for e in curated.examples(spec.name, page, store=store) if e.index is not None]


def _default_model(spec: scenarios.ScenarioSpec, store: ArtifactStore):
    return scenarios.load_model(spec.name, spec.default_model, None if not spec.variants else spec.variants[0],
                                store=store)


def _images(spec: scenarios.ScenarioSpec, store: ArtifactStore, progress: ProgressCallback | None) -> str:
    """The images page: its default grid (first test images) and each curated example on its own."""
    from core.attribution import explain_grid, get_method, image_context, supported_methods

    loaded = _default_model(spec, store)
    adapter = loaded.adapter
    splits = scenarios.load_data(spec.name)
    test = splits["test"]
    support = supported_methods(adapter)
    available = [m for m in support if support[m] is None]
    methods = [m for m in IMAGE_METHODS if m in available] or available[:1]
    chosen = {m: get_method(m).params_type() for m in methods}
    context = image_context(splits["train"])
    groups = [list(range(min(IMAGE_PICKS, len(test))))] + [[i] for i in _indices(spec, "images", store)]
    for j, rows in enumerate(groups):
        images = np.asarray(test.x[np.asarray(rows, dtype=int)], dtype=np.float32)
        targets = adapter.predict(images, batch_size=IMAGE_BATCH).astype(np.int64)
        explain_grid(adapter, images, targets, chosen, batch_size=IMAGE_BATCH, context=context, store=store,
                     progress=subrange(progress, j / len(groups), (j + 1) / len(groups)))
    return f"{', '.join(methods)} on the default grid and {len(groups) - 1} curated images"


def _trust(spec: scenarios.ScenarioSpec, store: ArtifactStore, progress: ProgressCallback | None) -> str:
    """The trust page (images): its methods' maps and the cascading randomisation test, default and curated picks."""
    from core.attribution import explain_images, image_context, supported_methods
    from core.trust.sanity import randomization_test

    adapter = _default_model(spec, store).adapter
    splits = scenarios.load_data(spec.name)
    test = splits["test"]
    context = image_context(splits["train"])
    support = supported_methods(adapter)
    available = [m for m in support if support[m] is None]
    methods = [m for m in TRUST_METHODS if m in available] or available[:2]
    proba = _test_proba(adapter, test, store)
    groups = [list(range(min(IMAGE_PICKS, len(test))))] + [[i] for i in _indices(spec, "trust", store)]
    for j, rows in enumerate(groups):
        part = subrange(progress, j / len(groups), (j + 1) / len(groups))
        x = np.asarray(test.x[np.asarray(rows, dtype=int)], dtype=np.float32)
        target = proba[rows].argmax(axis=1)
        for m in methods:
            explain_images(adapter, x, target, m, context=context, store=store)
        if adapter.torch_module() is not None:
            randomization_test(adapter, x, target, {m: None for m in methods}, mode="cascading", context=context,
                               progress=part, store=store)
    return f"{', '.join(methods)} and the cascading randomisation test on the default picks and {len(groups) - 1} curated"


def _text_view(adapter: Any, other: Any, text: str, store: ArtifactStore, progress: ProgressCallback | None) -> None:
    """What pages/text.py computes for one document with its default settings."""
    from core.text.lime_text import LimeParams
    from core.text.text_methods import deletion_curves, explain_text, lime_stability, supported_methods

    params = LimeParams()
    main = explain_text(adapter, text, "lime", params, "predicted", subrange(progress, 0.0, 0.2), store=store)
    explain_text(other, text, "lime", params, "predicted", subrange(progress, 0.2, 0.3), store=store)
    methods = [m for m, why in supported_methods(adapter).items() if not why and m not in ("lime", "shap_partition")]
    for m in methods:
        explain_text(adapter, text, m, params, main.target, store=store)
    lime_stability(adapter, text, params, main.target, n_seeds=TEXT_STABILITY_SEEDS,
                   progress=subrange(progress, 0.3, 0.8), store=store)
    full = explain_text(adapter, text, "lime", replace(params, feature_selection="none"), main.target,
                        subrange(progress, 0.8, 0.95), store=store)
    orders = {"lime": full.ranking()}
    for m in methods:
        orders[m] = explain_text(adapter, text, m, params, main.target, store=store).ranking()
    deletion_curves(adapter, text, main.target, orders, steps=TEXT_DELETION_STEPS, store=store)


def _text(spec: scenarios.ScenarioSpec, store: ArtifactStore, progress: ProgressCallback | None) -> str:
    """The text page for its default document (the first test post) and each curated document."""
    variant = spec.variants[0] if spec.variants else None
    loaded = scenarios.load_model(spec.name, spec.default_model, variant, store=store)
    other_model, other_variant = curated.text_comparison(spec.default_model, variant, spec)
    other = scenarios.load_model(spec.name, other_model, other_variant, store=store)
    test = scenarios.load_data(spec.name, variant)["test"]
    docs = list(dict.fromkeys([0, *_indices(spec, "text", store)]))
    for j, i in enumerate(docs):
        report(progress, j / len(docs), f"text page: document #{i}")
        _text_view(loaded.adapter, other.adapter, str(test.x[i]), store,
                   subrange(progress, j / len(docs), (j + 1) / len(docs)))
    return f"LIME (5 seeds, deletion curves, {other_model} for comparison) on {len(docs)} documents"


def _shapley(spec: scenarios.ScenarioSpec, store: ArtifactStore, progress: ProgressCallback | None) -> str:
    """The Shapley page's default: SHAP of the first test rows (tabular) or expected gradients (images)."""
    loaded = _default_model(spec, store)
    splits = scenarios.load_data(spec.name)
    test = splits["test"]
    if spec.kind == "tabular":
        from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular

        params = ShapParams()
        rows = np.arange(min(SHAP_ROWS, len(test)))
        explain_tabular(loaded.adapter, test, rows, background_data(splits["train"], params), params,
                        SHAP_TARGET, progress, store=store)
        return f"SHAP ({params.algorithm}) of the first {len(rows)} test rows (every curated row among them)"
    if spec.kind == "image":
        from core.attribution import explain_grid, get_method, image_context
        from core.attribution.expected_gradients import ExpectedGradientsParams
        from core.attribution.gradients import IntegratedGradientsParams

        adapter = loaded.adapter
        if get_method("expected_gradients").unsupported(adapter):
            return "expected gradients do not apply to this model"
        chosen = {"expected_gradients": ExpectedGradientsParams(samples=SHAP_IMAGE_SAMPLES,
                                                                background_size=SHAP_IMAGE_BACKGROUND),
                  "integrated_gradients": IntegratedGradientsParams()}
        rows = np.asarray([i for i in SHAP_IMAGE_PICKS if i < len(test)], dtype=int)
        images = np.asarray(test.x[rows], dtype=np.float32)
        targets = np.asarray(_test_proba(adapter, test, store)[rows].argmax(axis=1), dtype=np.int64)
        explain_grid(adapter, images, targets, chosen, batch_size=IMAGE_BATCH, context=image_context(splits["train"]),
                     progress=progress, store=store)
        return f"expected gradients of test images {rows.tolist()}"
    return "the text section explains on request"


def _test_proba(adapter: Any, bundle: Any, store: ArtifactStore) -> np.ndarray:
    from core.inference import predict_proba_cached

    return predict_proba_cached(adapter, bundle, store=store)


def _embeddings(spec: scenarios.ScenarioSpec, store: ArtifactStore, progress: ProgressCallback | None) -> str:
    """The embeddings page's default: activations of the default layer and their PCA map (all points, test split)."""
    from core.embeddings import EmbeddingParams, collect_activations, combine_splits, default_layer, embed_activations

    loaded = _default_model(spec, store)
    adapter = loaded.adapter
    if not adapter.layer_names():
        return f"{spec.default_model} exposes no layers"
    layer = default_layer(adapter)
    splits = scenarios.load_data(spec.name, spec.variants[0] if spec.variants else None)
    params = EmbeddingParams(method="pca", standardize=False, pca_dims=50, perplexity=30.0, exaggeration=1.0,
                             n_iter=250, n_neighbors=15, min_dist=0.1, metric="euclidean", seed=0)
    sizes = []
    for j, split in enumerate(EMBEDDING_SPLITS):
        bundle, _, _ = combine_splits(splits, split)
        acts = collect_activations(adapter, bundle, layer, store=store,
                                   progress=subrange(progress, j / len(EMBEDDING_SPLITS), (j + 0.9) / len(EMBEDDING_SPLITS)))
        embed_activations(acts, np.asarray(bundle.y), params, layer=layer, model_fingerprint=adapter.fingerprint,
                          data_fingerprint=bundle.fingerprint)
        sizes.append(f"{split} {len(bundle):,}")
    return f"PCA of {layer} ({', '.join(sizes)} points)"


def _uncertainty(spec: scenarios.ScenarioSpec, store: ArtifactStore, progress: ProgressCallback | None) -> str:
    """The uncertainty page's default view (MC dropout: nothing to train), then what its one-click button trains
    (the deep ensemble, its report and member saliency of the default and curated picks) and the autoencoder, so a
    lecture never waits for a training."""
    from core.uncertainty.members import ENSEMBLE_KINDS, supported_sources
    from core.uncertainty.metrics import uncertainty_scores
    from core.uncertainty.report import uncertainty_report
    from core.uncertainty.saliency import member_saliency
    from core.uncertainty.sources import load_source

    default = curated.default_uncertainty_source(spec.name, spec.default_model)
    support = supported_sources(spec.name, spec.default_model)
    ensemble = next((k for k in ENSEMBLE_KINDS if support.get(k) is None), None)
    kinds = list(dict.fromkeys([default] + ([(ensemble, 5)] if ensemble else [])))
    done, picks = [], 0
    for j, (kind, n) in enumerate(kinds):
        part = subrange(progress, j / len(kinds), (j + 1) / len(kinds))
        source = load_source(spec.name, spec.default_model, None, kind, n, progress=subrange(part, 0.0, 0.6),
                             store=store)
        # the autoencoder's scores too: its parts are cached separately, so the view without them is warm as well
        result = uncertainty_report(source, epsilon=UNCERTAINTY_EPSILON, autoencoder=True,
                                    progress=subrange(part, 0.6, 0.9), store=store)
        done.append(source.title)
        if kind in ENSEMBLE_KINDS and source.adapters[0].torch_module() is not None:
            clean = result.get("clean")
            first = int(curated.most_disputed(uncertainty_scores(clean.proba)["mutual_information"], 1)[0])
            for i in dict.fromkeys([first, *_indices(spec, "uncertainty", store)]):
                member_saliency(source.adapters, np.asarray(clean.set.bundle.x[i], dtype=np.float32),
                                int(clean.mean[i].argmax()), store=store)
                picks += 1
    return (f"{' and '.join(done)}, FGSM eps {UNCERTAINTY_EPSILON:g}, autoencoder; member saliency of {picks} "
            "inputs")


STEPS: dict[str, tuple[Callable[..., str], tuple[str, ...]]] = {
    # step -> (function, scenario kinds it applies to)
    "models": (_models, ("image", "text", "tabular")),
    "predictions": (_predictions, ("image", "text", "tabular")),
    "calibration page": (_calibration, ("image", "text", "tabular")),
    "curated examples": (_curated, ("image", "text", "tabular")),
    "images page": (_images, ("image",)),
    "trust page": (_trust, ("image",)),
    "text page": (_text, ("text",)),
    "shapley page": (_shapley, ("image", "tabular")),
    "embeddings page": (_embeddings, ("image", "text", "tabular")),
    "uncertainty page": (_uncertainty, ("image",)),
}


def warm_scenario(name: str, progress: ProgressCallback | None = None, store: ArtifactStore | None = None,
                  on_item: Callable[[WarmItem], None] | None = None) -> list[WarmItem]:
    """Run every step that applies to scenario ``name``; one :class:`WarmItem` per step.

    A step that fails with a TrustLensError is reported as "failed" with its message and the
    others still run (one missing optional piece must not cost the rest of a lecture's cache).
    """
    spec = scenarios.get_spec(name)
    store = store or default_store()
    steps = [(item, fn) for item, (fn, kinds) in STEPS.items() if spec.kind in kinds]
    items = []
    for j, (item, fn) in enumerate(steps):
        part = subrange(progress, j / len(steps), (j + 1) / len(steps))
        report(part, 0.0, f"{name}: {item}")
        misses, started = store.misses, time.perf_counter()
        try:
            detail, status = fn(spec, store, part), None
        except TrustLensError as exc:
            detail, status = exc.message, "failed"
        done = WarmItem(name, item, round(time.perf_counter() - started, 2),
                        status or ("computed" if store.misses > misses else "cached"), store.misses - misses, detail)
        items.append(done)
        if on_item is not None:
            on_item(done)
    return items


def warm_all(names: list[str] | None = None, progress: ProgressCallback | None = None,
             store: ArtifactStore | None = None, umap: bool = True,
             on_item: Callable[[WarmItem], None] | None = None) -> dict[str, Any]:
    """Warm every built-in scenario with data available (or ``names``), then UMAP's compiled code.

    Returns
    -------
    dict
        ``{"items": [WarmItem as dict], "skipped": [{"scenario", "reason"}], "seconds": total}``.
    """
    store = store or default_store()
    started = time.perf_counter()
    ready, skipped = available_scenarios()
    if names is not None:
        for name in names:
            scenarios.get_spec(name)  # an unknown name is an error, not a silent skip
        skipped = [(n, why) for n, why in skipped if n in names]
        ready = [n for n in ready if n in names]
    items: list[WarmItem] = []
    for j, name in enumerate(ready):
        items += warm_scenario(name, subrange(progress, j / max(len(ready), 1), (j + 1) / max(len(ready), 1)),
                               store, on_item)
    if umap:
        from core.embeddings.warm import warm_status, warm_umap

        report(progress, 1.0, "compiling UMAP (numba)")
        seconds = warm_umap()
        state = warm_status()
        done = WarmItem("*", "umap compilation", round(seconds, 2),
                        "failed" if state["status"] == "failed" else "computed",
                        detail=str(state["error"] or "numba's compiled functions written to its disk cache"))
        items.append(done)
        if on_item is not None:
            on_item(done)
    return {"items": [asdict(i) for i in items],
            "skipped": [{"scenario": n, "reason": why} for n, why in skipped],
            "seconds": round(time.perf_counter() - started, 2)}
