"""Models that are interpretable by design, to compare with SHAP: what does a glass box say?

- the logistic regression's coefficients (per standard deviation of each feature, in log-odds);
- a shallow decision tree's rules (the lecture's Titanic survival tree), fitted on the train split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.bundle import DataBundle
from core.errors import InputShapeError, check_int


@dataclass(frozen=True)
class Coefficients:
    """Log-odds effects of a (standardised) logistic regression.

    ``coefficients[k, j]``: change in the log-odds of ``classes[k]`` (vs the others; for two classes,
    of the second class vs the first) when feature j rises by one standard deviation.
    """

    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    coefficients: np.ndarray
    intercepts: np.ndarray
    per_standard_deviation: bool


def logistic_coefficients(estimator: Any, feature_names: tuple[str, ...], class_names: tuple[str, ...],
                          categories: dict[str, dict[int, str]] | None = None, top: int | None = 30) -> Coefficients:
    """Coefficients of a LogisticRegression, or of a pipeline ending in one.

    A pipeline that encodes columns first (a ``ColumnTransformer`` one-hot encoding category codes) has one
    coefficient per encoded column: they are named by the pipeline's ``get_feature_names_out``, with a
    code shown as its category (``workclass = Private``) where ``categories`` (:func:`category_labels`)
    knows it, and only the ``top`` largest in magnitude are kept.

    Raises
    ------
    InputShapeError
        If the model has no logistic regression (e.g. gradient boosting): pick the 'logreg' model.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    steps = list(getattr(estimator, "steps", [("model", estimator)]))
    final = steps[-1][1]
    if not isinstance(final, LogisticRegression):
        raise InputShapeError(f"{type(final).__name__} has no coefficients to read.",
                              hint="choose the scenario's 'logreg' model to see a glass box.")
    scaled = any(isinstance(step, StandardScaler) for _, step in steps[:-1])
    coef = np.atleast_2d(final.coef_)
    names = tuple(feature_names)
    if coef.shape[1] != len(feature_names):
        names = _encoded_names(steps, feature_names, coef.shape[1], categories or {})
        if top is not None and len(names) > top:
            keep = np.sort(np.argsort(-np.abs(coef).max(axis=0))[:top])
            coef, names = coef[:, keep], tuple(names[j] for j in keep)
    classes = (class_names[1],) if coef.shape[0] == 1 and len(class_names) == 2 else tuple(class_names)
    return Coefficients(names, classes, coef, np.atleast_1d(final.intercept_), scaled)


def _encoded_names(steps: list, feature_names: tuple[str, ...], n: int,
                   categories: dict[str, dict[int, str]]) -> tuple[str, ...]:
    from sklearn.pipeline import Pipeline

    try:
        raw = [str(v) for v in Pipeline(steps[:-1]).get_feature_names_out(list(feature_names))]
    except Exception as exc:  # noqa: BLE001 - any transformer without names: say what we have
        raise InputShapeError(f"The model has {n} coefficients for {len(feature_names)} features, and its encoding "
                              f"steps cannot name them ({type(exc).__name__}).") from None
    if len(raw) != n:
        raise InputShapeError(f"The model has {n} coefficients for {len(raw)} encoded columns.")
    out = []
    for name in raw:
        name = name.split("__", 1)[-1]  # ColumnTransformer's "onehot__" / "remainder__"
        column, _, code = name.rpartition("_")
        try:
            value = int(float(code))
        except ValueError:
            out.append(name)
            continue
        labels = categories.get(column)
        out.append(f"{column} = {labels.get(value, code)}" if labels else name)
    return tuple(out)


def category_labels(bundle: DataBundle) -> dict[str, dict[int, str]]:
    """For each model column holding category codes, code -> the text its display column shows on those rows."""
    out: dict[str, dict[int, str]] = {}
    if bundle.display is None or not bundle.feature_names:
        return out
    for j, name in enumerate(bundle.feature_names):
        if name not in bundle.display.columns:
            continue
        shown = bundle.display[name]
        if shown.dtype.kind in "biuf":
            continue
        codes = np.asarray(bundle.x[:, j])
        pairs = pd.DataFrame({"code": codes, "text": shown.astype("string").fillna("(missing)")}).drop_duplicates("code")
        out[str(name)] = {int(c): str(t) for c, t in zip(pairs["code"], pairs["text"]) if float(c).is_integer()}
    return out


@dataclass(frozen=True)
class TreeSummary:
    rules: str
    depth: int
    n_leaves: int
    train_accuracy: float
    test_accuracy: float
    feature_importances: dict[str, float]


def shallow_tree(train: DataBundle, test: DataBundle, max_depth: int = 3, seed: int = 0) -> TreeSummary:
    """Fit a depth-limited decision tree on ``train`` and return its rules as text.

    The rules read top-down like the lecture's Titanic tree ("Sex_male <= 0.50 ... class: survived").
    """
    from sklearn.tree import DecisionTreeClassifier, export_text

    max_depth = check_int("max_depth", max_depth, "shallow_tree")
    if train.kind != "tabular":
        raise InputShapeError(f"shallow_tree needs tabular data; got {train.kind!r}.")
    tree = DecisionTreeClassifier(max_depth=max_depth, random_state=seed).fit(train.x, train.y)
    names = list(train.feature_names or [f"x{j}" for j in range(train.x.shape[1])])
    rules = export_text(tree, feature_names=names, class_names=list(train.class_names), decimals=2)
    return TreeSummary(
        rules=rules,
        depth=int(tree.get_depth()),
        n_leaves=int(tree.get_n_leaves()),
        train_accuracy=float(tree.score(train.x, train.y)),
        test_accuracy=float(tree.score(test.x, test.y)),
        feature_importances={n: float(v) for n, v in zip(names, tree.feature_importances_) if v > 0},
    )
