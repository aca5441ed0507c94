"""Adapter for gradient-boosted boosters loaded from their own files (XGBoost, LightGBM, CatBoost).

:class:`BoosterClassifier` gives a booster the face of a scikit-learn classifier (``predict_proba``,
``classes_``, ``n_features_in_``), so :class:`BoosterAdapter` is a :class:`SklearnAdapter` and every
perturbation method, page and check that works for scikit-learn works for it. Its fingerprint is the
file's sha256 (with the class names): two uploads of one file share their cached results.

Tabular SHAP takes ``booster`` from it for shap's ``TreeExplainer`` (core/tabular/shap_tabular.py) when
the objective is one whose probability shap knows (:attr:`BoosterClassifier.tree_shap`); shap's CatBoost
support is tree-path-dependent raw margins only, so CatBoost models get the model-agnostic explainers.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from typing import Any

import numpy as np

from core.adapters.sklearn_adapter import SklearnAdapter

# Objectives whose probability is the logistic of the trees' summed margin: shap's TreeExplainer explains them in
# probability space (model_output="probability"). Its multiclass support is raw margins only, measured with
# shap 0.51: "Model does not have a known objective or output type" for multi:softprob and LightGBM multiclass.
TREE_SHAP_OBJECTIVES = {"xgboost": ("binary:logistic",), "lightgbm": ("binary",)}


class BoosterClassifier:
    """A booster as a scikit-learn-like classifier over a float matrix in the booster's feature order."""

    def __init__(self, booster: Any, library: str, objective: str, n_classes: int, feature_names: tuple[str, ...],
                 source_sha256: str) -> None:
        self.booster = booster
        self.library = library
        self.objective = objective
        self.classes_ = np.arange(n_classes)
        self.n_features_in_ = len(feature_names)
        self.feature_names_in_ = np.asarray(feature_names, dtype=object)
        self.source_sha256 = source_sha256

    def n_nodes(self) -> int:
        """Nodes of every tree (splits and leaves): the model's fitted numbers, as for scikit-learn's forests."""
        if self.library == "xgboost":
            return sum(1 for tree in self.booster.get_dump() for line in tree.splitlines() if line.strip())
        if self.library == "catboost":  # oblivious trees: one split per level, 2**depth leaves
            depth = int(self.booster.get_all_params().get("depth", 6))
            return int(self.booster.tree_count_) * (depth + 2 ** depth)
        return sum(2 * int(t["num_leaves"]) - 1 for t in self.booster.dump_model()["tree_info"])

    @property
    def tree_shap(self) -> bool:
        return self.objective in TREE_SHAP_OBJECTIVES.get(self.library, ())

    def predict_proba(self, x: Any) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.library == "xgboost":
            # The margin and the link here, whatever the objective's own predict returns (multi:softmax: labels).
            margin = np.asarray(self.booster.inplace_predict(x, predict_type="margin"), dtype=np.float64)
            if margin.ndim == 1:
                p = 1.0 / (1.0 + np.exp(-margin))
                return np.column_stack([1.0 - p, p])
            margin -= margin.max(axis=1, keepdims=True)
            e = np.exp(margin)
            return e / e.sum(axis=1, keepdims=True)
        if self.library == "catboost":
            return np.asarray(self.booster.predict(x, prediction_type="Probability", thread_count=1), dtype=np.float64)
        out = np.asarray(self.booster.predict(x, num_threads=1), dtype=np.float64)  # LightGBM: its objective's link
        return np.column_stack([1.0 - out, out]) if out.ndim == 1 else out


class BoosterAdapter(SklearnAdapter):
    """A :class:`SklearnAdapter` over a :class:`BoosterClassifier`, fingerprinted by its file and library version."""

    def __init__(self, estimator: BoosterClassifier, **kwargs: Any) -> None:
        super().__init__(estimator, **kwargs)
        self._info = replace(self._info, n_parameters=estimator.n_nodes())

    @staticmethod
    def _fingerprint(estimator: Any, class_names: Any) -> str:
        version = getattr(sys.modules.get(estimator.library), "__version__", "")
        text = f"{estimator.library}=={version}:{estimator.source_sha256}:{'|'.join(map(str, class_names))}"
        return hashlib.sha1(text.encode()).hexdigest()
