"""Sanity checks: randomisation, faithfulness, agreement and stability of image attributions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import ConstantInputWarning, spearmanr
from torch import nn

from core.attribution import ImageContext
from core.attribution.base import METHODS, Method, MethodResult
from core.cli import main
from core.trust.sanity import (
    agreement,
    faithfulness_curves,
    map_similarity,
    max_sensitivity,
    parameter_layers,
    randomization_test,
    randomized_module,
    seed_stability,
    spearman,
    ssim,
    top_k_overlap,
)
from tests.core.attribution_support import adapter_of, images, tiny_cnn
from tests.core.models_support import holdout, load


@pytest.fixture
def edge_method():
    """A 'method' that ignores the model: the gradient magnitude of the image itself (Sobel-like)."""

    def run(adapter, x, target, params, *, batch_size, progress=None, context=None):
        gy, gx = np.gradient(x, axis=(2, 3))
        return MethodResult(np.sqrt(gx ** 2 + gy ** 2).astype(np.float32))

    from core.attribution.gradients import NoParams

    METHODS["edges"] = Method("edges", "Edge detector", NoParams, run, lambda a: None, lambda p: False, "logit", False)
    yield "edges"
    del METHODS["edges"]


def test_spearman_equals_scipy_and_is_nan_on_constant_rows():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 30)), rng.normal(size=(4, 30))
    b[1] = a[1] * 3 + 1
    b[2] = np.round(b[2])  # ties share their mean rank
    expected = [spearmanr(x, y).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(spearman(a, b), expected, rtol=0, atol=1e-12)
    assert spearman(a[0], b[0]).shape == (1,)  # two vectors: one row
    # A constant ranking has no correlation, not even with itself (scipy says NaN too).
    zero = np.zeros((2, 5))
    assert np.isnan(spearman(zero, zero)).all()
    assert np.isnan(spearman(zero, np.arange(10.0).reshape(2, 5))).all()
    assert np.isnan(spearman([1.0, np.nan, 2.0], [1.0, 2.0, 3.0])).all()
    assert np.isnan(spearman(np.zeros((1, 0)), np.zeros((1, 0)))).all()
    with pytest.warns(ConstantInputWarning):
        assert np.isnan(spearmanr(zero[0], np.arange(5.0)).statistic)


def test_randomization_mean_skips_a_stage_constant_map():
    from core.trust.sanity import RandomizationResult

    rho = np.array([[1.0, 1.0], [0.4, np.nan], [np.nan, np.nan]])  # stage 1: input 1's map went blank
    r = RandomizationResult("grad_cam", "cascading", ("original", "a", "b"), np.zeros((3, 2, 2, 2)),
                            {"spearman": rho}, degenerate=np.array([[False, False], [False, True], [True, True]]))
    np.testing.assert_allclose(r.mean(), [1.0, 0.4, np.nan])


def test_map_similarity_of_a_map_with_itself_is_one_and_falls_for_noise():
    maps = images(3, size=12)[:, 0]
    same = map_similarity(maps, maps)
    for metric in ("spearman", "ssim", "top_k"):
        np.testing.assert_allclose(same[metric], 1.0)
    other = map_similarity(maps, images(3, size=12, seed=9)[:, 0])
    assert (other["spearman"] < 0.5).all() and (other["ssim"] < 0.5).all() and (other["top_k"] < 0.5).all()
    assert top_k_overlap(np.array([[5.0, 4, 0, 0, 0, 0, 0, 0, 0, 0]]), np.array([[5.0, 0, 0, 0, 0, 0, 0, 0, 0, 1]]))[0] == 1.0
    assert ssim(maps, maps * 2 + 1)[0] == pytest.approx(1.0)  # scaled to [0, 1] first


def test_randomized_copy_leaves_the_original_alone_and_is_seeded():
    adapter = tiny_cnn()
    module = adapter.torch_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    assert parameter_layers(module) == ["conv1", "conv2", "fc1", "fc2"]
    a, b = randomized_module(module, ["fc2", "fc1"], 3), randomized_module(module, ["fc2", "fc1"], 3)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert torch.equal(a.fc2.weight, b.fc2.weight) and not torch.equal(a.fc2.weight, module.fc2.weight)
    assert torch.equal(a.conv1.weight, module.conv1.weight)


@pytest.mark.slow  # MNIST's CNN (52 s to train)
def test_a_method_that_ignores_the_model_fails_and_the_gradient_passes_on_the_mnist_cnn(edge_method, tmp_store):
    adapter = load("mnist", "cnn").adapter
    x = np.asarray(holdout("mnist").x[:6], dtype=np.float32)
    target = adapter.predict(x)
    results = randomization_test(adapter, x, target, {"gradient": None, edge_method: None}, store=tmp_store)
    edges, gradient = results[edge_method], results["gradient"]
    assert edges.stages == gradient.stages == ("original", "up to fc2", "up to fc1", "up to conv2", "up to conv1")
    np.testing.assert_allclose(edges.mean(), 1.0)  # identical maps at every stage
    assert edges.verdict().startswith("fails")
    assert gradient.mean()[-1] < 0.3 and gradient.verdict().startswith("passes")
    assert gradient.heatmaps.shape == (5, 6, 28, 28)
    independent = randomization_test(adapter, x, target, {"gradient": None}, mode="independent", store=tmp_store)
    assert independent["gradient"].stages[1:] == ("fc2", "fc1", "conv2", "conv1")


def test_deletion_by_true_relevance_beats_random_deletion_on_a_linear_model():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        module[1].weight[0] = torch.randn(64).abs() * 0.8  # class 0: every pixel is evidence for it
        module[1].weight[1] = 0.0
        module[1].bias.zero_()
    adapter = adapter_of(module, 2)
    x = images(5)
    target = np.zeros(5, dtype=int)
    relevance = (module[1].weight[0].detach().numpy().reshape(8, 8) * x[:, 0])  # exact contribution of each pixel
    curves = faithfulness_curves(adapter, x, target, relevance, steps=16, random_orders=5)
    areas = curves.areas()
    assert areas["deletion"] < areas["deletion_random"] < areas["deletion_least"]
    assert areas["insertion"] > areas["insertion_random"]
    assert curves.verdict().startswith("faithful")
    # The curves start at the model's probability and end at the fill's.
    p = adapter.predict_proba(x)[:, 0]
    np.testing.assert_allclose(curves.curves["deletion"][:, 0], p)
    np.testing.assert_allclose(curves.curves["insertion"][:, -1], p)
    np.testing.assert_allclose(curves.curves["deletion"][:, -1], 0.5)  # all black: logits equal
    anti = faithfulness_curves(adapter, x, target, -relevance, steps=16, random_orders=5)
    assert anti.verdict().startswith("does not beat random")


def test_agreement_of_a_method_with_itself_is_one():
    maps = {"a": images(4)[:, 0], "b": images(4, seed=3)[:, 0], "c": -images(4)[:, 0]}
    names, rho, top = agreement(maps)
    assert names == ["a", "b", "c"] and rho.shape == (3, 3, 4)
    np.testing.assert_allclose(rho[np.arange(3), np.arange(3)], 1.0)
    np.testing.assert_allclose(top[np.arange(3), np.arange(3)], 1.0)
    np.testing.assert_allclose(rho[0, 2], 1.0)  # |values| are compared: a sign flip agrees
    np.testing.assert_allclose(rho, rho.transpose(1, 0, 2))
    assert (np.abs(rho[0, 1]) < 0.5).all()


def test_stability_measures(tmp_store):
    adapter = tiny_cnn(sharpen=10)
    x = images(3)
    target = adapter.predict(x)
    context = ImageContext(background=images(10, seed=4))
    still = max_sensitivity(adapter, x, target, "gradient_x_input", radius=0.0, samples=3, store=tmp_store, context=context)
    np.testing.assert_allclose(still, 0.0, atol=1e-6)
    moved = max_sensitivity(adapter, x, target, "gradient_x_input", radius=0.1, samples=4, store=tmp_store, context=context)
    assert (moved > 0.01).all()
    from core.attribution.gradients import SmoothGradParams

    few = seed_stability(adapter, x, target, "smoothgrad", SmoothGradParams(samples=3), seeds=3, store=tmp_store)
    many = seed_stability(adapter, x, target, "smoothgrad", SmoothGradParams(samples=100), seeds=3, store=tmp_store)
    assert (many > few).all() and (many > 0.9).all()
    from core.errors import ParameterError

    with pytest.raises(ParameterError, match="no random seed"):
        seed_stability(adapter, x, target, "gradient", store=tmp_store)


def test_randomization_needs_a_torch_model(tmp_store):
    from core.errors import ParameterError

    adapter = load("digits", "logreg").adapter
    x = np.asarray(holdout("digits").x[:2], dtype=np.float32)
    with pytest.raises(ParameterError, match="needs a torch model"):
        randomization_test(adapter, x, np.zeros(2, int), {"occlusion": None}, store=tmp_store)


def test_cli_prints_the_similarity_per_stage_and_the_areas(capsys):
    assert main(["sanity", "digits", "--method", "gradient", "--index", "2", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["stage"] for r in report["randomization"]][:2] == ["original", "up to fc2"]
    assert report["randomization"][0]["spearman"] == pytest.approx(1.0)
    assert set(report["faithfulness"]["areas"]) == {"deletion", "deletion_least", "insertion", "deletion_random",
                                                     "insertion_random"}
    assert report["randomization_verdict"].startswith(("passes", "fails"))


@pytest.mark.slow  # 55 s: trains the digits CNN on shuffled labels
def test_data_randomization_against_the_digits_cnn_trained_on_shuffled_labels(tmp_store, edge_method):
    from core import scenarios
    from core.trust.sanity import data_randomization_test

    real = load("digits", "cnn").adapter
    shuffled = scenarios.load_random_label_model("digits", "cnn")
    assert shuffled.metrics["test_accuracy"] < 0.2  # near chance (0.1): it learned nothing about digits
    assert shuffled.adapter.fingerprint != real.fingerprint
    x = np.asarray(holdout("digits").x[:8], dtype=np.float32)
    target = real.predict(x)
    results = data_randomization_test(real, shuffled.adapter, x, target, {"gradient": None, edge_method: None},
                                      store=tmp_store)
    np.testing.assert_allclose(results[edge_method].similarity["spearman"], 1.0)
    assert results[edge_method].verdict().startswith("fails")
    assert results["gradient"].similarity["spearman"].mean() < results[edge_method].similarity["spearman"].mean()
    assert results["gradient"].real.shape == results["gradient"].shuffled.shape == (8, 8, 8)


def test_verdicts_never_judge_degenerate_maps():
    from core.trust.sanity import DataRandomizationResult, FaithfulnessCurves, RandomizationResult, agreement

    n_stages, n = 3, 4
    spearman_values = np.full((n_stages, n), 0.1)
    spearman_values[0] = 1.0
    blank_original = np.zeros((n_stages, n), bool)
    blank_original[0] = True
    r = RandomizationResult("grad_cam", "cascading", ("original", "a", "b"), np.zeros((n_stages, n, 2, 2)),
                            {"spearman": spearman_values}, degenerate=blank_original)
    assert r.verdict().startswith("cannot judge") and np.isnan(r.mean()).all()
    some = blank_original.copy()
    some[0, 1:] = False
    r = RandomizationResult("grad_cam", "cascading", ("original", "a", "b"), np.zeros((n_stages, n, 2, 2)),
                            {"spearman": spearman_values}, degenerate=some)
    assert r.verdict().startswith("passes") and "1 of 4 inputs left out" in r.verdict()
    curves = {k: np.tile(np.linspace(1, 0, 5), (n, 1)) for k in
              ("deletion", "deletion_least", "insertion", "deletion_random", "insertion_random")}
    f = FaithfulnessCurves("grad_cam", np.linspace(0, 1, 5), curves, degenerate=np.ones(n, bool))
    assert f.verdict().startswith("cannot judge") and np.isnan(f.areas()["deletion"])
    flat = np.zeros((n, 3, 3))
    d = DataRandomizationResult("grad_cam", flat, np.random.default_rng(0).random((n, 3, 3)), {"spearman": np.zeros(n)})
    assert d.verdict().startswith("cannot judge")
    maps = np.random.default_rng(0).random((n, 3, 3))
    names, rho, top = agreement({"a": maps, "b": np.where(np.arange(n)[:, None, None] == 0, 0.0, maps)})
    assert np.isnan(rho[0, 1, 0]) and np.isnan(top[1, 0, 0]) and np.isnan(rho[1, 1, 0]) and rho[0, 1, 1] == 1.0


def test_stability_of_a_blank_map_is_not_a_number(tmp_store):
    from core.trust.sanity import max_sensitivity
    from tests.core.attribution_support import images, tiny_cnn

    adapter = tiny_cnn()
    x = images(2)
    x[0] = 0.0  # a black image: gradient x input is zero everywhere
    out = max_sensitivity(adapter, x, np.zeros(2, int), "gradient_x_input", samples=2, store=tmp_store)
    # The noisy copies are no longer black, so only the base map decides: NaN for the blank one.
    assert np.isnan(out[0]) and np.isfinite(out[1])
