"""Expected gradients (Erion et al. 2021), the image SHAP of shap's ``GradientExplainer``.

Integrated Gradients averaged over baselines drawn from the training images and over random
points on each path: phi = E_{b, t}[(x - b) * grad f(b + t (x - b))], t ~ U(0, 1). The
attributions add up, in expectation, to f(x) - E_b[f(b)]: SHAP's efficiency with the background's
mean output as the base value.

We draw the (background image, t) pairs exactly as shap's PyTorch ``GradientExplainer`` does for a
given seed (per image, per sample: ``choice`` then ``uniform`` from numpy's legacy generator), so
with the same background and seed our values equal shap's (tests/core/test_attribution_shap.py);
but all images x samples run as full batches on the model's device instead of one image at a
time, and only the target class's gradient is taken (shap differentiates every output).
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
    gradients_unsupported,
    register,
)
from core.attribution.torch_ops import batched_scores, input_gradients, to_device, torch_parts
from core.errors import ParameterError, check_int
from core.params import param
from core.progress import ProgressCallback


@dataclass(frozen=True)
class ExpectedGradientsParams:
    """Expected gradients parameters.

    Attributes
    ----------
    samples : int >= 1
        (background image, path point) pairs per image (shap's ``nsamples``, default 200).
    background_size : int >= 1
        Training images the baselines are drawn from (a fixed random subset of the pool).
    seed : int >= 0
        Seeds both the background subset and the draws.
    """

    samples: int = param(200, "Samples", "samples", low=20, high=1000, step=10,
                         help="(background image, path point) pairs per image (shap's nsamples)")
    background_size: int = param(100, "Background images", "background", options=(10, 25, 50, 100, 250, 500, 1000),
                                 help="training images the baselines are drawn from; the base value is the model's "
                                      "mean output over them, so a larger background gives a steadier base value")
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("samples", self.samples, "ExpectedGradientsParams")
        check_int("background_size", self.background_size, "ExpectedGradientsParams")
        check_int("seed", self.seed, "ExpectedGradientsParams", minimum=0)


def background_subset(pool: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` distinct images of ``pool`` (all of them if it is smaller), chosen by ``seed``."""
    if len(pool) <= size:
        return np.asarray(pool, dtype=np.float32)
    rows = np.random.RandomState(seed).choice(len(pool), size, replace=False)
    return np.asarray(pool[np.sort(rows)], dtype=np.float32)


def draws(n_images: int, samples: int, n_background: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(background index, t) for every image x sample, in shap's order: ndarrays of shape (n, samples)."""
    rng = np.random.RandomState(seed)
    index = np.empty((n_images, samples), dtype=np.int64)
    t = np.empty((n_images, samples), dtype=np.float64)
    for i in range(n_images):
        for k in range(samples):
            index[i, k] = rng.choice(n_background)
            t[i, k] = rng.uniform()
    return index, t


def _expected_gradients(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: ExpectedGradientsParams,
                        *, batch_size: int, progress: ProgressCallback | None = None,
                        context: ImageContext | None = None) -> MethodResult:
    pool = None if context is None else context.background
    if pool is None or len(pool) == 0:
        raise ParameterError("Expected gradients needs background images (a sample of the training set), and none were given.",
                             hint="pass ImageContext(background=...) (core.attribution.image_context does).")
    if pool.shape[1:] != x.shape[1:]:
        raise ParameterError(f"The background images have shape {pool.shape[1:]}, the explained images {x.shape[1:]}.")
    torch, module, device = torch_parts(adapter)
    background = background_subset(pool, params.background_size, params.seed)
    n, samples = len(x), params.samples
    index_np, t_np = draws(n, samples, len(background), params.seed)
    xt, bt = to_device(torch, x, device), to_device(torch, background, device)
    tt = to_device(torch, target, device, torch.long)
    index = torch.as_tensor(index_np.reshape(-1)).to(device)
    t_all = torch.as_tensor(t_np.reshape(-1), dtype=torch.float32).to(device)
    shape = (-1,) + (1,) * (x.ndim - 1)
    total = torch.zeros(xt.shape, dtype=torch.float64, device=device)

    def make_batch(start: int, stop: int) -> tuple[Any, Any]:
        image = torch.arange(start, stop, device=device) // samples
        t = t_all[start:stop].reshape(shape)
        return t * xt[image] + (1 - t) * bt[index[start:stop]], tt[image]

    def consume(start: int, stop: int, _inputs: Any, grads: Any, _scores: Any) -> None:
        image = torch.arange(start, stop, device=device) // samples
        delta = xt[image] - bt[index[start:stop]]
        total.index_add_(0, image, grads.double() * delta.double())

    input_gradients(adapter, n * samples, make_batch, consume, batch_size=batch_size, owner="expected gradients",
                    progress=progress, message="expected gradients")
    maps = (total / samples).float().cpu().numpy()
    f_x = batched_scores(adapter, xt, tt, batch_size).cpu().numpy()
    with torch.inference_mode():  # the background's mean output for each class: the base value
        background_out = torch.cat([module(bt[s:s + batch_size]) for s in range(0, len(bt), batch_size)]).double()
    base = background_out.mean(dim=0).cpu().numpy()[target]
    attribution_sum = maps.astype(np.float64).reshape(n, -1).sum(axis=1)
    return MethodResult(maps, {
        "base_value": base,
        "output": f_x,
        "attribution_sum": attribution_sum,
        "efficiency_gap": attribution_sum - (f_x - base),
    })


register(Method(
    name="expected_gradients", prefix="eg", order=7, title="Expected Gradients (SHAP)", params_type=ExpectedGradientsParams,
    run=_expected_gradients, unsupported=gradients_unsupported, signed=lambda p: True, output="logit",
    needs_gradients=True,
    description="SHAP values for images (shap's GradientExplainer): Integrated Gradients averaged over baselines "
                "drawn from the training images; they add up, in expectation, to f(image) minus the mean output "
                "over those images.",
))
