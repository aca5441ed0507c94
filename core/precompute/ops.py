"""The operations of dataset-scale precompute: one registered per-batch function each.

An operation (:class:`Op`) is ``run(adapter, rows, params) -> {column: ndarray}``: every array has one
row per input of the batch (``rows``, a :class:`Rows`). The engines (:mod:`core.precompute.engines`)
call exactly this function, in this process or in a Ray actor, so a value never depends on the engine.
Each op calls the engine functions the pages use:

- ``predictions``: the adapter's probabilities (``proba``, ``predicted``).
- ``activations``: a layer's activations through the adapters' hooks (``activations``; ``--layer``,
  default the last hidden layer, as the embeddings page).
- ``attributions``: any registered method of the data's modality (:mod:`core.explanation`): image maps
  through :func:`core.attribution.explain_images`, word weights through
  :func:`core.text.text_methods.explain_text`, tabular SHAP through :mod:`core.tabular.shap_tabular`.
- ``shap``: SHAP values of tables (and shap's partition explainer on text).
- ``lime``: LIME on text (:mod:`core.text.lime_text`) and on images (:mod:`core.attribution.lime_image`).
- ``uncertainty``: MC dropout with draws keyed by (seed, pass, sample) (:mod:`core.uncertainty.keyed`),
  scored by :func:`core.uncertainty.metrics.uncertainty_scores`.

Randomness never depends on the batch or the worker: MC dropout's masks are keyed by the sample's
position; a method whose draws depend on where an input sits in a call (SmoothGrad's noise, expected
gradients' baselines, Integrated Gradients' noise baseline, permutation / kernel SHAP) explains one
input per call, so sample i gets what explaining it alone with the given seed gives
(``python -m core explain --index i``); LIME on text explains one document per call anyway.

An op that cannot run on a model is refused before any work, with the reason (the methods' own
``unsupported()`` reasons where they exist). :func:`register_op` adds an op (tests register their own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.bundle import DataBundle
from core.errors import InputShapeError, ParameterError, check_int, unknown_name

OP_NAMES = ("predictions", "activations", "attributions", "uncertainty", "shap", "lime")
MODALITY = {"image": "image", "text": "text", "tabular": "table"}  # DataBundle kind -> registry modality
DEFAULT_METHOD = {"image": "integrated_gradients", "text": "occlusion", "table": "shap"}
TEXT_MAX_WORDS = 10_000  # text: every word's weight is stored, padded to the rows' longest document, up to this
TEXT_PATHS = ("", "sklearn-sparse", "strings", "gradient")  # text: how perturbations were predicted, stored as a code
FORWARD_BATCH = 256  # rows per forward pass inside an op (never part of a key)
EXTRA = "extra_"  # the column prefix of a method's extras (images' ``extra_completeness_gap``, LIME's ``extra_score``...)


@dataclass(frozen=True)
class Rows:
    """One batch of the rows being precomputed.

    Attributes
    ----------
    bundle : DataBundle
        The batch's samples (``x``, ``y``).
    start, stop : int
        The batch is rows ``start .. stop - 1`` of the precomputed rows (a sample's index is its position
        there: what keyed random draws use).
    state : object
        What the op's ``prepare`` returned, once per process (an image context, a SHAP background, a
        model copy with sampling dropout), or None.
    forward_batch_size : int
        Rows per forward pass of the model inside the op.
    """

    bundle: DataBundle
    start: int
    stop: int
    state: Any = None
    forward_batch_size: int = FORWARD_BATCH

    @property
    def x(self) -> Any:
        return self.bundle.x

    @property
    def index(self) -> np.ndarray:
        """Each row's sample index, ndarray of shape (n,), int64."""
        return np.arange(self.start, self.stop, dtype=np.int64)

    @property
    def kind(self) -> str:
        return self.bundle.kind

    def __len__(self) -> int:
        return self.stop - self.start


Run = Callable[[ModelAdapter, Rows, dict[str, Any]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Op:
    """A precompute operation.

    Attributes
    ----------
    name : str
        ``--ops`` name.
    run : callable
        ``run(adapter, rows, params) -> {column: ndarray of shape (len(rows), ...)}``: numeric, boolean or
        string arrays (shards are read without pickle).
    main : str
        The column whose sum and sum of absolute values the CLI reports (engines are compared by them).
    resolve : callable, optional
        ``resolve(adapter, bundle, params) -> params`` with defaults written in and values checked (raises
        a TrustLensError); the resolved params are the key's.
    unsupported : callable, optional
        ``unsupported(adapter, bundle, params) -> str | None``: why the op cannot run on this model.
    prepare : callable, optional
        ``prepare(adapter, splits, params) -> state``: work shared by every batch, done once per process.
    libraries : tuple of str
        Distributions whose versions enter the key.
    batch_rows : int
        Default rows per batch (one shard per batch; the batch size never changes a value).
    """

    name: str
    run: Run
    main: str
    resolve: Callable[[ModelAdapter, DataBundle, dict[str, Any]], dict[str, Any]] | None = None
    unsupported: Callable[[ModelAdapter, DataBundle, dict[str, Any]], str | None] | None = None
    prepare: Callable[[ModelAdapter, dict[str, DataBundle], dict[str, Any]], Any] | None = None
    libraries: tuple[str, ...] = ("numpy", "scikit-learn", "torch")
    batch_rows: int = 256
    description: str = ""


OPS: dict[str, Op] = {}


def register_op(op: Op) -> Op:
    """Add ``op`` to the registry (replacing one of the same name)."""
    OPS[op.name] = op
    return op


def get_op(name: str) -> Op:
    if name not in OPS:
        raise unknown_name("precompute operation", name, op_names())
    return OPS[name]


def op_names() -> list[str]:
    """The built-in operations in their usual order, then any registered since."""
    return [n for n in OP_NAMES if n in OPS] + sorted(n for n in OPS if n not in OP_NAMES)


def key_params(params: Any) -> Any:
    """``params`` without any ``batch_size`` entry, at any depth: what a key is built from (a batch size
    changes speed and memory, never a value)."""
    if isinstance(params, dict):
        return {k: key_params(v) for k, v in params.items() if k != "batch_size"}
    if isinstance(params, (list, tuple)):
        return [key_params(v) for v in params]
    return params


class Uncached:
    """Stands in for the ArtifactStore inside a batch: precompute publishes its own shards, so the engine
    functions' per-call cache entries (one pickle per batch, never asked for again) are not written."""

    def cached(self, compute: Callable[[], Any], **_: Any) -> Any:
        return compute()

    def get_or_compute(self, key: str, compute: Callable[[], Any], description: Any = None) -> Any:
        return compute()


UNCACHED = Uncached()


# -- predictions -----------------------------------------------------------------------------------
def _predictions(adapter: ModelAdapter, rows: Rows, params: dict[str, Any]) -> dict[str, np.ndarray]:
    proba = np.asarray(adapter.predict_proba(rows.x, rows.forward_batch_size), dtype=np.float64)
    return {"proba": proba, "predicted": proba.argmax(axis=1).astype(np.int64)}


# -- activations -----------------------------------------------------------------------------------
def _activations_unsupported(adapter: ModelAdapter, bundle: DataBundle, params: dict[str, Any]) -> str | None:
    if not adapter.layer_names():
        return f"model {adapter.info.name!r} lists no layers whose activations could be read."
    return None


def _activations_resolve(adapter: ModelAdapter, bundle: DataBundle, params: dict[str, Any]) -> dict[str, Any]:
    from core.embeddings.activations import default_layer

    layer = params.get("layer") or default_layer(adapter)
    if layer not in adapter.layer_names():
        adapter._check_layer(layer)  # the UnknownNameError listing the layers
    return {"layer": layer}


def _activations(adapter: ModelAdapter, rows: Rows, params: dict[str, Any]) -> dict[str, np.ndarray]:
    out = adapter.activations(rows.x, params["layer"], batch_size=rows.forward_batch_size)
    return {"activations": np.ascontiguousarray(out, dtype=np.float32)}


# -- explanation methods (attributions, shap, lime) -----------------------------------------------------
def _method_record(params: dict[str, Any]) -> Any:
    from core.explanation import get_method

    return get_method(params["method"], params["modality"])


def build_params(params_type: type, values: dict[str, Any] | None) -> Any:
    """``params_type(**values)`` (the dataclass validates), lists back to tuples where a field's default is one."""
    values = dict(values or {})
    known = {f.name: f for f in dataclasses.fields(params_type)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ParameterError(f"{params_type.__name__} has no parameter(s) {', '.join(map(repr, unknown))}.",
                             hint=f"use: {', '.join(known)}.")
    for name, value in values.items():
        if isinstance(value, list) and isinstance(known[name].default, tuple):
            values[name] = tuple(value)
    return params_type(**values)


def _checked_record(bundle: DataBundle, params: dict[str, Any]) -> Any:
    """The method's registry record; a method of another modality is refused naming the ones that fit."""
    from core.explanation import method_names

    modality, name = MODALITY[bundle.kind], params["method"]
    if name not in method_names(modality):
        for other in ("image", "text", "table"):
            if other != modality and name in method_names(other):
                raise InputShapeError(
                    f"The {other} method {name!r} needs {ARTICLE[other]} scenario; these rows are {bundle.kind}.",
                    hint=f"use a {bundle.kind} method: {', '.join(method_names(modality))}.")
    return _method_record({"method": name, "modality": modality})  # or the registry's "Unknown ... method"


ARTICLE = {"image": "an image", "text": "a text", "table": "a tabular"}


def _method_unsupported(adapter: ModelAdapter, bundle: DataBundle, params: dict[str, Any]) -> str | None:
    if params.get("method") is None:  # this op has no method for the modality (lime on tables, shap on images)
        return params.get("reason") or "no method of this operation explains this kind of data."
    reason = _checked_record(bundle, params).unsupported(adapter)
    if not reason and bundle.kind == "text" and longest_document(bundle) > TEXT_MAX_WORDS:
        reason = (f"its longest document has {longest_document(bundle):,} distinct words; a text precompute stores "
                  f"every word's weight, for documents of up to {TEXT_MAX_WORDS:,} words.")
    return reason or None


_longest: dict[str, int] = {}


def longest_document(bundle: DataBundle) -> int:
    """The most distinct words of any document of ``bundle`` (the width of a text precompute's columns);
    remembered per bundle fingerprint, since the pages resolve a text op's params on every run."""
    key = bundle.fingerprint
    if key not in _longest:
        from core.text.words import WordDocument

        if len(_longest) > 16:
            _longest.clear()
        _longest[key] = max((WordDocument.parse(str(t)).n_words for t in bundle.x), default=0)
    return _longest[key]


def _method_resolve(adapter: ModelAdapter, bundle: DataBundle, params: dict[str, Any]) -> dict[str, Any]:
    modality, name = MODALITY[bundle.kind], params["method"]
    spec = _checked_record(bundle, params)
    values = build_params(spec.params_type, params.get("params"))
    if modality == "image":
        from core.attribution import resolve_params

        values = resolve_params(name, values, adapter, tuple(np.shape(bundle.x)[1:]))
    elif modality == "table":
        from core.tabular.shap_tabular import resolve_algorithm

        values = dataclasses.replace(values, algorithm=resolve_algorithm(adapter, bundle.x.shape[1], values.algorithm))
    out = {"modality": modality, "method": name, "params": dataclasses.asdict(values), "target": "predicted"}
    if modality == "image":
        out["columns"] = "maps+extras"  # images store their extras too (keys of results stored without them differ)
    if modality == "text":  # every word's weight (older results kept the top 20 words: another key)
        out["columns"] = "all-words+extras"
        out["width"] = max(1, longest_document(bundle))
    return out


def _method_prepare(adapter: ModelAdapter, splits: dict[str, DataBundle], params: dict[str, Any]) -> Any:
    if params["modality"] == "image":
        from core.attribution import image_context

        return image_context(splits["train"])
    if params["modality"] == "table":
        from core.tabular.shap_tabular import ShapParams, background_data

        return background_data(splits["train"], build_params(ShapParams, params["params"]))
    return None


def per_input(method: str, params: Any) -> bool:
    """True when ``method``'s random draws depend on where an input sits in a call (so it explains one input
    per call): any method with a seed, SmoothGrad's noise, expected gradients' baselines, Integrated
    Gradients' noise baseline; but image LIME draws one set of masks for every image of a call, and
    Integrated Gradients' black or blurred baselines draw nothing, so batches change neither."""
    if not any(f.name == "seed" for f in dataclasses.fields(params)) or method == "lime":
        return False
    return not (method == "integrated_gradients" and params.baseline in ("black", "blurred"))


def _image_values(adapter: ModelAdapter, rows: Rows, params: dict[str, Any]) -> dict[str, np.ndarray]:
    from core.attribution import explain_images

    name = params["method"]
    values = build_params(_method_record(params).params_type, params["params"])
    x = np.asarray(rows.x, dtype=np.float32)
    targets = np.asarray(adapter.predict(x, rows.forward_batch_size), dtype=np.int64)

    def explain(part: slice) -> Any:
        return explain_images(adapter, x[part], targets[part], name, values, batch_size=rows.forward_batch_size,
                              context=rows.state, store=UNCACHED)

    parts = [explain(slice(i, i + 1)) for i in range(len(x))] if per_input(name, values) else [explain(slice(None))]
    out = {"values": np.ascontiguousarray(np.concatenate([p.maps for p in parts]), dtype=np.float32),
           "target": targets}
    for extra in parts[0].extras:  # what the image page shows beside the maps (IG's completeness, occlusion's map)
        out[EXTRA + extra] = np.concatenate([np.asarray(p.extras[extra]) for p in parts])
    return out


def _text_values(adapter: ModelAdapter, rows: Rows, params: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every word's weight (in the order of ``WordDocument.words``, zero-padded to ``width``), the explanation's
    selected words (padded with -1), the document's probabilities, how it was predicted and LIME's surrogate
    numbers: what :func:`core.precompute.lookup.text_explanation` turns back into the page's TextExplanation."""
    from core.text.text_methods import explain_text

    name, width = params["method"], int(params["width"])
    values = build_params(_method_record(params).params_type, params["params"])
    n, classes = len(rows), len(adapter.class_names)
    weights = np.zeros((n, width), dtype=np.float64)
    selected = np.full((n, width), -1, dtype=np.int32)
    n_selected = np.zeros(n, dtype=np.int64)
    n_words = np.zeros(n, dtype=np.int64)
    targets = np.full(n, -1, dtype=np.int64)  # -1: a document without words, nothing explained
    proba = np.zeros((n, classes), dtype=np.float64)
    path = np.zeros(n, dtype=np.int8)
    surrogate = {k: np.full(n, np.nan) for k in ("intercept", "score", "local_pred")}
    for i, text in enumerate(rows.x):
        try:
            e = explain_text(adapter, str(text), name, values, "predicted", store=UNCACHED)
        except InputShapeError:  # no words to remove: the row stays empty
            continue
        w = np.asarray(e.weights, dtype=np.float64)
        if len(w) > width:
            raise InputShapeError(f"Row {rows.start + i} has {len(w)} distinct words, more than the {width} "
                                  "columns of this precompute.")
        weights[i, :len(w)] = w
        selected[i, :len(e.selected)] = e.selected
        n_selected[i], n_words[i], targets[i] = len(e.selected), len(w), int(e.target)
        proba[i] = e.proba
        path[i] = TEXT_PATHS.index(e.path)
        for k, column in surrogate.items():
            value = getattr(e, k)
            column[i] = np.nan if value is None else float(value)
    out = {"values": weights, "selected": selected, "n_selected": n_selected, "n_words": n_words,
           "target": targets, "proba": proba, "path": path}
    if name == "lime":
        out.update({EXTRA + k: v for k, v in surrogate.items()})
    return out


def _table_values(adapter: ModelAdapter, rows: Rows, params: dict[str, Any]) -> dict[str, np.ndarray]:
    from core.tabular.shap_tabular import ShapParams, explain_tabular

    values = build_params(ShapParams, params["params"])

    def explain(part: slice) -> Any:
        return explain_tabular(adapter, rows.bundle[part], None, rows.state, values, "predicted", store=UNCACHED)

    if values.algorithm in ("permutation", "kernel"):  # sampled per call: one row per call
        parts = [explain(slice(i, i + 1)) for i in range(len(rows))]
    else:
        parts = [explain(slice(None))]
    return {
        "values": np.concatenate([p.values for p in parts]).astype(np.float64),
        "base_values": np.concatenate([p.base_values for p in parts]).astype(np.float64),
        "output": np.concatenate([p.output for p in parts]).astype(np.float64),
        "target": np.concatenate([p.target for p in parts]).astype(np.int64),
    }


def _method_run(adapter: ModelAdapter, rows: Rows, params: dict[str, Any]) -> dict[str, np.ndarray]:
    modality = params["modality"]
    if modality == "image":
        return _image_values(adapter, rows, params)
    if modality == "text":
        return _text_values(adapter, rows, params)
    return _table_values(adapter, rows, params)


def method_op(name: str, description: str, libraries: tuple[str, ...]) -> Op:
    return Op(name=name, run=_method_run, main="values", resolve=_method_resolve, unsupported=_method_unsupported,
              prepare=_method_prepare, libraries=libraries, batch_rows=64, description=description)


# -- uncertainty (MC dropout, draws keyed by sample) ---------------------------------------------------
DEFAULT_PASSES = 30


def _uncertainty_resolve(adapter: ModelAdapter, bundle: DataBundle, params: dict[str, Any]) -> dict[str, Any]:
    passes = check_int("passes", params.get("passes") or DEFAULT_PASSES, "uncertainty")
    seed = check_int("seed", params.get("seed") or 0, "uncertainty", minimum=0)
    rate = params.get("dropout_rate")
    if rate is not None and not 0.0 <= float(rate) < 1.0:
        raise ParameterError(f"The 'dropout_rate' parameter of uncertainty must be in [0, 1). Got {rate} instead.")
    return {"source": "mc_dropout", "passes": passes, "seed": seed,
            "dropout_rate": None if rate is None else float(rate)}


def _sampling_module(adapter: ModelAdapter, params: dict[str, Any]) -> Any:
    from core.uncertainty.members import mc_dropout_module

    return mc_dropout_module(adapter.torch_module(), params.get("dropout_rate"))


def _uncertainty_unsupported(adapter: ModelAdapter, bundle: DataBundle, params: dict[str, Any]) -> str | None:
    if adapter.torch_module() is None or not hasattr(adapter, "to_tensor"):
        return (f"MC dropout needs a torch model with dropout layers; {adapter.info.name!r} is a "
                f"{adapter.info.framework} model.")
    from core.uncertainty.keyed import is_keyed
    from core.uncertainty.members import dropout_layers

    if not dropout_layers(adapter.torch_module()):
        return f"MC dropout needs dropout layers (nn.Dropout...), and {adapter.info.name!r} has none."
    if not is_keyed(_sampling_module(adapter, params)):
        return ("its dropout draws from torch's global generator (a TorchScript model), so the numbers would "
                "depend on the batch; precompute needs draws keyed by sample.")
    return None


def _uncertainty_prepare(adapter: ModelAdapter, splits: dict[str, DataBundle], params: dict[str, Any]) -> Any:
    from core.uncertainty.members import deterministic_prefix

    return deterministic_prefix(_sampling_module(adapter, params))


def _uncertainty(adapter: ModelAdapter, rows: Rows, params: dict[str, Any]) -> dict[str, np.ndarray]:
    """T passes with keyed dropout masks: the numbers of :func:`core.uncertainty.members.stochastic_passes`
    over the whole split (the uncertainty page's MC dropout), whatever the batch."""
    import torch

    from core.uncertainty.keyed import keyed_draws
    from core.uncertainty.metrics import mean_prediction, uncertainty_scores

    prefix, rest = rows.state
    x, n, step = rows.x, len(rows), rows.forward_batch_size
    passes, logits = params["passes"], getattr(adapter, "outputs", "logits") == "logits"
    blocks = []
    for begin in range(0, n, step):
        inputs = adapter.to_tensor(x[begin:begin + step])  # type: ignore[attr-defined]
        chunk = []
        with torch.inference_mode(), keyed_draws(params["seed"]) as draw:
            if prefix is not None:  # the layers before the first draw give the same output in every pass
                inputs = prefix(inputs)
            for t in range(passes):
                draw.pass_index, draw.offset = t, rows.start + begin
                z = rest(inputs).float()
                chunk.append(torch.softmax(z, dim=1) if logits else z)
        blocks.append(torch.stack(chunk).cpu().numpy())
    proba = np.concatenate(blocks, axis=1).astype(np.float32)  # (passes, n, classes)
    scores = uncertainty_scores(proba)
    return {"proba": mean_prediction(proba), **{k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}}


# -- the built-in operations ------------------------------------------------------------------------------
register_op(Op("predictions", _predictions, "proba", batch_rows=1024,
               description="class probabilities and the predicted class"))
register_op(Op("activations", _activations, "activations", resolve=_activations_resolve,
               unsupported=_activations_unsupported, batch_rows=1024,
               description="a hidden layer's activations (--layer; default the last hidden layer)"))
register_op(method_op("attributions", "attributions of any registered method of the data's modality (--method)",
                      ("numpy", "scipy", "scikit-learn", "shap", "torch")))
register_op(method_op("shap", "SHAP values: tables (shap's tree / exact / permutation / kernel), text (partition)",
                      ("numpy", "scikit-learn", "shap", "torch")))
register_op(method_op("lime", "LIME: word weights of text, superpixel maps of images",
                      ("numpy", "scipy", "scikit-learn", "torch")))
register_op(Op("uncertainty", _uncertainty, "predictive_entropy", resolve=_uncertainty_resolve,
               unsupported=_uncertainty_unsupported, prepare=_uncertainty_prepare, libraries=("numpy", "torch"),
               batch_rows=256, description="MC dropout: mean probabilities, entropies, mutual information"))

# What the method-based operations run on each modality (None: refused, with the reason).
OP_METHODS: dict[str, dict[str, str | None]] = {
    "shap": {"table": "shap", "text": "shap_partition", "image": None},
    "lime": {"text": "lime", "image": "lime", "table": None},
}
REFUSALS = {
    ("shap", "image"): "SHAP on images is expected gradients (shap's GradientExplainer); use --ops attributions "
                       "--method expected_gradients.",
    ("lime", "table"): "TrustLens has no LIME for tables; use --ops shap.",
}


def expand(op: str, kind: str, methods: list[str] | tuple[str, ...] = (),
           method_params: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The raw params of each task ``op`` runs on data of ``kind``: one per method for ``attributions``
    (``methods``, default :data:`DEFAULT_METHOD`), the modality's method for ``shap`` / ``lime``."""
    modality = MODALITY[kind]
    method_params = method_params or {}
    if op == "attributions":
        names = list(dict.fromkeys(methods)) or [DEFAULT_METHOD[modality]]
    elif op in OP_METHODS:
        names = [OP_METHODS[op][modality]]
    else:
        return [{}]
    out = []
    for name in names:
        if name is None:
            out.append({"modality": modality, "method": None, "reason": REFUSALS[(op, modality)]})
        else:
            out.append({"modality": modality, "method": name, "params": method_params.get(name)})
    return out
