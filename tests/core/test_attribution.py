"""Image attribution methods: analytic models, invariants, caching, errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from core.attribution import (
    ImageContext,
    MethodUnsupportedError,
    explain_grid,
    explain_images,
    get_method,
    method_names,
    resolve_targets,
    supported_methods,
)
from core.attribution.gradcam import default_layer, spatial_layers
from core.attribution.gradients import IntegratedGradientsParams, SmoothGradParams
from core.attribution.occlusion import OcclusionParams, occlusion_masks, window_starts
from core.attribution.torch_ops import gaussian_blur
from core.errors import ParameterError, UnknownNameError
from tests.core.attribution_support import (
    GRADIENT_METHODS,
    adapter_of,
    half_blind_model,
    hooks_left,
    images,
    tiny_cnn,
)

ALL_BUT_LRP = ["occlusion", *GRADIENT_METHODS]


def run(adapter, x, method, params=None, batch_size=64, target=None, store=None, context=None):
    spec = get_method(method)
    params = spec.params_type() if params is None else params
    target = adapter.predict(x) if target is None else target
    if context is None:
        background = np.random.default_rng(99).uniform(0, 1, size=(20, *x.shape[1:])).astype(np.float32)
        context = ImageContext(channel_mean=np.full(x.shape[1], 0.5), background=background)
    return explain_images(adapter, x, target, method, params, batch_size=batch_size, store=store, context=context)


def test_registry_lists_the_lecture_columns_in_order():
    names = method_names()
    assert names[:10] == ["occlusion", "lime", "gradient", "gradient_x_input", "smoothgrad", "guided_backprop",
                         "integrated_gradients", "expected_gradients", "grad_cam", "guided_grad_cam"]
    assert "lrp" in names


@pytest.mark.parametrize("method", ALL_BUT_LRP)
def test_ignored_pixels_get_zero_attribution(method, tmp_store):
    adapter, ignored = half_blind_model()
    x = images(4)
    params = OcclusionParams(window=2, stride=2) if method == "occlusion" else None
    result = run(adapter, x, method, params, store=tmp_store)
    heat = result.heatmap()
    assert heat.shape == (4, 8, 8)
    assert np.abs(heat[:, ignored]).max() == 0.0
    # ...and the pixels it does see get some attribution (the test would pass on all-zero maps otherwise).
    assert np.abs(heat[:, ~ignored]).max() > 1e-4


@pytest.mark.parametrize("baseline", ["black", "blurred", "noise"])
def test_integrated_gradients_is_complete_within_one_percent_at_200_steps(baseline, tmp_store):
    """On the trained digits CNN (measured: worst gap 0.25% / 0.07% / 0.36% of f(x) - f(baseline)
    over 40 test images). A freshly initialised net with max-pooling has rougher paths (up to 1.7%)."""
    from tests.core.models_support import holdout, load

    adapter = load("digits", "cnn").adapter
    x = np.asarray(holdout("digits").x[:40], dtype=np.float32)
    params = IntegratedGradientsParams(steps=200, baseline=baseline)
    result = run(adapter, x, "integrated_gradients", params, store=tmp_store)
    delta, total, gap = (result.extras[k] for k in ("output_delta", "attribution_sum", "completeness_gap"))
    np.testing.assert_allclose(gap, total - delta)
    np.testing.assert_allclose(total, result.maps.reshape(len(x), -1).sum(axis=1), rtol=1e-5)
    # The delta is recomputed here from plain forward passes, not trusted from the method.
    from core.attribution.gradients import ig_baseline

    module = adapter.torch_module()
    with torch.no_grad():
        rows = np.arange(len(x))
        logits = module(torch.as_tensor(x)).numpy()[rows, result.target]
        base_logits = module(torch.as_tensor(ig_baseline(x, params))).numpy()[rows, result.target]
    np.testing.assert_allclose(delta, logits - base_logits, rtol=1e-4, atol=1e-5)
    big = np.abs(delta) > 0.05  # 1% of a tiny delta would be a float32 rounding test
    assert big.sum() >= 30, delta
    assert np.all(np.abs(gap[big]) <= 0.01 * np.abs(delta[big])), np.abs(gap) / np.abs(delta)


@pytest.mark.parametrize("method", ALL_BUT_LRP + ["lrp", "lime"])
def test_batch_size_does_not_change_the_result(method, tmp_store):
    adapter = tiny_cnn(seed=3, size=10, sharpen=30)
    x = images(5, size=10, seed=4)
    params = SmoothGradParams(samples=7) if method == "smoothgrad" else None
    small = run(adapter, x, method, params, batch_size=3, store=tmp_store)
    tmp_store.clear()
    large = run(adapter, x, method, params, batch_size=256, store=tmp_store)
    assert tmp_store.stats().misses == 2  # really computed twice, not served from the cache
    np.testing.assert_allclose(small.maps, large.maps, rtol=1e-5, atol=1e-5 * np.abs(large.maps).max())
    for key in small.extras:
        np.testing.assert_allclose(small.extras[key], large.extras[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ALL_BUT_LRP)
def test_no_hooks_are_left_after_success_or_failure(method, tmp_store):
    adapter = tiny_cnn(seed=0)
    module = adapter.torch_module()
    x = images(3)
    run(adapter, x, method, store=tmp_store)
    assert hooks_left(module) == []

    class Boom(nn.Module):
        armed = False

        def forward(self, z):
            if Boom.armed:
                raise RuntimeError("boom")
            return z

    # A layer after the last ReLU that fails once armed: hooks registered before it must go.
    module.fc2 = nn.Sequential(module.fc2, Boom())
    failing = adapter_of(module)
    Boom.armed = True
    with pytest.raises(RuntimeError, match="boom"):
        run(failing, x, method, target=np.zeros(3, dtype=int), store=tmp_store)
    assert hooks_left(module) == []


def test_parameters_never_accumulate_gradients(tmp_store):
    adapter = tiny_cnn()
    for method in ALL_BUT_LRP:
        run(adapter, images(2), method, store=tmp_store)
    assert all(p.grad is None for p in adapter.torch_module().parameters())


def test_guided_backprop_does_not_leak_into_other_threads_forward_passes(tmp_store):
    """Adapters are shared by sessions: a plain gradient taken by another thread while Guided
    Backprop runs must stay a plain gradient."""
    adapter = tiny_cnn(seed=5)
    x = images(64, seed=6)
    target = adapter.predict(x)
    expected = run(adapter, x, "gradient_x_input", store=tmp_store).maps
    tmp_store.clear()
    results = {}

    def other():
        results["plain"] = get_method("gradient_x_input").run(adapter, x, target, get_method("gradient_x_input").params_type(),
                                                                batch_size=1)

    thread = threading.Thread(target=other)
    thread.start()
    get_method("guided_backprop").run(adapter, x, target, get_method("guided_backprop").params_type(), batch_size=1)
    thread.join()
    np.testing.assert_allclose(results["plain"].maps, expected, rtol=1e-5, atol=1e-7)


def test_occlusion_matches_a_loop_over_windows_on_a_scikit_learn_model(tmp_store):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from core.adapters.sklearn_adapter import SklearnAdapter
    from core.scenarios import flatten_images

    x = images(40, size=6)
    y = (x[:, 0, :, :3].mean(axis=(1, 2)) > x[:, 0, :, 3:].mean(axis=(1, 2))).astype(int)
    pipe = make_pipeline(FunctionTransformer(flatten_images), LogisticRegression()).fit(x, y)
    adapter = SklearnAdapter(pipe, name="lr", class_names=("a", "b"), input_kind="image")
    assert supported_methods(adapter)["gradient"] is not None
    assert supported_methods(adapter)["occlusion"] is None
    params = OcclusionParams(window=3, stride=2, fill="zero")
    result = run(adapter, x[:3], "occlusion", params, store=tmp_store)
    # Naive reference: one image, one window at a time.
    for i in range(3):
        t = result.target[i]
        p0 = pipe.predict_proba(x[i:i + 1])[0, t]
        total, count = np.zeros((6, 6)), np.zeros((6, 6))
        for y0 in window_starts(6, 3, 2):
            for x0 in window_starts(6, 3, 2):
                occluded = x[i].copy()
                occluded[:, y0:y0 + 3, x0:x0 + 3] = 0
                drop = p0 - pipe.predict_proba(occluded[None])[0, t]
                total[y0:y0 + 3, x0:x0 + 3] += drop
                count[y0:y0 + 3, x0:x0 + 3] += 1
        np.testing.assert_allclose(result.maps[i, 0], total / count, rtol=1e-5, atol=1e-7)  # maps are float32
    assert result.extras["probability_map"].shape == (3, 3, 3)
    assert result.output == "probability"
    with pytest.raises(MethodUnsupportedError, match="scikit-learn|sklearn"):
        run(adapter, x[:3], "integrated_gradients", store=tmp_store)


def test_occlusion_windows_cover_every_pixel_and_clip_at_the_border():
    assert list(window_starts(8, 3, 2)) == [0, 2, 4, 6]  # the last window [6, 9) is clipped to [6, 8)
    masks = occlusion_masks(8, 8, 3, 2)
    assert masks.shape == (16, 8, 8)
    assert masks.any(axis=0).all()
    assert masks[-1].sum() == 4


def test_occlusion_fills(tmp_store):
    adapter = tiny_cnn(seed=2)
    x = images(2)
    maps = {fill: run(adapter, x, "occlusion", OcclusionParams(window=2, stride=2, fill=fill), store=tmp_store).maps
            for fill in ("zero", "mean", "blur")}
    assert not np.allclose(maps["zero"], maps["mean"]) and not np.allclose(maps["zero"], maps["blur"])
    with pytest.raises(ParameterError, match="channel means"):
        explain_images(adapter, x, np.zeros(2, int), "occlusion", OcclusionParams(fill="mean"), store=tmp_store)


def test_default_occlusion_window_and_gradcam_layer_are_resolved_into_the_result(tmp_store):
    adapter = tiny_cnn()
    result = run(adapter, images(2), "occlusion", store=tmp_store)
    assert (result.params["window"], result.params["stride"]) == (2, 1)
    assert spatial_layers(adapter, (1, 8, 8))[:2] == ["normalize", "conv1"]
    assert default_layer(adapter, (1, 8, 8)) == "relu2"  # the last conv block's output, after its ReLU
    cam = run(adapter, images(2), "grad_cam", store=tmp_store)
    assert cam.params["layer"] == "relu2"
    assert cam.extras["cam"].shape == (2, 8, 8) and cam.maps.shape == (2, 1, 8, 8)
    assert not cam.signed and (cam.maps >= 0).all()
    with pytest.raises(UnknownNameError, match="fc1"):
        from core.attribution.gradcam import GradCamParams

        run(adapter, images(2), "grad_cam", GradCamParams(layer="fc1"), store=tmp_store)


def test_results_are_cached_by_content_not_batch_size(tmp_store):
    adapter = tiny_cnn()
    x = images(3)
    first = run(adapter, x, "smoothgrad", SmoothGradParams(samples=5), batch_size=4, store=tmp_store)
    second = run(adapter, x, "smoothgrad", SmoothGradParams(samples=5), batch_size=64, store=tmp_store)
    assert tmp_store.stats().hits == 1 and tmp_store.stats().misses == 1
    np.testing.assert_array_equal(first.maps, second.maps)
    run(adapter, x, "smoothgrad", SmoothGradParams(samples=5, seed=1), store=tmp_store)
    x2 = x.copy()
    x2[0, 0, 0, 0] += 0.5
    run(adapter, x2, "smoothgrad", SmoothGradParams(samples=5), store=tmp_store)
    assert tmp_store.stats().misses == 3


def test_explain_grid_runs_many_methods_with_one_progress_bar(tmp_store):
    adapter = tiny_cnn()
    calls = []
    grid = explain_grid(adapter, images(3), np.zeros(3, int), {"gradient": None, "occlusion": None,
                                                                 "integrated_gradients": None},
                        progress=lambda f, m: calls.append(f), store=tmp_store)
    assert list(grid) == ["gradient", "occlusion", "integrated_gradients"]
    assert calls == sorted(calls) and calls[-1] == 1.0


def test_targets():
    adapter = tiny_cnn()
    x = images(4)
    np.testing.assert_array_equal(resolve_targets(adapter, x, "predicted"), adapter.predict(x))
    np.testing.assert_array_equal(resolve_targets(adapter, x, "true", y=np.array([0, 1, 2, 0])), [0, 1, 2, 0])
    np.testing.assert_array_equal(resolve_targets(adapter, x, 2), [2, 2, 2, 2])
    np.testing.assert_array_equal(resolve_targets(adapter, x, "1"), [1, 1, 1, 1])
    with pytest.raises(ParameterError, match="true labels"):
        resolve_targets(adapter, x, "true")
    with pytest.raises(ParameterError, match="0..2"):
        resolve_targets(adapter, x, 7)


@pytest.mark.parametrize("make, name", [
    (lambda: SmoothGradParams(samples=0), "samples"),
    (lambda: SmoothGradParams(noise_level=0.0), "noise_level"),
    (lambda: IntegratedGradientsParams(steps=1), "steps"),
    (lambda: IntegratedGradientsParams(baseline="grey"), "baseline"),
    (lambda: OcclusionParams(fill="gray"), "fill"),
])
def test_bad_parameters_are_refused_with_the_parameter_named(make, name):
    with pytest.raises(ParameterError, match=f"The '{name}' parameter"):
        make()


def test_occlusion_window_larger_than_image_is_refused(tmp_store):
    with pytest.raises(ParameterError, match="larger than the image"):
        run(tiny_cnn(), images(1), "occlusion", OcclusionParams(window=9), store=tmp_store)
    with pytest.raises(ParameterError, match="stride"):
        run(tiny_cnn(), images(1), "occlusion", OcclusionParams(window=2, stride=3), store=tmp_store)


def test_bad_images_are_refused(tmp_store):
    adapter = tiny_cnn()
    from core.errors import InputShapeError

    with pytest.raises(InputShapeError, match="shape"):
        explain_images(adapter, np.zeros((8, 8)), np.zeros(1, int), "gradient", store=tmp_store)
    bad = images(1)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InputShapeError, match="NaN"):
        explain_images(adapter, bad, np.zeros(1, int), "gradient", store=tmp_store)


def test_gaussian_blur_keeps_the_mean_of_a_constant_image_and_smooths_a_spike():
    flat = np.full((1, 1, 8, 8), 0.3, dtype=np.float32)
    np.testing.assert_allclose(gaussian_blur(flat, 1.5), flat, rtol=1e-6)
    spike = np.zeros((1, 1, 9, 9), dtype=np.float32)
    spike[0, 0, 4, 4] = 1
    blurred = gaussian_blur(spike, 1.0)
    assert blurred.max() < 0.2 and abs(blurred.sum() - 1) < 1e-5 and blurred[0, 0, 4, 4] == blurred.max()


def test_three_channel_images_and_heatmap_aggregation(tmp_store):
    adapter = tiny_cnn(channels=3, size=12)
    x = images(2, size=12, channels=3)
    grad = run(adapter, x, "gradient_x_input", store=tmp_store)
    assert grad.maps.shape == (2, 3, 12, 12)
    np.testing.assert_allclose(grad.heatmap(), grad.maps.sum(axis=1), rtol=1e-6)
    occ = run(adapter, x, "occlusion", context=ImageContext(channel_mean=np.array([0.4, 0.5, 0.6])), store=tmp_store)
    assert occ.maps.shape == (2, 1, 12, 12)
    arrays = grad.to_arrays()
    assert set(arrays) >= {"maps", "heatmap", "target"}
    assert len(grad[1]) == 1 and grad[[0, 1]].maps.shape == (2, 3, 12, 12)


@pytest.mark.gpu
@pytest.mark.parametrize("method", ALL_BUT_LRP + ["lrp", "lime"])
def test_cpu_and_cuda_agree(method, tmp_path):
    from core.adapters.torch_adapter import TorchAdapter
    from core.store import ArtifactStore

    cpu = tiny_cnn(seed=7, size=12)
    cuda = TorchAdapter(tiny_cnn(seed=7, size=12).torch_module(), name="tiny", class_names=cpu.class_names,
                        input_kind="image", device="cuda")
    x = images(4, size=12, seed=8)
    target = cpu.predict(x)
    context = ImageContext(channel_mean=np.array([0.5]), background=images(10, size=12, seed=9))
    # Separate stores: both adapters have the same fingerprint, so one store would serve the CPU result twice.
    ours = explain_images(cpu, x, target, method, store=ArtifactStore(tmp_path / "cpu"), context=context)
    theirs = explain_images(cuda, x, target, method, store=ArtifactStore(tmp_path / "cuda"), context=context)
    scale = np.abs(ours.maps).max()
    np.testing.assert_allclose(theirs.maps, ours.maps, atol=1e-4 * scale, rtol=1e-3)


def test_layer_wise_methods_say_why_they_cannot_run_on_compiled_or_relu_free_models():
    import torch
    from torch import nn

    from core.adapters.uploaded_torch import UploadedTorchAdapter
    from core.attribution import supported_methods

    traced = torch.jit.trace(tiny_cnn(seed=1).torch_module(), torch.zeros(1, 1, 8, 8))
    compiled = UploadedTorchAdapter(nn.Sequential(nn.Identity(), traced), hookable_inner=False, name="scripted",
                                    class_names=("0", "1", "2"), input_kind="image", device="cpu")
    support = supported_methods(compiled)
    for method, title in [("guided_backprop", "Guided Backprop"), ("grad_cam", "Grad-CAM"), ("lrp", "LRP")]:
        assert support[method].startswith(f"{title} works on the model's individual layers"), support[method]
    assert support["gradient"] is None and support["integrated_gradients"] is None

    class FunctionalRelu(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(x.flatten(1)))

    support = supported_methods(adapter_of(FunctionalRelu()))
    assert "has none" in support["guided_backprop"] and support["gradient"] is None
    # A model with nn.ReLU modules keeps Guided Backprop.
    assert supported_methods(tiny_cnn())["guided_backprop"] is None
