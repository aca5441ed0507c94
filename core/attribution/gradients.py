"""Gradient methods: vanilla gradient, gradient x input, SmoothGrad, Guided Backprop, Integrated Gradients.

All of them differentiate the target class's score (the logit, for modules returning logits) with
respect to the input pixels. Multi-pass methods (SmoothGrad's noisy copies, IG's path points)
flatten images x passes into one stream of rows and differentiate it ``batch_size`` rows at a
time, so 16 images x 50 samples run as a handful of full batches rather than 16 x 50 small ones.
captum computes the same quantities and is the test oracle (tests/core/test_attribution_captum.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.attribution.base import (
    ImageContext,
    Method,
    MethodResult,
    check_choice,
    check_number,
    gradients_unsupported,
    layers_unsupported,
    register,
)
from core.attribution.torch_ops import batched_scores, gaussian_blur, input_gradients, relu_modules, to_device, torch_parts
from core.errors import check_int
from core.params import param
from core.progress import ProgressCallback

# -- parameters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradientParams:
    """Vanilla gradient (Simonyan et al. 2014).

    Attributes
    ----------
    absolute : bool
        Show |gradient| (the saliency map of the paper, and captum's ``Saliency`` default).
    """

    absolute: bool = param(True, "Absolute value", "abs", help="|gradient|, the saliency map of Simonyan et al.")


@dataclass(frozen=True)
class NoParams:
    """This method has no parameters."""


@dataclass(frozen=True)
class SmoothGradParams:
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of the image.

    Attributes
    ----------
    samples : int >= 1
        Noisy copies per image.
    noise_level : float in (0, 1]
        Noise standard deviation as a fraction of the pixel range (the paper recommends 0.1-0.2).
    absolute : bool
        Average |gradient| (captum's ``NoiseTunnel(Saliency)`` default) instead of the signed gradient.
    seed : int >= 0
    """

    samples: int = param(50, "Noisy samples", "samples", low=5, high=200)
    noise_level: float = param(0.15, "Noise level", "noise", low=0.01, high=0.5, step=0.01,
                               help="standard deviation as a fraction of the pixel range (the paper: 0.10-0.20)")
    absolute: bool = param(True, "Average |gradient|", "abs")
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("samples", self.samples, "SmoothGradParams")
        check_number("noise_level", self.noise_level, "SmoothGradParams", 0.0, 1.0, low_inclusive=False)
        check_int("seed", self.seed, "SmoothGradParams", minimum=0)


BASELINES = ("black", "blurred", "noise")
IG_RULES = ("gausslegendre", "riemann_trapezoid", "riemann_middle")


@dataclass(frozen=True)
class IntegratedGradientsParams:
    """Integrated Gradients (Sundararajan et al. 2017).

    Attributes
    ----------
    steps : int >= 2
        Points on the straight path from the baseline to the image.
    baseline : {"black", "blurred", "noise"}
        All-zero image, the image blurred with ``blur_sigma``, or uniform noise over the pixel range.
    rule : {"gausslegendre", "riemann_trapezoid", "riemann_middle"}
        Quadrature of the path integral (captum's default is Gauss-Legendre).
    blur_sigma : float > 0
        Gaussian blur in pixels for the blurred baseline.
    seed : int >= 0
        Seeds the noise baseline.
    """

    steps: int = param(50, "Steps", "steps", low=2, high=300, help="points on the path from the baseline to the image")
    baseline: str = param("black", "Baseline", "baseline", choices=BASELINES,
                          names={"black": "black image", "blurred": "blurred image", "noise": "uniform noise"})
    rule: str = param("gausslegendre", "Quadrature", "rule", choices=IG_RULES)
    blur_sigma: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("steps", self.steps, "IntegratedGradientsParams", minimum=2)
        check_choice("baseline", self.baseline, "IntegratedGradientsParams", BASELINES)
        check_choice("rule", self.rule, "IntegratedGradientsParams", IG_RULES)
        check_number("blur_sigma", self.blur_sigma, "IntegratedGradientsParams", 0.0, 50.0, low_inclusive=False)
        check_int("seed", self.seed, "IntegratedGradientsParams", minimum=0)


# -- shared plumbing --------------------------------------------------------------------------


def _plain_gradients(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, batch_size: int,
                     progress: ProgressCallback | None, owner: str, guided: bool = False) -> np.ndarray:
    torch, _module, device = torch_parts(adapter)
    xt = to_device(torch, x, device)
    tt = to_device(torch, target, device, torch.long)
    out = torch.empty_like(xt)

    def consume(start: int, stop: int, _inputs: Any, grads: Any, _scores: Any) -> None:
        out[start:stop] = grads

    input_gradients(adapter, len(x), lambda a, b: (xt[a:b], tt[a:b]), consume, batch_size=batch_size,
                    owner=owner, progress=progress, message=owner, guided=guided)
    return out.cpu().numpy()


def _gradient(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: GradientParams, *, batch_size: int,
              progress: ProgressCallback | None = None, context: ImageContext | None = None) -> MethodResult:
    grads = _plain_gradients(adapter, x, target, batch_size, progress, "gradient")
    return MethodResult(np.abs(grads) if params.absolute else grads)


def _gradient_x_input(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: NoParams, *,
                      batch_size: int, progress: ProgressCallback | None = None,
                      context: ImageContext | None = None) -> MethodResult:
    return MethodResult(_plain_gradients(adapter, x, target, batch_size, progress, "gradient x input") * x)


def _guided_backprop(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: NoParams, *, batch_size: int,
                     progress: ProgressCallback | None = None, context: ImageContext | None = None) -> MethodResult:
    return MethodResult(_plain_gradients(adapter, x, target, batch_size, progress, "guided backprop", guided=True))


def _per_image_rows(torch: Any, n_images: int, per_image: int, start: int, stop: int, device: str) -> tuple[Any, Any]:
    rows = torch.arange(start, stop, device=device)
    return rows // per_image, rows % per_image


def _smoothgrad(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: SmoothGradParams, *,
                batch_size: int, progress: ProgressCallback | None = None,
                context: ImageContext | None = None) -> MethodResult:
    torch, _module, device = torch_parts(adapter)
    context = context or ImageContext()
    low, high = context.value_range
    sigma = params.noise_level * (high - low)
    n, samples = len(x), params.samples
    xt = to_device(torch, x, device)
    tt = to_device(torch, target, device, torch.long)
    noise_cache: dict[int, Any] = {}

    def noise_of(i: int) -> Any:
        # Per-image generator on the CPU: the noise does not depend on the batch size or the device.
        if i not in noise_cache:
            generator = torch.Generator().manual_seed(params.seed * 1_000_003 + i)
            noise_cache.clear()  # rows are image-major: only the current image's noise is needed
            noise_cache[i] = (torch.randn((samples, *x.shape[1:]), generator=generator) * sigma).to(device)
        return noise_cache[i]

    def make_batch(start: int, stop: int) -> tuple[Any, Any]:
        image, sample = _per_image_rows(torch, n, samples, start, stop, device)
        parts = []
        for i in range(start // samples, (stop - 1) // samples + 1):
            a, b = max(start, i * samples) - i * samples, min(stop, (i + 1) * samples) - i * samples
            parts.append(noise_of(i)[a:b])
        return xt[image] + torch.cat(parts), tt[image]

    total = torch.zeros_like(xt)

    def consume(start: int, stop: int, _inputs: Any, grads: Any, _scores: Any) -> None:
        image, _ = _per_image_rows(torch, n, samples, start, stop, device)
        total.index_add_(0, image, grads.abs() if params.absolute else grads)

    input_gradients(adapter, n * samples, make_batch, consume, batch_size=batch_size, owner="SmoothGrad",
                    progress=progress, message="SmoothGrad")
    return MethodResult((total / samples).cpu().numpy())


def ig_baseline(x: np.ndarray, params: IntegratedGradientsParams, context: ImageContext | None = None) -> np.ndarray:
    """The baseline images of Integrated Gradients, float32 of the shape of ``x``."""
    context = context or ImageContext()
    if params.baseline == "black":
        return np.zeros_like(x, dtype=np.float32)
    if params.baseline == "blurred":
        return gaussian_blur(x, params.blur_sigma)
    low, high = context.value_range
    rng = np.random.default_rng(params.seed)
    return rng.uniform(low, high, size=x.shape).astype(np.float32)


def ig_path(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) of the path quadrature, as captum builds them."""
    if rule == "gausslegendre":
        points, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (1 + points), 0.5 * weights
    weights = np.full(steps, 1.0 / steps)
    if rule == "riemann_trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
        return np.linspace(0.0, 1.0, steps), weights
    return np.linspace(1 / (2 * steps), 1 - 1 / (2 * steps), steps), weights


def _integrated_gradients(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray,
                          params: IntegratedGradientsParams, *, batch_size: int,
                          progress: ProgressCallback | None = None,
                          context: ImageContext | None = None) -> MethodResult:
    torch, module, device = torch_parts(adapter)
    n, steps = len(x), params.steps
    baseline_np = ig_baseline(x, params, context)
    xt = to_device(torch, x, device)
    bt = to_device(torch, baseline_np, device)
    tt = to_device(torch, target, device, torch.long)
    alphas_np, weights_np = ig_path(steps, params.rule)
    # float32 like captum: the alphas list becomes float32 scalars in its path tensors.
    alphas = torch.as_tensor(alphas_np, dtype=torch.float32).to(device)
    weights = torch.as_tensor(weights_np, dtype=torch.float32).to(device)
    shape = (-1,) + (1,) * (x.ndim - 1)

    def make_batch(start: int, stop: int) -> tuple[Any, Any]:
        image, step = _per_image_rows(torch, n, steps, start, stop, device)
        a = alphas[step].reshape(shape)
        return bt[image] + a * (xt[image] - bt[image]), tt[image]

    total = torch.zeros_like(xt)

    def consume(start: int, stop: int, _inputs: Any, grads: Any, _scores: Any) -> None:
        image, step = _per_image_rows(torch, n, steps, start, stop, device)
        total.index_add_(0, image, grads * weights[step].reshape(shape))

    input_gradients(adapter, n * steps, make_batch, consume, batch_size=batch_size, owner="Integrated Gradients",
                    progress=progress, message="Integrated Gradients")
    maps = (total * (xt - bt)).cpu().numpy()
    # Completeness (the axiom IG is built on): sum of attributions = f(x) - f(baseline).
    scores = batched_scores(adapter, torch.cat([xt, bt]), torch.cat([tt, tt]), batch_size).cpu().numpy()
    delta = scores[:n] - scores[n:]
    total_attr = maps.astype(np.float64).reshape(n, -1).sum(axis=1)
    return MethodResult(maps, {
        "attribution_sum": total_attr,
        "output_delta": delta,
        "completeness_gap": total_attr - delta,
    })


# -- registration -----------------------------------------------------------------------------

def _guided_unsupported(adapter: ModelAdapter) -> str | None:
    reason = layers_unsupported(adapter, "Guided Backprop")
    if reason:
        return reason
    if not relu_modules(adapter.torch_module()):
        # Without nn.ReLU modules there is nothing to guide: the result would be the plain gradient.
        return ("Guided Backprop changes the backward pass of the model's ReLU layers (torch.nn.ReLU modules), "
                "and this model has none (a functional relu cannot be intercepted).")
    return None


register(Method(
    name="gradient", prefix="grad", order=2, title="Gradient", params_type=GradientParams, run=_gradient,
    unsupported=gradients_unsupported, signed=lambda p: not p.absolute, output="logit", needs_gradients=True,
    description="How much the class score changes per unit change of each pixel (|d score / d pixel|). "
                "Fast, and noisy: the lecture's warning.",
))
register(Method(
    name="gradient_x_input", prefix="", order=3, title="Gradient x input", params_type=NoParams, run=_gradient_x_input,
    unsupported=gradients_unsupported, signed=lambda p: True, output="logit", needs_gradients=True,
    description="The gradient times the pixel value: a first-order estimate of each pixel's contribution.",
))
register(Method(
    name="smoothgrad", prefix="sg", order=4, title="SmoothGrad", params_type=SmoothGradParams, run=_smoothgrad,
    unsupported=gradients_unsupported, signed=lambda p: not p.absolute, output="logit", needs_gradients=True,
    description="The gradient averaged over noisy copies of the image, which removes much of its noise.",
))
register(Method(
    name="guided_backprop", prefix="", order=5, title="Guided BackProp", params_type=NoParams, run=_guided_backprop,
    unsupported=_guided_unsupported, signed=lambda p: True, output="logit", needs_gradients=True,
    description="The gradient with negative signals stopped at every ReLU: sharp edges, but largely "
                "insensitive to the model's weights (see the sanity checks).",
))
register(Method(
    name="integrated_gradients", prefix="ig", order=6, title="Integrated Gradients", params_type=IntegratedGradientsParams,
    run=_integrated_gradients, unsupported=gradients_unsupported, signed=lambda p: True, output="logit",
    needs_gradients=True,
    description="Gradients averaged along the straight path from a baseline to the image, times the "
                "difference: the attributions add up to f(image) - f(baseline).",
))
