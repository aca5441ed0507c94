"""Glass-box models and the interaction heuristic behind dependence plots."""

from __future__ import annotations

import numpy as np
import pytest

from core import scenarios

from core.tabular import glassbox
from core.errors import InputShapeError, ParameterError
from core.tabular.interactions import strongest_interaction
from tests.conftest import require_dataset


def test_titanic_tree_splits_on_sex_first():
    require_dataset("titanic")
    splits = scenarios.load_data("titanic")
    tree = glassbox.shallow_tree(splits["train"], splits["test"], max_depth=3)
    assert tree.rules.splitlines()[0].startswith("|--- Sex_male <=")  # the lecture's first split
    assert tree.depth == 3 and tree.n_leaves <= 8
    assert 0.75 <= tree.test_accuracy <= 0.9
    assert max(tree.feature_importances, key=tree.feature_importances.get) == "Sex_male"


def test_tree_depth_is_validated():
    splits = scenarios.load_data("breast-cancer")
    with pytest.raises(ParameterError, match="max_depth"):
        glassbox.shallow_tree(splits["train"], splits["test"], max_depth=0)


def test_logistic_coefficients_match_the_fitted_model():
    loaded = scenarios.load_model("breast-cancer", "logreg")
    train = scenarios.load_data("breast-cancer")["train"]
    coefs = glassbox.logistic_coefficients(loaded.adapter.estimator, train.feature_names, train.class_names)
    final = loaded.adapter.estimator[-1]
    np.testing.assert_array_equal(coefs.coefficients, final.coef_)
    assert coefs.classes == ("benign",) and coefs.per_standard_deviation
    # the sign is what it says: raising the most positive feature raises P(benign)
    j = int(np.argmax(coefs.coefficients[0]))
    x = train.x[:1].copy()
    before = loaded.adapter.predict_proba(x)[0, 1]
    x[0, j] += train.x[:, j].std()
    assert loaded.adapter.predict_proba(x)[0, 1] > before


def test_models_without_coefficients_are_refused():
    loaded = scenarios.load_model("breast-cancer", "gboost")
    train = scenarios.load_data("breast-cancer")["train"]
    with pytest.raises(InputShapeError, match="GradientBoostingClassifier has no coefficients"):
        glassbox.logistic_coefficients(loaded.adapter.estimator, train.feature_names, train.class_names)


def test_strongest_interaction_finds_the_modulating_feature():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2000, 4))
    # feature 0's effect is scaled by feature 2: an interaction; features 1 and 3 are noise
    values = np.zeros_like(data)
    values[:, 0] = data[:, 0] * (1 + data[:, 2])
    assert strongest_interaction(values, data, 0) == 2
    assert strongest_interaction(values, np.c_[data[:, :1], np.zeros((2000, 3))], 0) is None
    assert strongest_interaction(np.zeros_like(values), data, 0) is None  # the feature's SHAP values do not vary


def test_strongest_interaction_is_shaps_choice_and_deterministic_on_many_rows():
    from shap.utils import approximate_interactions

    rng = np.random.default_rng(1)
    data = rng.normal(size=(12_000, 5))
    values = np.zeros_like(data)
    values[:, 1] = data[:, 1] * (1 + 0.5 * data[:, 4]) + 0.3 * data[:, 1] * data[:, 0]
    assert strongest_interaction(values[:3000], data[:3000], 1) == approximate_interactions(1, values[:3000],
                                                                                            data[:3000])[0] == 4
    assert strongest_interaction(values, data, 1) == strongest_interaction(values, data, 1) == 4  # seeded sample


def test_a_one_hot_pipeline_names_its_coefficients_by_category():
    require_dataset("adult")
    loaded = scenarios.load_model("adult", "logreg")
    train = scenarios.load_data("adult")["train"]
    labels = glassbox.category_labels(train)
    assert labels["sex"] == {0: "Female", 1: "Male"} and labels["workclass"][8] == "(missing)"
    coefs = glassbox.logistic_coefficients(loaded.adapter.estimator, train.feature_names, train.class_names, labels,
                                           top=None)
    assert len(coefs.feature_names) == coefs.coefficients.shape[1] == loaded.adapter.estimator[-1].coef_.shape[1]
    assert "sex = Male" in coefs.feature_names and "age" in coefs.feature_names
    j = coefs.feature_names.index("sex = Male")
    raw = list(loaded.adapter.estimator[:-1].get_feature_names_out(list(train.feature_names)))
    assert coefs.coefficients[0, j] == loaded.adapter.estimator[-1].coef_[0, raw.index("onehot__sex_1.0")]
    top = glassbox.logistic_coefficients(loaded.adapter.estimator, train.feature_names, train.class_names, labels, top=10)
    assert len(top.feature_names) == 10
    assert np.abs(top.coefficients).min() >= np.sort(np.abs(coefs.coefficients[0]))[-10]
