"""SHAP for tabular models: shap itself as the oracle, efficiency, a null feature, caching, the CLI.

Kept small (a few rows, backgrounds of 20-30 rows) so the file runs in well under a minute.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import scenarios
from core.errors import InputShapeError, ParameterError
from core.explanation import FeatureAttribution
from core.progress import Recorder
from core.tabular.shap_tabular import (
    Background,
    ShapParams,
    background_data,
    choose_algorithm,
    explain_tabular,
)
from tests.conftest import require_dataset

shap = pytest.importorskip("shap")

ROWS = np.arange(6)
SMALL = ShapParams(background_size=20)


@pytest.fixture(scope="module")
def titanic():
    require_dataset("titanic")
    return scenarios.load_data("titanic")


@pytest.fixture(scope="module")
def cancer():
    return scenarios.load_data("breast-cancer")


def masked_oracle(f, bg, x, algorithm, seed=0):
    masker = shap.maskers.Independent(bg, max_samples=len(bg))
    if algorithm == "exact":
        return shap.explainers.Exact(f, masker)(x, silent=True)
    state = np.random.get_state()
    try:
        return shap.explainers.Permutation(f, masker, seed=seed)(x, silent=True)
    finally:
        np.random.set_state(state)


# -- oracle agreement ----------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["titanic", "breast-cancer"])
def test_tree_matches_shap_tree_explainer(scenario, request, tmp_store):
    splits = request.getfixturevalue("titanic" if scenario == "titanic" else "cancer")
    adapter = scenarios.load_model(scenario, "gboost").adapter
    assert choose_algorithm(adapter, splits["test"].x.shape[1]) == "tree"
    bg = background_data(splits["train"], SMALL)
    ours = explain_tabular(adapter, splits["test"], ROWS, bg, SMALL, target=1, store=tmp_store)
    explainer = shap.TreeExplainer(adapter.estimator, data=bg.data, model_output="probability",
                                   feature_perturbation="interventional")
    x = splits["test"].x[ROWS]
    np.testing.assert_allclose(ours.values, explainer.shap_values(x), atol=1e-10)
    np.testing.assert_allclose(ours.base_values, np.ravel(explainer.expected_value)[0], atol=1e-10)
    assert ours.method == "shap/tree"
    assert np.abs(ours.additivity_error).max() < 1e-6
    # class 0 of a binary model is the mirror image
    zero = explain_tabular(adapter, splits["test"], ROWS, bg, SMALL, target=0, store=tmp_store)
    np.testing.assert_allclose(zero.values, -ours.values, atol=1e-12)
    assert np.abs(zero.additivity_error).max() < 1e-6


@pytest.mark.slow  # 6.5 s: shap's exact explainer
def test_exact_matches_shap_exact_on_titanic_logreg(titanic, tmp_store):
    adapter = scenarios.load_model("titanic", "logreg").adapter
    assert choose_algorithm(adapter, 9) == "exact"
    bg = background_data(titanic["train"], SMALL)
    ours = explain_tabular(adapter, titanic["test"], ROWS, bg, SMALL, target=1, store=tmp_store)
    x = titanic["test"].x[ROWS]
    oracle = masked_oracle(lambda X: adapter.estimator.predict_proba(X)[:, 1], bg.data, x, "exact")
    np.testing.assert_allclose(ours.values, oracle.values, atol=1e-7)
    np.testing.assert_allclose(ours.base_values, oracle.base_values, atol=1e-7)
    assert np.abs(ours.additivity_error).max() < 1e-6
    assert ours.values.shape == (len(ROWS), 9) and ours.feature_names == titanic["test"].feature_names
    np.testing.assert_array_equal(ours.rows, ROWS)


@pytest.mark.slow  # 9 s: shap's permutation explainer
def test_permutation_matches_seeded_shap_on_breast_cancer_mlp(cancer, tmp_store):
    adapter = scenarios.load_model("breast-cancer", "mlp").adapter
    assert choose_algorithm(adapter, 30) == "permutation"
    bg = background_data(cancer["train"], SMALL)
    ours = explain_tabular(adapter, cancer["test"], ROWS[:3], bg, SMALL, target=1, store=tmp_store)
    x = cancer["test"].x[ROWS[:3]]
    oracle = masked_oracle(lambda X: adapter.predict_proba(X)[:, 1], bg.data, x, "permutation", seed=0)
    # Same seed, same permutations: equal up to float rounding, not just statistically close.
    np.testing.assert_allclose(ours.values, oracle.values, atol=1e-7)
    # Antithetic permutations telescope, so efficiency holds here too.
    assert np.abs(ours.additivity_error).max() < 1e-6


@pytest.mark.slow  # 9.6 s: two SHAP runs on the titanic MLP
def test_batch_size_does_not_change_values(titanic, tmp_store):
    adapter = scenarios.load_model("titanic", "mlp").adapter
    bg = background_data(titanic["train"], SMALL)
    a = explain_tabular(adapter, titanic["test"], ROWS[:3], bg, SMALL, store=tmp_store)
    b = explain_tabular(adapter, titanic["test"], ROWS[:3], bg, ShapParams(background_size=20, batch_size=7),
                        store=tmp_store)
    np.testing.assert_allclose(a.values, b.values, atol=1e-7)  # float32 forward passes: rounding only
    assert np.abs(a.additivity_error).max() < 1e-6


# -- targets ---------------------------------------------------------------------------------
def test_predicted_target_explains_each_rows_predicted_class(titanic, tmp_store):
    adapter = scenarios.load_model("titanic", "gboost").adapter
    bg = background_data(titanic["train"], SMALL)
    rows = np.arange(12)
    pred = explain_tabular(adapter, titanic["test"], rows, bg, SMALL, store=tmp_store)
    proba = adapter.predict_proba(titanic["test"].x[rows])
    np.testing.assert_array_equal(pred.target, proba.argmax(axis=1))
    assert len(set(pred.target)) == 2, "pick rows with both predicted classes"
    np.testing.assert_allclose(pred.output, proba.max(axis=1))
    fixed = {k: explain_tabular(adapter, titanic["test"], rows, bg, SMALL, target=k, store=tmp_store) for k in (0, 1)}
    for i, k in enumerate(pred.target):
        np.testing.assert_allclose(pred.values[i], fixed[k].values[i], atol=1e-12)


def test_explanation_slicing(titanic, tmp_store):
    adapter = scenarios.load_model("titanic", "gboost").adapter
    e = explain_tabular(adapter, titanic["test"], [4, 7, 9], background_data(titanic["train"], SMALL), SMALL,
                        store=tmp_store)
    one = e[1]
    assert isinstance(one, FeatureAttribution) and len(one) == 1 and one.rows.tolist() == [7]
    assert e[1:].rows.tolist() == [7, 9]
    assert e[np.array([True, False, True])].rows.tolist() == [4, 9]
    np.testing.assert_allclose(e[[2]].additivity_error, e.additivity_error[[2]])


# -- analytic: a feature the model ignores -------------------------------------------------
@pytest.mark.parametrize("algorithm", ["exact", "permutation", "kernel"])
def test_ignored_feature_gets_zero(algorithm, tmp_store):
    from sklearn.linear_model import LogisticRegression

    from core.adapters.sklearn_adapter import SklearnAdapter
    from core.bundle import DataBundle

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 3] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    model.coef_[0, 2] = 0.0  # column 2 is noise the model now ignores exactly
    adapter = SklearnAdapter(model, name="toy", class_names=("a", "b"), input_kind="tabular")
    bundle = DataBundle("tabular", x, y, ("a", "b"), feature_names=("x0", "x1", "x2", "x3"))
    params = ShapParams(algorithm=algorithm, background_size=25)
    e = explain_tabular(adapter, bundle, np.arange(5), background_data(bundle, params), params, store=tmp_store)
    assert np.abs(e.values[:, 2]).max() < 1e-6
    assert np.abs(e.values[:, 1]).mean() > 0.01  # the strongest feature matters
    if algorithm != "kernel":
        assert np.abs(e.additivity_error).max() < 1e-6


# -- background --------------------------------------------------------------------------
def test_background_sample_is_seeded_and_kmeans_weighted(cancer):
    a = background_data(cancer["train"], ShapParams(background_size=30, seed=1))
    b = background_data(cancer["train"], ShapParams(background_size=30, seed=1))
    c = background_data(cancer["train"], ShapParams(background_size=30, seed=2))
    assert a.data.shape == (30, 30) and np.array_equal(a.data, b.data) and not np.array_equal(a.data, c.data)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    k = background_data(cancer["train"], ShapParams(background="kmeans", background_size=8))
    assert k.data.shape == (8, 30) and k.method == "kmeans"
    assert k.weights.sum() == pytest.approx(1.0) and len(set(np.round(k.weights, 6))) > 1
    big = background_data(cancer["train"][:10], ShapParams(background_size=100))
    assert len(big) == 10


# -- caching and progress ------------------------------------------------------------------
def test_second_call_is_a_cache_hit(titanic, tmp_store):
    adapter = scenarios.load_model("titanic", "logreg").adapter
    bg = background_data(titanic["train"], SMALL)
    recorder = Recorder()
    first = explain_tabular(adapter, titanic["test"], ROWS[:3], bg, SMALL, progress=recorder, store=tmp_store)
    assert tmp_store.stats().misses == 1 and tmp_store.stats().hits == 0
    assert recorder.calls[0][0] == 0.0 and recorder.calls[-1][0] == 1.0
    second = explain_tabular(adapter, titanic["test"], ROWS[:3], bg, SMALL, store=tmp_store)
    assert tmp_store.stats().hits == 1 and tmp_store.stats().misses == 1
    np.testing.assert_array_equal(first.values, second.values)
    explain_tabular(adapter, titanic["test"], ROWS[:3], Background.of(bg.data[:10]), SMALL, store=tmp_store)
    assert tmp_store.stats().misses == 2  # another background is another key



def test_the_same_rows_at_other_positions_reuse_the_values_with_their_own_indices(titanic, tmp_store):
    from core.bundle import DataBundle

    adapter = scenarios.load_model("titanic", "logreg").adapter
    bg = background_data(titanic["train"], SMALL)
    test = titanic["test"]
    first = explain_tabular(adapter, test, ROWS[:3], bg, SMALL, store=tmp_store)
    # The same three rows, placed at positions 7..9 of another bundle (as an upload's split would).
    shifted = DataBundle(kind=test.kind, x=test.x[ROWS[:3]], y=test.y[ROWS[:3]], class_names=test.class_names,
                         feature_names=test.feature_names, index=np.array([7, 8, 9]))
    second = explain_tabular(adapter, shifted, None, bg, SMALL, store=tmp_store)
    assert tmp_store.stats().hits == 1  # served from the cache...
    np.testing.assert_array_equal(second.values, first.values)
    np.testing.assert_array_equal(second.rows, [7, 8, 9])  # ...but with these rows' own indices
    np.testing.assert_array_equal(first.rows, np.asarray(test.index)[ROWS[:3]])


# -- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"algorithm": "deep"}, "The 'algorithm' parameter of ShapParams must be a str among"),
        ({"background": "median"}, "The 'background' parameter of ShapParams must be a str among"),
        ({"background_size": 0}, "The 'background_size' parameter of ShapParams must be an int >= 1. Got 0 instead."),
        ({"batch_size": 2.5}, "The 'batch_size' parameter of ShapParams must be an int >= 1."),
        ({"seed": -1}, "The 'seed' parameter of ShapParams must be an int >= 0. Got -1 instead."),
    ],
)
def test_param_validation(kwargs, message):
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ShapParams(**kwargs)


def test_bad_target_algorithm_and_input(cancer, tmp_store):
    adapter = scenarios.load_model("breast-cancer", "logreg").adapter
    bg = background_data(cancer["train"], SMALL)
    with pytest.raises(ParameterError, match=r"must be in 0\.\.1; got \[5\]"):
        explain_tabular(adapter, cancer["test"], [0], bg, SMALL, target=5, store=tmp_store)
    with pytest.raises(ParameterError, match="'exact' algorithm evaluates 2\\*\\*d coalitions; got d=30"):
        explain_tabular(adapter, cancer["test"], [0], bg, ShapParams(algorithm="exact"), store=tmp_store)
    with pytest.raises(ParameterError, match="needs a scikit-learn tree model"):
        explain_tabular(adapter, cancer["test"], [0], bg, ShapParams(algorithm="tree"), store=tmp_store)
    with pytest.raises(InputShapeError, match="background has 3 features"):
        explain_tabular(adapter, cancer["test"], [0], bg.data[:, :3], SMALL, store=tmp_store)


# -- CLI -------------------------------------------------------------------------------------
def test_cli_json(titanic, capsys):
    from core.cli import main

    assert main(["shap", "titanic", "--model", "gboost", "--index", "2", "--background-size", "20",
                 "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)  # the common JSON of `explain` (tests/core/test_cli_explain.py)
    assert out["scenario"] == "titanic" and out["model"] == "gboost" and out["index"] == 2 and out["method"] == "shap"
    details, values = out["details"], {a["feature"]: a["value"] for a in out["attributions"]}
    assert details["algorithm"] == "tree" and out["target"] in ("died", "survived")
    assert sorted(values) == sorted(titanic["test"].feature_names) == sorted(details["feature_values"])
    assert details["base_value"] + sum(values.values()) == pytest.approx(details["output"], abs=1e-6)
    assert abs(details["additivity_error"]) < 1e-6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["shap", "breast-cancer", "--index", "100000"], "valid indices are 0 to"),
        (["shap", "digits", "--index", "0"], "breast-cancer, titanic"),
        (["shap", "breast-cancer", "--index", "0", "--algorithm", "deep"], "'algorithm' parameter"),
    ],
)
def test_cli_errors_exit_1(argv, message, capsys):
    from core.cli import main

    assert main([*argv, "--quiet"]) == 1
    assert message in capsys.readouterr().err
