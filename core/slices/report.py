"""Everything the ``slices`` verb prints for one model on one split: overall metrics, the slice asked for
(against the rest), the groups of each sensitive column with Fairlearn's disparities, and the weak slices.

Cached in the ArtifactStore under the model's and the data's fingerprints, the parameters, the source of
this package and the versions of numpy, pandas and fairlearn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.bundle import DataBundle
from core.errors import ParameterError, check_int
from core.progress import ProgressCallback, report
from core.store import ArtifactStore, default_store, source_hash

LIBRARIES = ("numpy", "pandas", "fairlearn")
# The report's code is part of its key: an edit to the search or the metrics recomputes it.
CODE = ("core/slices/conditions.py", "core/slices/frame.py", "core/slices/metrics.py", "core/slices/search.py",
        "core/slices/report.py")


@dataclass(frozen=True)
class SliceParams:
    sensitive: tuple[str, ...] = ()
    slice: str = ""  # a slice to score against the rest (the slice grammar), or "" for none
    positive: int | None = None  # class index; None: the second class of a binary model, else none
    n_boot: int = 200
    seed: int = 0
    top: int = 10
    max_conditions: int = 2
    min_size: int | None = None

    def validated(self) -> SliceParams:
        check_int("n_boot", self.n_boot, "slices", minimum=0)
        check_int("top", self.top, "slices")
        if not 1 <= check_int("max_conditions", self.max_conditions, "slices") <= 3:
            raise ParameterError(f"max_conditions must be 1, 2 or 3; got {self.max_conditions}.",
                                 hint="the search over conjunctions of 3 conditions already takes seconds.")
        if self.min_size is not None:
            check_int("min_size", self.min_size, "slices")
        return self


def resolve_positive(class_names: tuple[str, ...], positive: int | str | None) -> int | None:
    """A class index from a name or an index; a binary model defaults to its second class."""
    if positive is None or positive == "":
        return 1 if len(class_names) == 2 else None
    if isinstance(positive, str) and positive in class_names:
        return class_names.index(positive)
    try:
        index = int(positive)
    except (TypeError, ValueError):
        index = -1
    if 0 <= index < len(class_names) and str(positive).strip().lstrip("-").isdigit():
        return index
    raise ParameterError(f"Unknown positive class {positive!r}.",
                         hint=f"use a class name ({', '.join(class_names)}) or its index 0-{len(class_names) - 1}.")


@dataclass
class SlicesReport:
    n: int
    positive: str | None
    overall: dict[str, Any]
    groups: list[dict[str, Any]]
    weak_slices: list[dict[str, Any]]
    slice: dict[str, Any] | None = None
    rest: dict[str, Any] | None = None
    columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def slices_report(adapter: ModelAdapter, bundle: DataBundle, params: SliceParams = SliceParams(),
                  proba: np.ndarray | None = None, store: ArtifactStore | None = None,
                  progress: ProgressCallback | None = None, selected: np.ndarray | None = None) -> SlicesReport:
    """The report for ``adapter`` on the labelled ``bundle`` (predictions from ``proba`` or the cached ones);
    ``selected``: rows of a selection saved from the Embeddings map (the frame's ``map selection`` column)."""
    from core.inference import predict_proba_cached
    from core.slices.conditions import check_column, parse_slice
    from core.slices.frame import slice_frame

    params = params.validated()
    if bundle.y is None:
        raise ParameterError("Slices need labels: this data has none.",
                             hint="upload a CSV with a label column (or pick a built-in scenario).")
    slice_ = parse_slice(params.slice)  # syntax errors before anything runs
    if proba is None:
        report(progress, 0.0, "predicting")
        proba = predict_proba_cached(adapter, bundle, store=store)
    frame = slice_frame(bundle, proba, selected)
    if slice_.conditions:
        slice_.mask(frame)  # a missing column, a type mismatch or no match: said before the long part
    for column in params.sensitive:
        check_column(frame, column, "--sensitive")
    store = store or default_store()

    def compute() -> dict[str, Any]:
        return _compute(adapter.class_names, bundle, frame, proba, params, progress).as_dict()

    chosen = None if selected is None else np.unique(np.asarray(selected, dtype=np.int64)).tolist()
    document = store.cached(compute, op="slices", model_fingerprint=adapter.fingerprint,
                            data_fingerprint=bundle.fingerprint,
                            params={**asdict(params), "code": source_hash(*CODE), "selected": chosen},
                            libraries=LIBRARIES)
    return SlicesReport(**document)


def _compute(class_names: tuple[str, ...], bundle: DataBundle, frame: Any, proba: np.ndarray, params: SliceParams,
             progress: ProgressCallback | None) -> SlicesReport:
    from core.slices.conditions import parse_slice
    from core.slices.metrics import group_report, slice_metrics
    from core.slices.search import weak_slices

    y = np.asarray(bundle.y, dtype=np.int64)
    positive = params.positive
    args = {"positive": positive, "n_boot": params.n_boot, "seed": params.seed}
    report(progress, 0.1, "overall metrics")
    overall = slice_metrics(proba, y, None, "all samples", **args).as_dict()
    chosen = rest = None
    slice_ = parse_slice(params.slice)
    if slice_.conditions:
        mask = slice_.mask(frame)
        chosen = slice_metrics(proba, y, mask, slice_.text, **args).as_dict()
        rest = slice_metrics(proba, y, ~mask, "the rest", **args).as_dict()
    groups = []
    for i, column in enumerate(params.sensitive):
        report(progress, 0.2 + 0.4 * i / max(1, len(params.sensitive)), f"groups of {column}")
        groups.append(group_report(frame, column, proba, y, positive, params.n_boot, params.seed).as_dict())
    report(progress, 0.6, "searching for weak slices")
    errors = proba.argmax(axis=1) != y
    weak = weak_slices(frame, errors, params.max_conditions, params.min_size, params.top)
    report(progress, 1.0, "slices ready")
    return SlicesReport(len(y), None if positive is None else class_names[positive], overall, groups,
                        [w.as_dict() for w in weak], chosen, rest, [str(c) for c in frame.columns])
