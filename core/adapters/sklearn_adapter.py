"""Adapter for scikit-learn estimators and pipelines."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter, ModelInfo
from core.batching import map_batches
from core.errors import InputShapeError

NO_GRADIENTS = (
    "scikit-learn models are not differentiable through torch, so gradient methods "
    "(saliency, Integrated Gradients, Grad-CAM) are not offered; perturbation methods "
    "(occlusion, LIME, SHAP) work."
)


class SklearnAdapter(ModelAdapter):
    """Wrap a fitted classifier with ``predict_proba`` (a bare estimator or a ``Pipeline``).

    ``layer_names()`` lists the pipeline's transforming steps (the features after each step)
    and, for numeric inputs, ``"input"`` (the flattened raw features).
    """

    default_batch_size = 1024

    def __init__(
        self,
        estimator: Any,
        *,
        name: str,
        class_names: tuple[str, ...] | list[str],
        input_kind: str,
        description: str = "",
        framework: str = "sklearn",
    ) -> None:
        if not hasattr(estimator, "predict_proba"):
            raise InputShapeError(
                f"Model {name!r} ({type(estimator).__name__}) has no predict_proba.",
                hint="wrap it in sklearn.calibration.CalibratedClassifierCV or use a probabilistic classifier.",
            )
        n_classes = len(getattr(estimator, "classes_", class_names))
        if n_classes != len(class_names):
            raise InputShapeError(
                f"Model {name!r} was fitted on {n_classes} classes but {len(class_names)} class names were given."
            )
        self._estimator = estimator
        self._info = ModelInfo(
            name=name,
            task="classification",
            class_names=tuple(class_names),
            input_kind=input_kind,
            fingerprint=self._fingerprint(estimator, class_names),
            device="cpu",
            framework=framework,
            n_parameters=_count_parameters(estimator),
            description=description,
            gradients_unavailable=NO_GRADIENTS,
        )

    @staticmethod
    def _fingerprint(estimator: Any, class_names: Any) -> str:
        import joblib

        # joblib.hash hashes the fitted state by content (arrays by bytes), not by identity.
        stable = _without_volatile_state(estimator)
        return joblib.hash((type(estimator).__qualname__, stable, tuple(class_names)), hash_name="sha1") or ""

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def estimator(self) -> Any:
        return self._estimator

    _columns: tuple[str, ...] | None = None  # set by with_columns: the pipeline takes a DataFrame of raw columns
    _categories: dict[str, tuple[str, ...]] = {}

    def with_columns(self, columns: tuple[str, ...], categories: dict[str, tuple[str, ...]]) -> "SklearnAdapter":
        """A copy that hands the estimator a DataFrame of raw columns (a pipeline fitted on one).

        Rows stay numeric matrices everywhere else in TrustLens: a column in ``categories`` holds codes
        into its texts (:func:`core.upload.data_upload.raw_matrix`), decoded here to the texts (NaN, or
        a code outside the list, to a missing value) just before the estimator sees them, so
        perturbation methods (SHAP, occlusion, LIME) move whole categories, one value per raw column.
        """
        import copy

        out = copy.copy(self)
        out._columns = tuple(str(c) for c in columns)
        out._categories = {str(k): tuple(map(str, v)) for k, v in categories.items()}
        extra = json.dumps([out._columns, sorted(out._categories.items())], sort_keys=True)
        out._info = replace(self._info, fingerprint=hashlib.sha1((self._info.fingerprint + extra).encode()).hexdigest())
        return out

    def _prepare(self, x: Any) -> Any:
        if self.info.input_kind == "text":
            return list(x)
        if self._columns is None:
            return np.asarray(x)
        import pandas as pd

        x = np.asarray(x, dtype=np.float64)
        data = {}
        for j, name in enumerate(self._columns):
            texts = self._categories.get(name)
            if texts is None:
                data[name] = x[:, j]
                continue
            codes = x[:, j]
            valid = np.isfinite(codes) & (codes >= 0) & (codes < len(texts)) & (codes == np.round(codes))
            column = np.full(len(codes), np.nan, dtype=object)
            column[valid] = np.asarray(texts, dtype=object)[codes[valid].astype(np.int64)]
            data[name] = column
        return pd.DataFrame(data, columns=list(self._columns))

    def predict_proba(self, x: Any, batch_size: int | None = None) -> np.ndarray:
        self._check_input(x)
        if len(x) == 0:
            return np.empty((0, len(self.class_names)))
        x = np.asarray(list(x), dtype=object) if self.info.input_kind == "text" else np.asarray(x)
        proba = map_batches(
            lambda chunk: self._estimator.predict_proba(self._prepare(chunk)).astype(np.float64),
            x,
            self.default_batch_size if batch_size is None else batch_size,
            owner="predict_proba",
        )
        return proba / proba.sum(axis=1, keepdims=True)

    def _steps(self) -> list[tuple[str, Any]]:
        steps = getattr(self._estimator, "steps", None)
        return list(steps[:-1]) if steps else []

    def layer_names(self) -> list[str]:
        # A raw-column pipeline's "input" would be category codes and missing values, no space to map: its own
        # steps (its encoders' output) are; a bare estimator on raw numbers keeps it.
        raw = self._columns is not None and (bool(self._categories) or bool(self._steps()))
        names = [] if self.info.input_kind == "text" or raw else ["input"]
        return names + [name for name, _ in self._steps()]

    def activations(self, x: Any, layer: str, batch_size: int | None = None) -> np.ndarray:
        self._check_input(x)
        if len(x) == 0:
            self._check_layer(layer)
            return self._empty_activations(x, layer)
        self._check_layer(layer)
        if self.info.input_kind == "text":
            x = np.asarray(list(x), dtype=object)
        if layer == "input":
            return np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        position = [name for name, _ in self._steps()].index(layer)
        head = self._estimator[: position + 1]

        def run(chunk: Any) -> np.ndarray:
            out = head.transform(self._prepare(chunk))
            out = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
            return out.reshape(len(chunk), -1).astype(np.float32)

        return map_batches(run, x, self.default_batch_size if batch_size is None else batch_size, owner="activations")


# Attributes scikit-learn rewrites at prediction time with process-specific values (the text
# vectorisers cache id(stop_words) in `_stop_words_id`); they say nothing about the fitted model.
_VOLATILE_ATTRIBUTES = ("_stop_words_id",)


def _without_volatile_state(estimator: Any) -> Any:
    """A shallow copy of ``estimator`` (and of a pipeline's steps) fit for content hashing.

    Volatile attributes are dropped, and array attributes are copied to fresh C-ordered arrays:
    joblib.hash includes strides, and a freshly fitted ``coef_`` of shape (1, d) had strides
    (0, 8) while the same values read back from the cache had (8 * d, 8), which gave one model
    two fingerprints.
    """
    import copy

    clone = copy.copy(estimator)
    steps = getattr(estimator, "steps", None)
    if steps is not None:
        clone.steps = [(name, _without_volatile_state(step)) for name, step in steps]
        return clone
    state = getattr(clone, "__dict__", None)
    if state is None:
        return clone
    for attribute in _VOLATILE_ATTRIBUTES:
        state.pop(attribute, None)
    for name, value in list(state.items()):
        if isinstance(value, np.ndarray):
            state[name] = value.copy(order="C")
    return clone


def _count_parameters(estimator: Any) -> int:
    """Fitted numbers in the model: coefficients + intercepts, or tree nodes for ensembles."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    total = 0
    for attr in ("coef_", "intercept_"):
        if hasattr(final, attr):
            total += int(np.size(getattr(final, attr)))
    trees = getattr(final, "estimators_", None)
    if trees is not None:
        for tree in np.ravel(trees):
            if hasattr(tree, "tree_"):
                total += int(tree.tree_.node_count)
    return total
