"""captum as the oracle: our maps equal captum's (same settings) to 1e-5 relative.

captum is a test-only dependency; TrustLens computes every map itself (batched over images x
samples / steps / positions), and these tests pin the numbers to the reference implementation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

captum_attr = pytest.importorskip("captum.attr")

from core.attribution import ImageContext, explain_images  # noqa: E402
from core.attribution.gradcam import GradCamParams  # noqa: E402
from core.attribution.gradients import GradientParams, IntegratedGradientsParams, SmoothGradParams  # noqa: E402
from core.attribution.occlusion import OcclusionParams  # noqa: E402
from core.attribution.torch_ops import gaussian_blur  # noqa: E402
from tests.core.attribution_support import assert_close, images, tiny_cnn  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    # Sharpened: a fresh net's occlusion drops are ~1e-3, where float32 rounding alone is 1e-5 of the scale.
    adapter = tiny_cnn(seed=11, size=12, channels=3, n_classes=4, sharpen=30)
    x = images(5, size=12, channels=3, seed=12)
    target = np.array([0, 1, 2, 3, 1])
    return adapter, adapter.torch_module(), x, target


def ours(setup, method, params, tmp_store, batch_size=7):
    adapter, _m, x, target = setup
    return explain_images(adapter, x, target, method, params, batch_size=batch_size, store=tmp_store,
                          context=ImageContext(channel_mean=np.array([0.4, 0.5, 0.6])))


def tensors(setup):
    _a, module, x, target = setup
    return module, torch.as_tensor(x), torch.as_tensor(target)


@pytest.mark.parametrize("absolute", [True, False])
def test_gradient_equals_captum_saliency(setup, tmp_store, absolute):
    module, xt, tt = tensors(setup)
    theirs = captum_attr.Saliency(module).attribute(xt, target=tt, abs=absolute).numpy()
    assert_close(ours(setup, "gradient", GradientParams(absolute=absolute), tmp_store).maps, theirs)


def test_gradient_x_input_equals_captum(setup, tmp_store):
    module, xt, tt = tensors(setup)
    theirs = captum_attr.InputXGradient(module).attribute(xt, target=tt).detach().numpy()
    assert_close(ours(setup, "gradient_x_input", None, tmp_store).maps, theirs)


def test_guided_backprop_equals_captum(setup, tmp_store):
    module, xt, tt = tensors(setup)
    theirs = captum_attr.GuidedBackprop(module).attribute(xt, target=tt).numpy()
    assert_close(ours(setup, "guided_backprop", None, tmp_store).maps, theirs)


def test_smoothgrad_equals_captum_saliency_averaged_over_the_same_noise(setup, tmp_store):
    """captum's NoiseTunnel draws its own noise, so the oracle is captum's Saliency averaged over
    exactly our noisy copies (documented seeding: one CPU generator per image)."""
    module, xt, tt = tensors(setup)
    params = SmoothGradParams(samples=9, noise_level=0.2, absolute=True, seed=3)
    sigma = 0.2 * (1.0 - 0.0)
    expected = []
    for i in range(len(xt)):
        generator = torch.Generator().manual_seed(params.seed * 1_000_003 + i)
        noise = torch.randn((params.samples, *xt.shape[1:]), generator=generator) * sigma
        noisy = xt[i:i + 1] + noise
        sal = captum_attr.Saliency(module).attribute(noisy, target=tt[i].repeat(params.samples), abs=True)
        expected.append(sal.mean(0).numpy())
    assert_close(ours(setup, "smoothgrad", params, tmp_store).maps, np.stack(expected))


def test_smoothgrad_is_close_to_captum_noise_tunnel_in_expectation(setup, tmp_store):
    """Independent noise on both sides: with 400 samples the two estimates of the same expectation agree."""
    module, xt, tt = tensors(setup)
    torch.manual_seed(0)
    nt = captum_attr.NoiseTunnel(captum_attr.Saliency(module))
    theirs = nt.attribute(xt, target=tt, nt_type="smoothgrad", nt_samples=400, stdevs=0.15, abs=True).numpy()
    mine = ours(setup, "smoothgrad", SmoothGradParams(samples=400, noise_level=0.15), tmp_store, batch_size=512).maps
    corr = np.corrcoef(mine.ravel(), theirs.ravel())[0, 1]
    assert corr > 0.97, corr


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid"])
@pytest.mark.parametrize("baseline", ["black", "blurred"])
def test_integrated_gradients_equals_captum(setup, tmp_store, rule, baseline):
    module, xt, tt = tensors(setup)
    params = IntegratedGradientsParams(steps=40, rule=rule, baseline=baseline)
    base = torch.zeros_like(xt) if baseline == "black" else torch.as_tensor(gaussian_blur(setup[2], params.blur_sigma))
    theirs, delta = captum_attr.IntegratedGradients(module).attribute(
        xt, baselines=base, target=tt, n_steps=40, method=rule, return_convergence_delta=True)
    result = ours(setup, "integrated_gradients", params, tmp_store)
    assert_close(result.maps, theirs.detach().numpy())
    # captum's convergence delta is our completeness gap (sum of attributions - (f(x) - f(baseline))).
    np.testing.assert_allclose(result.extras["completeness_gap"], delta.detach().numpy(), atol=1e-4)


@pytest.mark.parametrize("fill", ["zero", "mean", "blur"])
def test_occlusion_equals_captum(setup, tmp_store, fill):
    module, xt, tt = tensors(setup)
    params = OcclusionParams(window=3, stride=2, fill=fill)
    baselines = {"zero": 0.0,
                 "mean": torch.tensor([0.4, 0.5, 0.6]).reshape(1, 3, 1, 1).expand_as(xt).contiguous(),
                 "blur": torch.as_tensor(gaussian_blur(setup[2], params.blur_sigma))}[fill]

    def proba(z):
        return torch.softmax(module(z), dim=1)

    theirs = captum_attr.Occlusion(proba).attribute(xt, sliding_window_shapes=(3, 3, 3), strides=(3, 2, 2),
                                                     baselines=baselines, target=tt, perturbations_per_eval=8).numpy()
    # captum repeats the per-pixel value over the channels the window spans; we keep one.
    np.testing.assert_allclose(theirs[:, 0], theirs[:, 2], rtol=1e-6, atol=1e-9)
    assert_close(ours(setup, "occlusion", params, tmp_store).maps, theirs[:, :1])


def test_grad_cam_equals_captum_layer_grad_cam(setup, tmp_store):
    module, xt, tt = tensors(setup)
    theirs = captum_attr.LayerGradCam(module, module.conv2).attribute(xt, target=tt, relu_attributions=True)
    result = ours(setup, "grad_cam", GradCamParams(layer="conv2", interpolation="nearest"), tmp_store)
    assert_close(result.extras["cam"], theirs[:, 0].detach().numpy())
    up = captum_attr.LayerAttribution.interpolate(theirs, (12, 12), interpolate_mode="nearest")
    assert_close(result.maps, up.detach().numpy())


def test_grad_cam_default_layer_equals_captum_at_the_conv_blocks_activation(setup, tmp_store):
    module, xt, tt = tensors(setup)
    theirs = captum_attr.LayerGradCam(module, module.relu2).attribute(xt, target=tt, relu_attributions=True)
    result = ours(setup, "grad_cam", GradCamParams(interpolation="nearest"), tmp_store)
    assert result.params["layer"] == "relu2"
    assert_close(result.extras["cam"], theirs[:, 0].detach().numpy())


def test_guided_grad_cam_equals_captum(setup, tmp_store):
    module, xt, tt = tensors(setup)
    theirs = captum_attr.GuidedGradCam(module, module.relu2).attribute(xt, target=tt, interpolate_mode="nearest")
    result = ours(setup, "guided_grad_cam", GradCamParams(layer="relu2", interpolation="nearest"), tmp_store)
    assert_close(result.maps, theirs.detach().numpy())
