"""core.uncertainty: the metrics' invariants, peers as oracles, members, MC dropout, Bayes, stress sets, report."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputShapeError, ParameterError, UnknownNameError
from core.uncertainty import metrics


def dirichlet(k: int, n: int, c: int, seed: int = 0, alpha: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(c, alpha), size=(k, n))


# -- metrics ------------------------------------------------------------------------------------
def test_identical_members_have_zero_mutual_information_and_full_agreement():
    one = dirichlet(1, 50, 4)[0]
    proba = np.stack([one] * 5)
    scores = metrics.uncertainty_scores(proba)
    np.testing.assert_allclose(scores["mutual_information"], 0.0, atol=1e-12)
    np.testing.assert_allclose(scores["class_variance"], 0.0, atol=1e-15)
    np.testing.assert_array_equal(scores["vote_disagreement"], 0.0)
    np.testing.assert_allclose(scores["predictive_entropy"], metrics.entropy(one))
    np.testing.assert_array_equal(metrics.agreement_matrix(proba), np.ones((5, 5)))


def test_entropy_decomposition_adds_up_and_epistemic_part_is_not_negative():
    proba = dirichlet(7, 300, 10, seed=1)
    s = metrics.uncertainty_scores(proba)
    np.testing.assert_allclose(s["predictive_entropy"], s["expected_entropy"] + s["mutual_information"], atol=1e-12)
    assert s["mutual_information"].min() > -1e-12  # Jensen: the entropy of the mean is at least the mean entropy
    assert s["mutual_information"].max() > 0.1  # disagreeing random members: clearly positive
    assert (s["predictive_entropy"] <= np.log(10) + 1e-12).all()


def test_scores_match_scipy_entropy():
    from scipy.stats import entropy as scipy_entropy

    proba = dirichlet(4, 40, 6, seed=2)
    s = metrics.uncertainty_scores(proba)
    np.testing.assert_allclose(s["predictive_entropy"], scipy_entropy(proba.mean(axis=0), axis=1), rtol=1e-12)
    np.testing.assert_allclose(s["expected_entropy"], scipy_entropy(proba, axis=2).mean(axis=0), rtol=1e-12)


def test_member_order_does_not_matter():
    proba = dirichlet(6, 200, 5, seed=3)
    proba[2, :20] = proba[4, :20]  # exact ties for max-confidence ensembling
    order = np.random.default_rng(0).permutation(6)
    a, b = metrics.uncertainty_scores(proba), metrics.uncertainty_scores(proba[order])
    for name in metrics.SCORES:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(metrics.max_confidence_prediction(proba), metrics.max_confidence_prediction(proba[order]))
    np.testing.assert_allclose(metrics.mean_prediction(proba), metrics.mean_prediction(proba[order]), rtol=1e-12)
    np.testing.assert_array_equal(metrics.agreement_matrix(proba)[np.ix_(order, order)],
                                  metrics.agreement_matrix(proba[order]))


def test_max_confidence_takes_the_surest_member_and_votes_count():
    proba = np.array([[[0.6, 0.4], [0.2, 0.8]],
                      [[0.1, 0.9], [0.3, 0.7]],
                      [[0.55, 0.45], [0.45, 0.55]]])
    np.testing.assert_allclose(metrics.max_confidence_prediction(proba), [[0.1, 0.9], [0.2, 0.8]])
    s = metrics.uncertainty_scores(proba)
    np.testing.assert_allclose(s["vote_disagreement"], [1 - 2 / 3, 0.0])
    mean = proba.mean(axis=0)
    np.testing.assert_allclose(s["class_variance"][0], np.var(proba[:, 0, mean[0].argmax()]))
    np.testing.assert_allclose(metrics.agreement_matrix(proba), [[1, 0.5, 1], [0.5, 1, 0.5], [1, 0.5, 1]])


def test_auroc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    for _ in range(5):
        scores = rng.integers(0, 6, size=400).astype(float)  # many ties
        labels = rng.random(400) < 0.3
        assert metrics.auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert np.isnan(metrics.auroc([1.0, 2.0], [False, False]))
    assert np.isnan(metrics.auroc([1.0, 2.0], [True, True]))
    assert np.isnan(metrics.auroc([1.0, np.nan, 3.0], [False, True, True]))
    assert metrics.auroc([0.1, 0.9], [False, True]) == 1.0
    # infinite scores keep their place in the order (roc_auc_score itself refuses them)
    assert metrics.auroc([0.1, np.inf, 0.5, -np.inf], [False, True, True, False]) == 1.0
    assert metrics.auroc([np.inf, np.inf, 0.5], [False, True, False]) == 0.75


@pytest.mark.parametrize("bad, error", [
    (np.ones((3, 4)), InputShapeError),
    (np.full((2, 3, 2), 0.7), ParameterError),
    (np.full((2, 3, 2), np.nan), ParameterError),
    (np.stack([np.tile([[2.0, -1.0]], (3, 1))] * 2), ParameterError),
])
def test_bad_member_probabilities_raise_clear_errors(bad, error):
    with pytest.raises(error, match="uncertainty"):
        metrics.uncertainty_scores(bad)


def test_unknown_aggregation_names_the_choices():
    with pytest.raises(ParameterError) as info:
        metrics.aggregate(dirichlet(2, 3, 2), "median")
    assert "median" in str(info.value) and "mean, max" in str(info.value)


# -- MC dropout ----------------------------------------------------------------------------------
def tiny_cnn_adapter(seed: int = 0):
    import torch

    from core import nets
    from core.adapters.torch_adapter import TorchAdapter

    torch.manual_seed(seed)
    module = nets.image_cnn(8, 8, widths=(4, 8), hidden=16)
    return TorchAdapter(module, name="tiny", class_names=[str(i) for i in range(10)], input_kind="image", device="cpu")


def test_mc_dropout_with_dropout_disabled_reproduces_the_deterministic_model():
    from core.uncertainty.members import mc_dropout_module, stochastic_passes

    adapter = tiny_cnn_adapter()
    x = np.random.default_rng(0).random((37, 1, 8, 8)).astype(np.float32)
    off = stochastic_passes(mc_dropout_module(adapter.torch_module(), rate=0.0), adapter.to_tensor, x, 4, batch_size=8)
    expected = adapter.predict_proba(x)
    for sample in off:
        np.testing.assert_allclose(sample, expected, atol=1e-6)
    on = stochastic_passes(mc_dropout_module(adapter.torch_module()), adapter.to_tensor, x, 4, batch_size=8, seed=3)
    assert np.abs(on[0] - on[1]).max() > 1e-3  # dropout on: passes differ
    assert not adapter.torch_module().training  # the shared module was never switched to training mode
    assert not any(m.training for m in adapter.torch_module().modules())


def test_mc_dropout_is_reproducible_for_a_seed_and_batch_size():
    from core.uncertainty.members import mc_dropout_module, stochastic_passes

    adapter = tiny_cnn_adapter()
    x = np.random.default_rng(1).random((20, 1, 8, 8)).astype(np.float32)
    module = mc_dropout_module(adapter.torch_module())
    a = stochastic_passes(module, adapter.to_tensor, x, 3, batch_size=8, seed=5)
    b = stochastic_passes(module, adapter.to_tensor, x, 3, batch_size=8, seed=5)
    c = stochastic_passes(module, adapter.to_tensor, x, 3, batch_size=8, seed=6)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4
    np.testing.assert_allclose(a.sum(axis=2), 1.0, atol=1e-5)


def test_mc_dropout_needs_dropout_layers():
    import torch

    from core.uncertainty.members import mc_dropout_module

    with pytest.raises(ParameterError, match="dropout layers"):
        mc_dropout_module(torch.nn.Sequential(torch.nn.Linear(3, 2)))
    with pytest.raises(ParameterError, match="rate"):
        mc_dropout_module(tiny_cnn_adapter().torch_module(), rate=1.5)


# -- FGSM ------------------------------------------------------------------------------------------
def test_fgsm_matches_the_analytic_gradient_sign_of_a_linear_model(tmp_store):
    import torch

    from core.adapters.torch_adapter import TorchAdapter
    from core.trust.adversarial import fgsm

    torch.manual_seed(0)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    adapter = TorchAdapter(linear, name="linear", class_names=["a", "b", "c"], input_kind="image", device="cpu")
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, size=(10, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=10)
    eps = 0.05
    adv = fgsm(adapter, x, y, eps, batch_size=3, store=tmp_store)
    w = linear[1].weight.detach().numpy().astype(np.float64)
    logits = x.reshape(10, -1) @ w.T + linear[1].bias.detach().numpy()
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = (p - np.eye(3)[y]) @ w  # d CE / d x for logits W x + b
    np.testing.assert_allclose(adv.reshape(10, -1), x.reshape(10, -1) + eps * np.sign(grad), atol=1e-6)
    assert (adapter.predict_proba(adv)[np.arange(10), y] < adapter.predict_proba(x)[np.arange(10), y]).all()
    np.testing.assert_array_equal(fgsm(adapter, x, y, 0.0, store=tmp_store), x)
    big = fgsm(adapter, x, y, 5.0, store=tmp_store)
    assert big.min() >= 0.0 and big.max() <= 1.0


@pytest.mark.parametrize("eps", [-0.1, float("nan"), "big"])
def test_fgsm_rejects_bad_epsilon(eps, tmp_store):
    from core.trust.adversarial import fgsm

    with pytest.raises(ParameterError, match="epsilon"):
        fgsm(tiny_cnn_adapter(), np.zeros((2, 1, 8, 8), np.float32), [0, 1], eps, store=tmp_store)


def test_fgsm_needs_a_torch_model(tmp_store):
    from core import scenarios
    from core.trust.adversarial import fgsm

    logreg = scenarios.load_model("digits", "logreg").adapter
    with pytest.raises(ParameterError, match="torch"):
        fgsm(logreg, np.zeros((1, 1, 8, 8), np.float32), [0], 0.1, store=tmp_store)


# -- Bayes by backprop -------------------------------------------------------------------------------
def test_bayes_layer_kl_matches_torch_distributions():
    import torch
    from torch.distributions import Normal, kl_divergence

    from core.uncertainty.bayes import BayesLinear

    torch.manual_seed(0)
    layer = BayesLinear(5, 3)
    with torch.no_grad():
        layer.weight_rho.uniform_(-3, 0)
        layer.bias_rho.uniform_(-3, 0)
    sp = torch.nn.functional.softplus
    expected = sum(kl_divergence(Normal(mu, sp(rho)), Normal(0.0, 0.3)).sum()
                   for mu, rho in ((layer.weight_mu, layer.weight_rho), (layer.bias_mu, layer.bias_rho)))
    assert layer.kl(0.3).item() == pytest.approx(expected.item(), rel=1e-5)


def test_bayes_network_samples_weights_only_in_sampling_mode():
    import torch

    from core.uncertainty.bayes import bayes_cnn, set_sampling

    torch.manual_seed(0)
    net = bayes_cnn(8, 8, widths=(4, 8), hidden=16).eval()
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
        set_sampling(net, True)
        assert not torch.equal(net(x), net(x))
        set_sampling(net, False)
        assert torch.equal(net(x), net(x))


# -- members and sources (tiny recipes) ------------------------------------------------------------
TINY = {"epochs": 2}


@pytest.mark.slow  # 23 s: trains ensemble members
def test_deep_ensemble_members_differ_train_once_and_load_from_cache(tmp_store):
    from core.uncertainty import members

    members.forget_members()
    assert not members.members_trained("digits", "cnn", None, "deep", 2, TINY, store=tmp_store)
    first = members.ensemble_members("digits", "cnn", None, "deep", 2, overrides=TINY, store=tmp_store)
    assert [m.trained_now for m in first] == [True] * 2
    assert len({m.adapter.fingerprint for m in first}) == 2
    assert all(m.test_accuracy > 0.6 for m in first)
    assert members.members_trained("digits", "cnn", None, "deep", 2, TINY, store=tmp_store)
    members.forget_members()
    again = members.ensemble_members("digits", "cnn", None, "deep", 2, overrides=TINY, store=tmp_store)
    assert [m.trained_now for m in again] == [False] * 2
    assert [m.adapter.fingerprint for m in again] == [m.adapter.fingerprint for m in first]
    more = members.ensemble_members("digits", "cnn", None, "deep", 3, overrides=TINY, store=tmp_store)
    assert [m.trained_now for m in more] == [False, False, True]  # only the new member trains
    assert more[2].adapter.fingerprint not in {m.adapter.fingerprint for m in first}


def test_bootstrap_members_see_different_resamples_and_bagging_works_for_sklearn(tmp_store):
    from core.uncertainty import members

    rows0, rows1 = members.resample_rows(100, 0), members.resample_rows(100, 1)
    assert len(np.unique(rows0)) < 100 and not np.array_equal(rows0, rows1)
    np.testing.assert_array_equal(rows0, members.resample_rows(100, 0))
    bag = members.ensemble_members("digits", "logreg", None, "bootstrap", 2, store=tmp_store)
    assert bag[0].adapter.fingerprint != bag[1].adapter.fingerprint
    assert all(m.test_accuracy > 0.85 for m in bag)
    with pytest.raises(ParameterError, match="identical members"):
        members.ensemble_members("digits", "logreg", None, "deep", 2, store=tmp_store)
    with pytest.raises(UnknownNameError):
        members.ensemble_members("digits", "cnn", None, "boosted", 2, store=tmp_store)


@pytest.mark.slow  # 15 s: trains two ensemble members into its own store (45 s when the session trains the CNN)
def test_sources_give_member_probabilities_and_batch_size_does_not_matter(tmp_path):
    from core import scenarios
    from core.uncertainty import load_source
    from tests.conftest import store_with_models

    tmp_store = store_with_models(tmp_path / "cache", "digits", ["cnn"])  # MC dropout's model: trained once per session

    test = scenarios.load_data("digits")["test"][:60]
    deep = load_source("digits", "cnn", None, "deep", 2, overrides=TINY, store=tmp_store)
    p = deep.probabilities(test, batch_size=7, store=tmp_store)
    assert p.shape == (2, 60, 10)
    np.testing.assert_allclose(p[1], deep.adapters[1].predict_proba(test.x), atol=1e-6)
    mc = load_source("digits", "cnn", None, "mc_dropout", 5, store=tmp_store)
    a = mc.probabilities(test, batch_size=60, store=tmp_store)
    assert a.shape == (5, 60, 10) and np.abs(a[0] - a[1]).max() > 1e-4
    off = load_source("digits", "cnn", None, "mc_dropout", 3, dropout_rate=0.0, store=tmp_store)
    np.testing.assert_allclose(off.probabilities(test, store=tmp_store)[2], mc.adapters[0].predict_proba(test.x), atol=1e-5)
    with pytest.raises(ParameterError, match="does not apply"):
        load_source("digits", "logreg", None, "mc_dropout", 3, store=tmp_store)
    with pytest.raises(UnknownNameError):
        load_source("digits", "cnn", None, "laplace", 3, store=tmp_store)


@pytest.mark.slow  # 25 s: trains a Bayes-by-backprop network
def test_bayes_source_samples_a_predictive_distribution(tmp_store):
    from core import scenarios
    from core.uncertainty import load_source

    test = scenarios.load_data("digits")["test"][:50]
    bayes = load_source("digits", "cnn", None, "bayes", 6, overrides={"epochs": 3}, store=tmp_store)
    p = bayes.probabilities(test, store=tmp_store)
    assert p.shape == (6, 50, 10)
    assert np.abs(p[0] - p[1]).max() > 1e-4  # weight samples differ
    np.testing.assert_array_equal(p, bayes.probabilities(test, store=tmp_store))  # cached: the same draws
    assert bayes.member_accuracy[0] > 0.3


# -- stress sets and report --------------------------------------------------------------------------
@pytest.mark.slow  # 7 s: trains ensemble members
def test_digits_stress_sets_and_report(tmp_store):
    from tests.conftest import require_dataset
    from core.uncertainty import load_source
    from core.uncertainty.report import uncertainty_report
    from core.uncertainty.stress import mnist_as_digits

    source = load_source("digits", "cnn", None, "deep", 2, overrides=TINY, store=tmp_store)
    report = uncertainty_report(source, epsilon=0.2, n_ood=80, autoencoder=False, store=tmp_store)
    names = [r.name for r in report.sets]
    assert names[:3] == ["clean", "fgsm", "noise"]
    fgsm = report.get("fgsm")
    clean = report.get("clean")
    assert len(fgsm.set.bundle) == 80  # the first n_ood test images, as for the OOD sets
    assert np.abs(fgsm.set.bundle.x - clean.set.bundle.x[:80]).max() <= 0.2 + 1e-6
    np.testing.assert_array_equal(fgsm.y, clean.y[:80])
    assert fgsm.accuracy("mean") < np.mean(clean.mean[:80].argmax(axis=1) == clean.y[:80])  # the attack hurts
    noise = report.get("noise")
    assert noise.y is None and np.isnan(noise.accuracy())
    assert noise.shift_auroc["predictive_entropy"] > 0.8  # noise is easy to tell from digits
    rows = report.rows()
    assert [r["set"] for r in rows] == names
    for row in rows:
        for value in [*row["error_auroc"].values(), *row["ood_auroc"].values()]:
            assert value is None or 0.0 <= value <= 1.0
    assert report.agreement.shape == (2, 2) and np.allclose(np.diag(report.agreement), 1)
    with pytest.raises(ParameterError, match="No stress set"):
        report.get("rotated")
    x = np.zeros((2, 1, 28, 28), np.float32)
    x[:, :, 10:18, 12:16] = 0.5
    small = mnist_as_digits(x)
    assert small.shape == (2, 1, 8, 8) and small.max() == pytest.approx(1.0)
    require_dataset("mnist")
    assert "mnist_downscaled" in names


def test_autoencoder_reconstructs_digits_better_than_noise(tmp_store):
    from core import scenarios
    from core.bundle import DataBundle
    from core.uncertainty.sources import autoencoder_scores

    test = scenarios.load_data("digits")["test"][:100]
    noise = DataBundle("image", np.random.default_rng(0).random((100, 1, 8, 8)).astype(np.float32), None, test.class_names)
    errors = autoencoder_scores("digits", None, {"clean": test, "noise": noise}, overrides={"epochs": 5}, store=tmp_store)
    assert errors["clean"].shape == (100,)
    assert np.median(errors["noise"]) > 3 * np.median(errors["clean"])


# -- CLI -------------------------------------------------------------------------------------------
@pytest.mark.slow  # 209 s: the CLI trains a 5-member deep ensemble of digits CNNs
def test_cli_prints_the_per_set_table_as_json(capsys):
    import json

    from core.cli import main

    code = main(["uncertainty", "digits", "--members", "2", "--mc-samples", "4", "--n-ood", "60", "--no-autoencoder",
                 "--json", "--quiet"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in out["reports"]] == ["deep", "mc_dropout"]
    deep = out["reports"][0]
    assert deep["n_members"] == 2 and len(deep["member_accuracy"]) == 2
    sets = {row["set"]: row for row in deep["sets"]}
    assert {"clean", "fgsm", "noise"} <= set(sets)
    assert sets["clean"]["accuracy_mean"] > 0.9 and sets["fgsm"]["accuracy_max"] is not None
    assert sets["noise"]["accuracy_mean"] is None and sets["noise"]["n"] == 60
    assert set(sets["fgsm"]["ood_auroc"]) == {"one_minus_confidence", "predictive_entropy", "expected_entropy",
                                              "mutual_information", "class_variance", "vote_disagreement"}


def test_cli_rejects_a_non_image_scenario_and_a_bad_member_count(capsys):
    from core.cli import main

    assert main(["uncertainty", "breast-cancer", "--json"]) == 1
    assert "image" in capsys.readouterr().err
    assert main(["uncertainty", "digits", "--members", "0", "--json"]) == 1
    assert "'members'" in capsys.readouterr().err
