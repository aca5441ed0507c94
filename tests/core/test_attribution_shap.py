"""Expected gradients (image SHAP): equal to shap's GradientExplainer for the same background and seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

shap = pytest.importorskip("shap")

from core.attribution import ImageContext, explain_images  # noqa: E402
from core.attribution.expected_gradients import ExpectedGradientsParams, background_subset  # noqa: E402
from core.errors import ParameterError  # noqa: E402
from tests.core.attribution_support import assert_close, images, tiny_cnn  # noqa: E402


def test_equals_shap_gradient_explainer_with_the_same_background_and_seed(tmp_store):
    adapter = tiny_cnn(seed=4, size=10, n_classes=4, sharpen=10)
    module = adapter.torch_module()
    pool = images(40, size=10, seed=5)
    x = images(3, size=10, seed=6)
    target = np.array([0, 3, 1])
    params = ExpectedGradientsParams(samples=64, background_size=25, seed=7)
    ours = explain_images(adapter, x, target, "expected_gradients", params, batch_size=50, store=tmp_store,
                          context=ImageContext(background=pool))
    background = torch.as_tensor(background_subset(pool, 25, 7))
    explainer = shap.GradientExplainer(module, background)
    values = explainer.shap_values(torch.as_tensor(x), nsamples=64, rseed=7)
    values = np.stack(values, axis=-1) if isinstance(values, list) else np.asarray(values)  # (n, C, H, W, classes)
    theirs = np.stack([values[i, ..., target[i]] for i in range(3)])
    assert_close(ours.maps, theirs)


def test_efficiency_holds_in_expectation(tmp_store):
    """Sum of values ~ f(x) - mean f(background), closer with more samples."""
    adapter = tiny_cnn(seed=1, sharpen=30)
    pool = images(30, seed=3)
    x = images(4, seed=2)
    target = adapter.predict(x)
    gaps = []
    for samples in (20, 2000):
        result = explain_images(adapter, x, target, "expected_gradients",
                                ExpectedGradientsParams(samples=samples, background_size=30),
                                store=tmp_store, context=ImageContext(background=pool))
        e = result.extras
        np.testing.assert_allclose(e["efficiency_gap"], e["attribution_sum"] - (e["output"] - e["base_value"]))
        gaps.append(np.abs(e["efficiency_gap"]).mean() / np.abs(e["output"] - e["base_value"]).mean())
    assert gaps[1] < 0.05 and gaps[1] < gaps[0], gaps


def test_needs_a_background(tmp_store):
    with pytest.raises(ParameterError, match="background"):
        explain_images(tiny_cnn(), images(1), np.zeros(1, int), "expected_gradients", store=tmp_store,
                       context=ImageContext())


def test_background_subset_is_seeded_and_distinct():
    pool = images(50, seed=1)
    a, b = background_subset(pool, 10, 3), background_subset(pool, 10, 3)
    np.testing.assert_array_equal(a, b)
    assert len({arr.tobytes() for arr in a}) == 10
    assert not np.array_equal(a, background_subset(pool, 10, 4))
    assert len(background_subset(pool, 100, 0)) == 50
