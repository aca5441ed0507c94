"""What the app reads back from a precompute: one sample's values of an op, found by the key the CLI used.

:func:`task_params` resolves an op's params exactly as ``python -m core precompute`` does (the op's own
``resolve``, :func:`core.precompute.plan.precompute_key` for the key), so a page asking with its current
method and settings finds what a precompute of the same work published. :func:`lookup` returns one
sample's columns (or None). Cheap per request: a manifest is read once per process and key (a missing
one is asked again after :data:`MISSING_TTL_S`), shards are read when a row in them is asked for (each
checked against its sha256), and the last decoded shard of each result is kept.

The store is a URL (a folder or ``s3://bucket/prefix``); nothing here writes to it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.precompute.ops import get_op
from core.precompute.output import CorruptShardError, Precomputed, Prefix
from core.precompute.plan import precompute_key

MISSING_TTL_S = 30.0  # a result not found is looked for again after this long (a precompute may finish meanwhile)


@dataclass(frozen=True)
class Hit:
    """One sample's precomputed columns, with where they came from.

    ``columns``: ``{column: ndarray}`` of that row (its per-row shape); ``created``: the manifest's UTC
    time (ISO 8601); ``engine``: ``local`` or ``ray``; ``key``: the result's key.
    """

    columns: dict[str, np.ndarray]
    created: str
    engine: str
    key: str

    @property
    def date(self) -> str:
        """The creation date (``YYYY-MM-DD``)."""
        return self.created[:10]


_found: dict[tuple[str, str], tuple[Precomputed | None, float]] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every manifest read (tests; a server picks new results up by itself after MISSING_TTL_S)."""
    with _lock:
        _found.clear()


def task_params(op: str, adapter: Any, bundle: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` params of ``op`` resolved as the precompute resolves them (defaults written in, checked).

    ``raw`` is what ``plan_tasks`` passes: ``{"modality", "method", "params": {...}}`` for the method-based
    ops, ``{"layer": ...}`` for activations. Raises what the op's ``resolve`` raises.
    """
    record = get_op(op)
    return record.resolve(adapter, bundle, dict(raw)) if record.resolve else dict(raw)


def find_cached(store_url: str, model_fingerprint: str, data_fingerprint: str, op: str,
                params: dict[str, Any]) -> Precomputed | None:
    """The published result (manifest read once per process and key), or None."""
    key = precompute_key(get_op(op), model_fingerprint, data_fingerprint, params)
    memo = (str(store_url), key)
    with _lock:
        entry = _found.get(memo)
    if entry is not None and (entry[0] is not None or time.monotonic() - entry[1] < MISSING_TTL_S):
        return entry[0]
    found = Prefix(store_url, key).open(verify=False)  # shards are checked one by one as they are read
    with _lock:
        _found[memo] = (found, time.monotonic())
    return found


def lookup(store_url: str, model_fingerprint: str, data_fingerprint: str, op: str, params: dict[str, Any],
           index: int) -> Hit | None:
    """Sample ``index``'s precomputed columns of ``op`` with resolved ``params``, or None.

    None when nothing was published for this model, these rows and these params, when ``index`` is not
    one of its rows, or when the shard holding it no longer matches its sha256 (then the result is
    forgotten and looked for again later).
    """
    hit = lookup_rows(store_url, model_fingerprint, data_fingerprint, op, params, [int(index)])
    return None if hit is None else Hit({name: value[0] for name, value in hit.columns.items()}, hit.created,
                                        hit.engine, hit.key)


def lookup_rows(store_url: str, model_fingerprint: str, data_fingerprint: str, op: str, params: dict[str, Any],
                indices: Any) -> Hit | None:
    """:func:`lookup` of several samples at once: ``columns`` hold one row per index, in that order."""
    found = find_cached(store_url, model_fingerprint, data_fingerprint, op, params)
    wanted = np.atleast_1d(np.asarray(indices, dtype=np.int64))
    if found is None or not wanted.size or wanted.min() < 0 or wanted.max() >= found.rows:
        return None
    try:
        with _lock:  # a Precomputed keeps one decoded shard: one reader at a time
            columns = found.read(wanted)
    except (CorruptShardError, FileNotFoundError, OSError):
        with _lock:
            _found.pop((str(store_url), found.key), None)
        return None
    manifest = found.manifest
    return Hit(columns, str(manifest.get("created", "")), str(manifest.get("engine", "")), found.key)


def _first(store_url: str, adapter: Any, bundle: Any, ops: tuple[str, ...], params: dict[str, Any],
           rows: np.ndarray) -> Hit | None:
    """The rows from the first of ``ops`` that published these params (``--ops attributions --method shap`` and
    ``--ops shap`` compute the same values under two keys)."""
    for op in ops:
        hit = lookup_rows(store_url, adapter.fingerprint, bundle.fingerprint, op, params, rows)
        if hit is not None:
            return hit
    return None


# -- what the pages read ---------------------------------------------------------------------------------
def image_attribution(store_url: str, adapter: Any, bundle: Any, method: str, params: Any, rows: Any,
                      targets: Any) -> tuple[np.ndarray, Any, Hit | None]:
    """The precomputed attributions of test images ``rows`` (of ``bundle``) by ``method`` with ``params`` (its
    params dataclass, as the page builds it), towards ``targets``.

    Returns ``(found, attribution, hit)``: ``found`` a boolean per row, ``attribution`` the
    :class:`~core.attribution.base.ImageAttribution` of the found rows (in order; None when none is), ``hit``
    the result's provenance. A row counts as found when its precomputed target (the predicted class) is
    the one asked for; a method whose random draws depend on the other images of a call (SmoothGrad...)
    is read only for a single image, which is then what explaining it alone gives.
    """
    from dataclasses import asdict

    from core.attribution.base import ImageAttribution, get_method
    from core.attribution.run import _output_name
    from core.precompute.ops import EXTRA, build_params, per_input

    rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
    targets = np.atleast_1d(np.asarray(targets, dtype=np.int64))
    none = np.zeros(len(rows), dtype=bool)
    resolved = task_params("attributions", adapter, bundle, {"modality": "image", "method": method,
                                                             "params": asdict(params)})
    spec = get_method(method)
    values = build_params(spec.params_type, resolved["params"])
    if per_input(method, values) and len(rows) != 1:
        return none, None, None
    hit = _first(store_url, adapter, bundle, ("attributions", "lime") if method == "lime" else ("attributions",),
                 resolved, rows)
    if hit is None:
        return none, None, None
    found = np.asarray(hit.columns["target"], dtype=np.int64) == targets
    if not found.any():
        return found, None, hit
    extras = {name[len(EXTRA):]: np.asarray(v)[found] for name, v in hit.columns.items() if name.startswith(EXTRA)}
    result = ImageAttribution(method=method, maps=hit.columns["values"][found], target=targets[found],
                              output=_output_name(spec, adapter), signed=spec.signed(values),
                              params=asdict(values), extras=extras)
    return found, result, hit


def table_attribution(store_url: str, adapter: Any, bundle: Any, rows: Any, params: Any,
                      background_method: str) -> tuple[Any, Hit | None]:
    """The precomputed tabular SHAP values of ``bundle``'s ``rows`` towards the predicted class, as
    :func:`core.tabular.shap_tabular.explain_tabular` returns them, or ``(None, None)``.

    Read only for the explainers whose values of a row do not depend on the other rows of a call (tree,
    exact); permutation and kernel SHAP sample per call, so the page's one call differs from the precompute's
    one call per row.
    """
    from dataclasses import asdict

    from core.explanation import FeatureAttribution

    resolved = task_params("attributions", adapter, bundle, {"modality": "table", "method": "shap",
                                                             "params": asdict(params)})
    algorithm = resolved["params"]["algorithm"]
    if algorithm not in ("tree", "exact"):
        return None, None
    rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
    hit = _first(store_url, adapter, bundle, ("attributions", "shap"), resolved, rows)  # --ops shap: the same values
    if hit is None:
        return None, None
    sub = bundle[rows]
    x = np.asarray(sub.x, dtype=np.float32)
    names = sub.feature_names or tuple(f"x{i}" for i in range(x.shape[1]))
    key_params = {**asdict(params), "algorithm": algorithm, "target": "predicted",
                  "background_method": background_method}
    return FeatureAttribution(values=hit.columns["values"], base_values=hit.columns["base_values"], data=x,
                              feature_names=tuple(names), target=hit.columns["target"], output=hit.columns["output"],
                              rows=np.asarray(sub.index, dtype=np.int64), method=f"shap/{algorithm}",
                              params=key_params, signed=True), hit


def text_explanation(store_url: str, adapter: Any, bundle: Any, index: int, method: str, params: Any = None,
                     target: str | int = "predicted") -> tuple[Any, Hit | None]:
    """The precomputed explanation of document ``index`` of ``bundle`` by text ``method`` with ``params`` (as
    :func:`core.text.text_methods.explain_text` takes them: the method's params dataclass, or the page's LIME
    settings for another method), as the :class:`~core.text.lime_text.TextExplanation` ``explain_text``
    returns, or ``(None, None)``.

    Found only towards the document's predicted class (what the precompute explained: ``target`` "predicted"
    or that class's index) and for LIME, leave-one-word-out and gradient x embedding (SHAP's partition
    explainer keeps more numbers than a precompute stores).
    """
    from dataclasses import asdict

    from core.explanation import get_method
    from core.precompute.ops import EXTRA, TEXT_PATHS
    from core.text.lime_text import TextExplanation
    from core.text.text_methods import OcclusionTextParams
    from core.text.words import WordDocument

    if method not in ("lime", "occlusion", "gradient_x_embedding"):
        return None, None
    spec = get_method(method, "text")
    if params is None or not isinstance(params, spec.params_type):  # as explain_text reads another method's params
        batch = getattr(params, "batch_size", None)
        params = (OcclusionTextParams(batch) if spec.params_type is OcclusionTextParams and batch
                  else spec.params_type())
    resolved = task_params("attributions", adapter, bundle, {"modality": "text", "method": method,
                                                             "params": asdict(params)})
    ops = ("attributions", "lime") if method == "lime" else ("attributions",)
    hit = _first(store_url, adapter, bundle, ops, resolved, np.array([int(index)]))
    if hit is None:
        return None, None
    row = {name: value[0] for name, value in hit.columns.items()}
    k = int(row["target"])
    if k < 0 or (target != "predicted" and int(target) != k):
        return None, None
    doc = WordDocument.parse(str(bundle.x[int(index)]))
    n = int(row["n_words"])
    if n != doc.n_words:
        return None, None
    path = TEXT_PATHS[int(row["path"])]
    if method == "lime":
        from core.text.text_perturb import perturber

        reason = perturber(adapter, doc, params.fast_path).reason if path == "strings" else ""
        params_dict = {**asdict(params), "path_reason": reason}
    elif method == "occlusion":
        params_dict = {"batch_size": params.batch_size}
    else:
        params_dict = {}
    surrogate = {name: float(row[EXTRA + name]) if EXTRA + name in row else None
                 for name in ("intercept", "score", "local_pred")}
    explanation = TextExplanation(
        method=method, doc=doc, weights=np.asarray(row["values"][:n], dtype=np.float64),
        selected=np.asarray(row["selected"][:int(row["n_selected"])], dtype=np.int64), target=k,
        class_names=tuple(adapter.class_names), proba=np.asarray(row["proba"], dtype=np.float64), path=path,
        params=params_dict, **surrogate)
    return explanation, hit
