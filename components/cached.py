"""The one home of Streamlit cache wrappers around core calls.

- Models and datasets: ``st.cache_resource`` (one copy shared by all sessions; adapters hold no
  per-user state and are thread-safe). Training on first use runs as a background job whose progress
  the page shows.
- Results (predictions): ``st.cache_data`` keyed by names, backed by core's on-disk ArtifactStore.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from components.feedback import progress_status
from core import scenarios
from core.bundle import DataBundle
from core.scenarios import TrainedModel


@st.cache_resource(show_spinner="Loading data…", max_entries=8)
def scenario_data(scenario: str, variant: str | None) -> dict[str, DataBundle]:
    """The scenario's splits (shared, read-only); an uploaded scenario's come from its registry entry."""
    from core.upload import byom

    if byom.is_upload(scenario):
        return byom.get(scenario).splits
    return scenarios.load_data(scenario, variant)


@st.cache_resource(show_spinner=False, max_entries=16)
def _load_model(scenario: str, model: str, variant: str | None) -> TrainedModel:
    return scenarios.load_model(scenario, model, variant)


# A first-use training that ends within this many seconds is simply waited for (the small scenarios' models);
# a longer one (MNIST's CNN: about a minute) leaves the page showing the job's progress instead of blocking it.
FIRST_USE_WAIT_S = 1.5


def trained_model(scenario: str, model: str, variant: str | None) -> TrainedModel:
    """Load a built-in model. Not trained yet: its training runs as a background job (core.jobs, one per model
    for every session asking); the page waits for it up to ``FIRST_USE_WAIT_S`` seconds, then shows the job's
    progress and stops, and runs again by itself when the model is in the store."""
    from components import jobs_view
    from core import jobs
    from core.upload import byom

    if byom.is_upload(scenario):  # uploads are loaded (and validated) on the upload page, never trained
        return byom.get(scenario).trained
    scenario_data(scenario, variant)
    if not scenarios.is_trained(scenario, model, variant):
        params = {"scenario": scenario, "model": model, "variant": variant}
        status = jobs_view.find("train_model", params)
        if status is None or not status.active:
            # No up-front estimate: timing a few steps took 18 s of MNIST's first answer under load; the job's
            # progress gives the time left once its first epoch reports.
            status = jobs_view.start("train_model", params, f"Training {scenario}/{model} (first use, cached afterwards)")
        status = jobs.runner().wait(status.id, FIRST_USE_WAIT_S)
        if status.status != "done":
            jobs_view.follow(status, restart=jobs_view.start, restart_args=("train_model", params, status.title))
    return _load_model(scenario, model, variant)


@st.cache_data(show_spinner="Predicting…", max_entries=64)
def predictions(scenario: str, model: str, variant: str | None, split: str) -> np.ndarray:
    """Class probabilities of shape (n_samples, n_classes) for one split."""
    from core.inference import predict_proba_cached

    loaded = trained_model(scenario, model, variant)
    return predict_proba_cached(loaded.adapter, scenario_data(scenario, variant)[split])


@st.cache_resource(show_spinner=False)
def device_label() -> str:
    from core.device import describe_device, resolve_device

    return describe_device(resolve_device())


@st.cache_data(show_spinner="Computing calibration…", max_entries=64)
def calibration_report(scenario: str, model: str, variant: str | None, n_bins: int,
                       rows: tuple[int, ...] | None = None):
    """Test-split calibration of one model, with recalibrators fitted on the validation split.

    ``rows``: evaluate on these test samples only (the active slice's); the recalibrators are still
    fitted on the whole validation split.
    """
    from core.report_cache import calibration_report_cached as compute  # on disk: warm --all fills it

    splits = scenario_data(scenario, variant)
    test_proba, test_y = predictions(scenario, model, variant, "test"), np.asarray(splits["test"].y)
    if rows is not None:
        index = np.asarray(rows, dtype=np.int64)
        test_proba, test_y = test_proba[index], test_y[index]
    return compute(model, predictions(scenario, model, variant, "val"), splits["val"].y, test_proba, test_y,
                   n_bins=n_bins)


@st.cache_data(show_spinner="Computing SHAP values…", max_entries=32)
def shap_explanation(scenario: str, model: str, variant: str | None, n_rows: int, algorithm: str, background: str,
                     background_size: int, target: str | int, rows: tuple[int, ...] | None = None):
    """SHAP values of the first ``n_rows`` test rows (of ``rows``, the active slice's, when given), background from
    the train split, disk-cached by core."""
    from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular

    splits = scenario_data(scenario, variant)
    params = ShapParams(algorithm=algorithm, background=background, background_size=background_size)
    test = splits["test"]
    rows = np.arange(min(n_rows, len(test))) if rows is None else np.asarray(rows, dtype=np.int64)[:n_rows]
    return explain_tabular(trained_model(scenario, model, variant).adapter, test, rows,
                           background_data(splits["train"], params), params, target)


@st.cache_data(show_spinner=False, max_entries=16)
def shallow_tree(scenario: str, variant: str | None, max_depth: int):
    from core.tabular.glassbox import shallow_tree as fit

    splits = scenario_data(scenario, variant)
    return fit(splits["train"], splits["test"], max_depth)


@st.cache_resource(show_spinner=False, max_entries=8)
def image_context(scenario: str, variant: str | None):
    """Channel means and pixel range of the training images (occlusion's mean fill, SmoothGrad's noise scale)."""
    from core.attribution import image_context as compute

    return compute(scenario_data(scenario, variant)["train"])


def image_attributions(scenario: str, model: str, variant: str | None, images: np.ndarray, targets: tuple[int, ...],
                       methods: tuple[tuple[str, str], ...], batch_size: int, _progress=None):
    """``{method: ImageAttribution}`` for the images; ``methods`` pairs a name with its params as JSON.

    Cached by core's disk store only (a hit costs a few ms), not by ``st.cache_data``: the progress
    callback draws into the page, and st.cache_data would try to replay those elements on a hit
    outside the block they belong to (CacheReplayClosureError).
    """
    import json

    from core.attribution import explain_grid, get_method

    adapter = trained_model(scenario, model, variant).adapter
    chosen = {name: get_method(name).params_type(**json.loads(params)) for name, params in methods}
    return explain_grid(adapter, images, np.asarray(targets, dtype=np.int64), chosen, batch_size=batch_size,
                        context=image_context(scenario, variant), progress=_progress)


@st.cache_data(show_spinner=False, max_entries=16)
def spatial_layers(scenario: str, model: str, variant: str | None, image_shape: tuple[int, ...]):
    """(layers with a spatial output, the default Grad-CAM layer, the pre-activation layers, the token layers with
    what each is) of a torch image model (token layers: a Vision Transformer's, else empty)."""
    from core.attribution.gradcam import default_layer, pre_activation_layers, token_layers
    from core.attribution.gradcam import spatial_layers as compute

    adapter = trained_model(scenario, model, variant).adapter
    return (compute(adapter, image_shape), default_layer(adapter, image_shape), pre_activation_layers(adapter, image_shape),
            token_layers(adapter, image_shape))


@st.cache_resource(show_spinner="Training the same model on shuffled labels (first use only, then cached)…",
                   max_entries=8)
def random_label_model(scenario: str, model: str, variant: str | None) -> TrainedModel:
    """The data randomisation test's model: the recipe trained on permuted train labels."""
    from core.upload import byom

    if byom.is_upload(scenario):
        from core.errors import TrustLensError

        raise TrustLensError("The data randomisation test retrains the model on shuffled labels; TrustLens has no "
                             "training recipe for an uploaded model.",
                             hint="train your model on shuffled labels yourself and upload it as a second scenario.")
    return scenarios.load_random_label_model(scenario, model, variant)


@st.cache_resource(show_spinner="Opening the model given to `python -m core serve`…")
def preloaded_scenario() -> str:
    """Name of the scenario ``serve`` / ``core.upload.byom.launch`` preloaded (opened once per process)."""
    from core.upload import byom

    return byom.preloaded_from_environment().name


@st.cache_data(show_spinner="Inspecting the model file…", max_entries=16)
def model_inspection(data: bytes, filename: str, allow_pickle: bool, trusted_types: tuple[str, ...] = ()):
    """Format, inferred spec and refusal reason of an uploaded model file (nothing in it is run;
    a skops file is opened once the user accepted its untrusted ``trusted_types``)."""
    from core.upload.model_upload import inspect_model

    return inspect_model(data, filename, allow_pickle=allow_pickle, trusted_types=trusted_types)


# -- embeddings page ---------------------------------------------------------------------------
@st.cache_resource(show_spinner="Gathering the points to map…", max_entries=8)
def embedding_points(scenario: str, variant: str | None, split: str):
    """(bundle, split name per row, position in its split) of the split(s) to map ("all": every point).

    A resource, not data: concatenating MNIST's 70,000 images (220 MB) and fingerprinting them
    once per process instead of on every rerun.
    """
    from core.embeddings import combine_splits

    bundle, split_of, position = combine_splits(scenario_data(scenario, variant), split)
    _ = bundle.fingerprint  # computed once here, reused by every cache key
    return bundle, split_of, position


def embedding_predictions(scenario: str, model: str, variant: str | None, split: str) -> np.ndarray:
    """Class probabilities of the mapped points (the cached per-split predictions, concatenated)."""
    from core.embeddings import SPLITS

    names = [s for s in SPLITS if s in scenario_data(scenario, variant)] if split == "all" else [split]
    return np.concatenate([predictions(scenario, model, variant, s) for s in names])


@st.cache_resource(show_spinner=False)
def umap_warmup():
    """Compile UMAP's numba code in a background thread, once per server process."""
    from core.embeddings.warm import warm_in_background

    return warm_in_background()


def uncertainty_source(scenario: str, model: str, variant: str | None, kind: str, n: int):
    """An uncertainty source (ensemble members, MC dropout, Bayes by backprop), trained first with a progress bar
    whose label says how long the training will take (the page asks before it gets here)."""
    from core.uncertainty.sources import SOURCES, is_ready, load_source

    if not is_ready(scenario, model, variant, kind, n):
        estimate = uncertainty_estimate(scenario, model, variant, kind, n)
        about = f": {estimate.about} on this machine" if estimate is not None else ""
        with progress_status(f"Training the {SOURCES[kind]} of {scenario}/{model}{about} (first use, cached "
                             "afterwards)") as progress:
            if estimate is not None:
                progress(0.0, f"{estimate.about}: {estimate.basis}")
            load_source(scenario, model, variant, kind, n, progress=progress)
    return _uncertainty_source(scenario, model, variant, kind, n)


@st.cache_data(show_spinner="Timing a few training steps to say how long it will take…", max_entries=32)
def uncertainty_estimate(scenario: str, model: str, variant: str | None, kind: str, n: int):
    """How long an uncertainty source still has to train here (None: ready); measured once per process."""
    from core.uncertainty.sources import estimate_source

    return estimate_source(scenario, model, variant, kind, n)


@st.cache_data(show_spinner=False, max_entries=8)
def autoencoder_estimate(scenario: str, variant: str | None):
    """How long the uncertainty page's autoencoder trains here (None: on disk); measured once per process."""
    from core.uncertainty.sources import autoencoder_estimate as compute

    return compute(scenario, variant)


@st.cache_resource(show_spinner=False, max_entries=16)
def _uncertainty_source(scenario: str, model: str, variant: str | None, kind: str, n: int):
    from core.uncertainty.sources import load_source

    return load_source(scenario, model, variant, kind, n)


@st.cache_resource(show_spinner=False, max_entries=16)
def _uncertainty_report_memo(scenario: str, model: str, variant: str | None, kind: str, n: int, epsilon: float,
                             autoencoder: bool) -> dict:
    return {}  # filled by uncertainty_report: the computation draws progress, so it cannot run in here


def uncertainty_report(scenario: str, model: str, variant: str | None, kind: str, n: int, epsilon: float,
                       autoencoder: bool):
    """The stress-set report of one source, computed by a job (kind ``uncertainty_report``); parts cached on disk
    by core, the whole report in memory (shared, read-only) so that a click on the page does not rebuild it."""

    from components import jobs_view
    from core import jobs

    memo = _uncertainty_report_memo(scenario, model, variant, kind, n, float(epsilon), bool(autoencoder))
    if "report" not in memo:
        uncertainty_source(scenario, model, variant, kind, n)  # trained (the page asked for it before)
        # Scoring every stress set (MNIST's MC dropout: 30 passes over 14,000 images, about 30 s here) is a job, as
        # a first-use training is: waited for briefly, else the page shows its progress and draws itself when done.
        params = {"scenario": scenario, "model": model, "variant": variant, "kind": kind, "n": int(n),
                  "epsilon": float(epsilon), "autoencoder": bool(autoencoder)}
        status = jobs_view.find("uncertainty_report", params)
        if status is None or status.status != "done":
            if status is None or not status.active:
                status = jobs_view.start("uncertainty_report", params,
                                         f"Scoring the stress sets of {scenario}/{model}")
            status = jobs.runner().wait(status.id, FIRST_USE_WAIT_S)
            if status.status != "done":
                jobs_view.follow(status, restart=jobs_view.start,
                                 restart_args=("uncertainty_report", params, status.title))
        memo["report"] = jobs.runner().result(status.id)
    return memo["report"]


@st.cache_data(show_spinner="Explaining with every member…", max_entries=64)
def member_saliency(scenario: str, model: str, variant: str | None, kind: str, n: int, image: np.ndarray, target: int):
    """Every ensemble member's gradient map of one image and their pixel-wise variance (maps disk-cached by core)."""
    from core.uncertainty.saliency import member_saliency as compute

    return compute(_uncertainty_source(scenario, model, variant, kind, n).adapters, image, target)


@st.cache_resource(show_spinner=False, max_entries=64)
def _curated_memo(scenario: str, page: str, variant: str | None, model: str | None) -> dict:
    return {}  # filled by curated_examples: a cold list may train models, with progress drawn in the page


def curated_examples(scenario: str, page: str, variant: str | None, model: str | None, _progress=None) -> list:
    """The curated examples presentation mode steps through (disk-cached by core; the list, read-only, in
    memory for every session). The first call on a cold cache may train what the list needs (the
    uncertainty page's ensemble): ``_progress`` shows it."""
    from core.lecture.curated import examples

    memo = _curated_memo(scenario, page, variant, model)
    if "examples" not in memo:
        memo["examples"] = tuple(examples(scenario, page, variant=variant, model=model, progress=_progress))
    return list(memo["examples"])


# -- uncertainty page: uploaded models ------------------------------------------------------------
@st.cache_data(show_spinner="Checking which uncertainty sources your model supports…", max_entries=16)
def upload_uncertainty_support(scenario: str) -> dict:
    """Upload source -> None or the reason it is not offered (MC dropout is measured with two passes)."""
    from core.upload import byom
    from core.uncertainty.upload import upload_support

    return upload_support(byom.get(scenario))


@st.cache_resource(show_spinner=False, max_entries=16)
def _upload_uncertainty_memo(scenario: str, kind: str, n: int, epsilon: float) -> dict:
    return {}  # filled by upload_uncertainty_report: the computation draws progress, so it cannot run in here


def upload_uncertainty_report(scenario: str, kind: str, n: int, epsilon: float, _progress=None):
    """An uploaded model's stress-set report; parts cached on disk by core (content hashes), the whole
    report in memory per (upload, source, T, epsilon), so a click on the page does not rebuild it."""
    from core.upload import byom
    from core.uncertainty.upload import upload_report

    memo = _upload_uncertainty_memo(scenario, kind, int(n), float(epsilon))
    if "report" not in memo:
        memo["report"] = upload_report(byom.get(scenario), kind, int(n), epsilon=float(epsilon), progress=_progress)
    return memo["report"]


@st.cache_data(show_spinner="Scoring the slice, the groups and searching for weak slices…", max_entries=32)
def slices_report(scenario: str, model: str, variant: str | None, split: str, sensitive: tuple[str, ...],
                  slice_text: str, positive: int | None, max_conditions: int, selected: tuple[int, ...] | None = None):
    """The slices report of one model on one split (core.slices.report), disk-cached by core; ``selected``: the
    split's rows of a selection saved from the Embeddings map."""
    from core.slices.report import SliceParams, slices_report as compute

    bundle = scenario_data(scenario, variant)[split]
    params = SliceParams(sensitive=sensitive, slice=slice_text, positive=positive, max_conditions=max_conditions)
    return compute(trained_model(scenario, model, variant).adapter, bundle, params,
                   proba=predictions(scenario, model, variant, split),
                   selected=None if selected is None else np.asarray(selected, dtype=np.int64))


@st.cache_data(show_spinner="Checking the data: duplicates, drift, label errors…", max_entries=16)
def data_report(scenario: str, model: str, variant: str | None):
    """Missing values, balance, duplicates, drift and (with labels) suspected label errors, disk-cached by core."""
    from core.slices.data_checks import data_report_cached

    splits = scenario_data(scenario, variant)
    if splits["test"].y is None:
        return data_report_cached(splits)
    adapter = trained_model(scenario, model, variant).adapter
    return data_report_cached(splits, adapter.fingerprint, predictions(scenario, model, variant, "test"))


@st.cache_data(show_spinner="Comparing the two models on the slices…", max_entries=16)
def slices_comparison(scenario: str, model: str, other: str, variant: str | None, split: str,
                      sensitive: tuple[str, ...], slice_text: str, positive: int | None, max_conditions: int,
                      selected: tuple[int, ...] | None = None):
    """Both models' error rates on the report's slices, their disagreement and where it concentrates."""
    from core.slices.compare import compare_models, comparison_slices
    from core.slices.frame import slice_frame

    bundle = scenario_data(scenario, variant)[split]
    report = slices_report(scenario, model, variant, split, sensitive, slice_text, positive, max_conditions,
                           selected).as_dict()
    proba_a, proba_b = predictions(scenario, model, variant, split), predictions(scenario, other, variant, split)
    frame = slice_frame(bundle, proba_a, None if selected is None else np.asarray(selected, dtype=np.int64))
    return compare_models(frame, bundle.y, proba_a, proba_b, (model, other), comparison_slices(report, frame), positive)


# -- all precomputed points of a layer (core/precompute/maps.py) -------------------------------------
@st.cache_resource(show_spinner=False, ttl=60, max_entries=32)
def precomputed_activations(store_url: str, model_fingerprint: str, data_fingerprint: str, layer: str):
    """The published activations of these rows at ``layer`` in the store (sha256 of every shard checked), or
    None; looked up again after a minute, so a precompute that lands while the server runs is offered."""
    from core.precompute.maps import find_activations

    return find_activations(store_url, model_fingerprint, data_fingerprint, layer)


@st.cache_resource(show_spinner="Mapping every precomputed point (first time only, then cached)…", max_entries=4)
def precomputed_points(key: str, layer: str, _found, store_url: str, model_fingerprint: str, data_fingerprint: str):
    """(PCA map of every point, predicted class and confidence from the published predictions or None)."""
    from core.precompute.maps import find_predictions, pca_map, predictions_of

    points = pca_map(_found, layer)
    predictions = find_predictions(store_url, model_fingerprint, data_fingerprint)
    return points, (predictions_of(predictions) if predictions is not None and predictions.rows == _found.rows
                    else None)


@st.cache_resource(show_spinner=False, max_entries=8)
def precomputed_view(key: str, colour: str, n_classes: int, _coords, _labels):
    """(density raster, sampled overlay rows) of one map coloured by ``colour`` (labels, or None)."""
    from core.precompute.maps import density_raster, overlay_sample

    labels = None if _labels is None else np.asarray(_labels)
    raster = density_raster(_coords, labels, n_classes if labels is not None else 1)
    return raster, overlay_sample(labels, len(_coords))
