"""LIME on images (Ribeiro et al. 2016) with square superpixels.

Switch random sets of superpixels off (replaced by the fill), predict, and fit lime's weighted
ridge surrogate of the class probability on which superpixels were on: a superpixel's coefficient
is its local effect on the probability. Every pixel of a superpixel gets that coefficient.

Matches ``lime.lime_image.LimeImageExplainer(random_state=seed).explain_instance`` called with
the same grid as ``segmentation_fn``, ``hide_color`` = the fill, ``random_seed`` given and
``top_labels=None`` (its sampling is replayed: ``RandomState(seed).randint(0, 2, ...)`` with the
first row all on; cosine distance to that row, kernel ``sqrt(exp(-d^2 / width^2))``, width 0.25;
every superpixel in the surrogate). Squares instead of quickshift segments because digits have
no colour regions to follow and squares make the map comparable with occlusion's. The same
draws are used for every image of a call.

Works on any model (only probabilities are needed); torch models build the masked copies on
their device, many images x samples per forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.attribution.base import ImageContext, Method, MethodResult, check_choice, check_number, register
from core.attribution.occlusion import FILL_NAMES, FILLS, OcclusionParams, fill_images
from core.attribution.torch_ops import target_probabilities, to_device, torch_parts
from core.batching import for_each_range
from core.errors import ParameterError, check_int
from core.text.lime_text import fit_surrogate
from core.params import param
from core.progress import ProgressCallback


@dataclass(frozen=True)
class LimeImageParams:
    """LIME-on-images parameters.

    Attributes
    ----------
    segment : int >= 1, optional
        Side of the square superpixels in pixels. Default: about a seventh of the image side
        (2 px for 8x8 digits, 4 px for 28x28 MNIST: 16 and 49 superpixels).
    num_samples : int >= 2
        Perturbed images per explained image (lime_image's default 1000).
    fill : {"zero", "mean", "blur"}
        What a switched-off superpixel shows (as occlusion's fill).
    kernel_width : float > 0
        Width of the kernel on the cosine distance (lime_image's default 0.25).
    seed : int >= 0
        Seeds the sampling: the same seed gives the same explanation.
    """

    segment: int | None = param(None, "Superpixel size (px)", "segment", low=1, high="image_side", widget="number",
                                help="side of the squares LIME switches on and off")
    num_samples: int = param(1000, "Samples", "samples", options=(100, 250, 500, 1000, 2000, 5000),
                             help="perturbed images per explained image (lime_image's default 1000)")
    fill: str = param("zero", "Switched-off squares show", "fill", choices=FILLS, names=FILL_NAMES)
    kernel_width: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        owner = "LimeImageParams"
        if self.segment is not None:
            check_int("segment", self.segment, owner)
        check_int("num_samples", self.num_samples, owner, minimum=2)
        check_int("seed", self.seed, owner, minimum=0)
        check_choice("fill", self.fill, owner, FILLS)
        check_number("kernel_width", self.kernel_width, owner, 0.0, 100.0, low_inclusive=False)

    @classmethod
    def form_defaults(cls, context: dict[str, Any]) -> dict[str, Any]:
        return {"segment": cls().resolved_segment(*context["image_shape"][-2:])}

    def resolved_segment(self, height: int, width: int) -> int:
        segment = self.segment if self.segment is not None else max(2, round(min(height, width) / 7))
        if segment > min(height, width):
            raise ParameterError(f"The LIME superpixel ({segment} px) is larger than the image ({height}x{width}).",
                                 hint=f"use superpixels of at most {min(height, width)} pixels.")
        return segment


def grid_segments(height: int, width: int, segment: int) -> np.ndarray:
    """Superpixel label per pixel, shape (height, width): row-major squares of side ``segment``."""
    columns = -(-width // segment)
    ys, xs = np.mgrid[0:height, 0:width]
    return (ys // segment) * columns + xs // segment


def sample_on(n_segments: int, num_samples: int, seed: int) -> np.ndarray:
    """Which superpixels are on in each sample, int (num_samples, n_segments); row 0 is all on (lime_image's draws)."""
    data = np.random.RandomState(seed).randint(0, 2, num_samples * n_segments).reshape(num_samples, n_segments)
    data[0, :] = 1
    return data


def cosine_kernel(on: np.ndarray, kernel_width: float) -> np.ndarray:
    """lime_image's sample weights: kernel of the cosine distance of each row to the all-on row."""
    kept = on.sum(axis=1)
    distances = 1.0 - np.sqrt(kept / on.shape[1])  # cos(z, 1) = |z|_1 / (sqrt(|z|_1) sqrt(d)); 0 for z = 0
    return np.sqrt(np.exp(-(distances ** 2) / kernel_width ** 2))


def _lime_image(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: LimeImageParams, *,
                batch_size: int, progress: ProgressCallback | None = None,
                context: ImageContext | None = None) -> MethodResult:
    n, _channels, height, width = x.shape
    segments = grid_segments(height, width, params.resolved_segment(height, width))
    n_segments = int(segments.max()) + 1
    on = sample_on(n_segments, params.num_samples, params.seed)
    pixel_on = on[:, segments]  # (samples, H, W)
    fill = fill_images(x, OcclusionParams(fill=params.fill), context)
    samples = params.num_samples
    proba = np.empty(n * samples, dtype=np.float64)

    if adapter.torch_module() is not None:
        torch, _module, device = torch_parts(adapter)
        xt, ft = to_device(torch, x, device), to_device(torch, fill, device)
        keep = torch.as_tensor(pixel_on.astype(bool)).to(device)[:, None]
        tt = to_device(torch, target, device, torch.long)

        def step(start: int, stop: int) -> None:
            rows = torch.arange(start, stop, device=device)
            image, sample = rows // samples, rows % samples
            proba[start:stop] = target_probabilities(adapter, torch.where(keep[sample], xt[image], ft[image]), tt[image])
    else:
        keep_np = pixel_on.astype(bool)[:, None]

        def step(start: int, stop: int) -> None:
            rows = np.arange(start, stop)
            image, sample = rows // samples, rows % samples
            batch = np.where(keep_np[sample], x[image], fill[image])
            proba[start:stop] = adapter.predict_proba(batch, batch_size)[np.arange(len(rows)), target[image]]

    for_each_range(step, n * samples, batch_size, owner="lime", progress=progress, message="LIME samples")
    weights = cosine_kernel(on, params.kernel_width)
    labels = proba.reshape(n, samples)
    coef = np.zeros((n, n_segments))
    score, intercept = np.empty(n), np.empty(n)
    for i in range(n):
        fit = fit_surrogate(on, labels[i], weights, n_segments, feature_selection="none")
        coef[i, fit.selected] = fit.coef
        score[i], intercept[i] = fit.score, fit.intercept
    maps = coef[:, segments][:, None].astype(np.float32)
    return MethodResult(maps, {"local_r2": score, "intercept": intercept, "segment_weights": coef})


register(Method(
    name="lime", prefix="lime", order=1, title="LIME", params_type=LimeImageParams, run=_lime_image,
    unsupported=lambda adapter: None, signed=lambda p: True, output="probability", needs_gradients=False,
    description="Switch random squares of the image off, predict, and fit a weighted linear model of the class "
                "probability on which squares were on. Works on any model.",
))
