"""Occlusion (Zeiler & Fergus 2014): slide a patch over the image and watch the class probability.

"Slide a gray square over the image, measure how it affects the probability of the correct
class" (the lecture). Each pixel's attribution is the mean probability drop over the windows that
cover it, as captum's ``Occlusion`` computes it (windows start every ``stride`` pixels; the last
one is clipped at the border so every pixel is covered). Besides that map the method returns the
map of the class probability with the window at each position, the lecture's second picture.

Works on any model (only ``predict_proba`` is needed); torch models run the occluded copies on
their device, many images x positions per forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.attribution.base import ImageContext, Method, MethodResult, check_choice, check_number, register
from core.attribution.torch_ops import gaussian_blur, target_probabilities, to_device, torch_parts
from core.batching import for_each_range
from core.errors import ParameterError, check_int
from core.params import param
from core.progress import ProgressCallback

FILLS = ("zero", "mean", "blur")
FILL_NAMES = {"zero": "black (zero)", "mean": "dataset mean", "blur": "blurred image"}


@dataclass(frozen=True)
class OcclusionParams:
    """Occlusion parameters.

    Attributes
    ----------
    window : int >= 1, optional
        Side of the square patch in pixels. Default: about a seventh of the image side
        (2 for 8x8 digits, 4 for 28x28 MNIST).
    stride : int >= 1, optional
        Step between patch positions (at most ``window``). Default: half the window.
    fill : {"zero", "mean", "blur"}
        What replaces the patch: black, each channel's mean over the training images, or the
        image blurred with ``blur_sigma`` (removes detail without adding a dark blob).
    blur_sigma : float > 0
    """

    window: int | None = param(None, "Patch size (px)", "window", low=1, high="image_side", widget="number",
                               help="side of the square slid over the image")
    stride: int | None = param(None, "Stride (px)", "stride", low=1, high="@window", widget="number",
                               help="step between patch positions (at most the patch size, so every pixel is covered)")
    fill: str = param("zero", "Patch fill", "fill", choices=FILLS, names=FILL_NAMES,
                      help="what replaces the pixels under the patch")
    blur_sigma: float = 2.0

    @classmethod
    def form_defaults(cls, context: dict[str, Any]) -> dict[str, Any]:
        window, stride = cls().resolved(*context["image_shape"][-2:])
        return {"window": window, "stride": stride}

    def __post_init__(self) -> None:
        if self.window is not None:
            check_int("window", self.window, "OcclusionParams")
        if self.stride is not None:
            check_int("stride", self.stride, "OcclusionParams")
        check_choice("fill", self.fill, "OcclusionParams", FILLS)
        check_number("blur_sigma", self.blur_sigma, "OcclusionParams", 0.0, 50.0, low_inclusive=False)

    def resolved(self, height: int, width: int) -> tuple[int, int]:
        """(window, stride) for images of this size, with the defaults filled in and checked."""
        window = self.window if self.window is not None else max(2, round(min(height, width) / 7))
        stride = self.stride if self.stride is not None else max(1, window // 2)
        if window > min(height, width):
            raise ParameterError(
                f"The occlusion window ({window} px) is larger than the image ({height}x{width}).",
                hint=f"use a window of at most {min(height, width)} pixels.",
            )
        if stride > window:
            raise ParameterError(
                f"The occlusion stride ({stride}) is larger than the window ({window}): some pixels would never be occluded.",
                hint=f"use a stride of at most {window}.",
            )
        return window, stride


def window_starts(size: int, window: int, stride: int) -> np.ndarray:
    """Start of each window along one axis (captum's count: ceil((size - window) / stride) + 1)."""
    count = math.ceil((size - window) / stride) + 1
    return np.arange(count) * stride


def occlusion_masks(height: int, width: int, window: int, stride: int) -> np.ndarray:
    """Boolean masks of shape (positions, height, width), row-major over (start_y, start_x)."""
    ys, xs = window_starts(height, window, stride), window_starts(width, window, stride)
    masks = np.zeros((len(ys), len(xs), height, width), dtype=bool)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            masks[i, j, y:y + window, x:x + window] = True
    return masks.reshape(-1, height, width)


def fill_images(x: np.ndarray, params: OcclusionParams, context: ImageContext | None) -> np.ndarray:
    """What the patch shows, float32 of the shape of ``x``."""
    if params.fill == "zero":
        return np.zeros_like(x)
    if params.fill == "blur":
        return gaussian_blur(x, params.blur_sigma)
    mean = None if context is None else context.channel_mean
    if mean is None:
        raise ParameterError(
            "Occlusion with fill='mean' needs the dataset's channel means, and none were given.",
            hint="pass ImageContext(channel_mean=...) or use fill='zero' or 'blur'.",
        )
    mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    return np.broadcast_to(mean, x.shape).astype(np.float32).copy()


def _occlusion(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: OcclusionParams, *,
               batch_size: int, progress: ProgressCallback | None = None,
               context: ImageContext | None = None) -> MethodResult:
    n, _channels, height, width = x.shape
    window, stride = params.resolved(height, width)
    masks = occlusion_masks(height, width, window, stride)
    positions = len(masks)
    fill = fill_images(x, params, context)
    occluded_proba = np.empty((n, positions), dtype=np.float64)

    if adapter.torch_module() is not None:
        torch, module, device = torch_parts(adapter)
        xt, ft = to_device(torch, x, device), to_device(torch, fill, device)
        mt = torch.as_tensor(masks).to(device)[:, None]
        tt = to_device(torch, target, device, torch.long)

        def probabilities(batch: Any, targets: Any) -> np.ndarray:
            return target_probabilities(adapter, batch, targets)

        original = probabilities(xt, tt) if n <= batch_size else np.concatenate(
            [probabilities(xt[a:a + batch_size], tt[a:a + batch_size]) for a in range(0, n, batch_size)])

        def step(start: int, stop: int) -> None:
            rows = torch.arange(start, stop, device=device)
            image, position = rows // positions, rows % positions
            batch = torch.where(mt[position], ft[image], xt[image])
            occluded_proba.reshape(-1)[start:stop] = probabilities(batch, tt[image])
    else:
        original = adapter.predict_proba(x, batch_size)[np.arange(n), target]

        def step(start: int, stop: int) -> None:
            rows = np.arange(start, stop)
            image, position = rows // positions, rows % positions
            batch = np.where(masks[position][:, None], fill[image], x[image])
            occluded_proba.reshape(-1)[start:stop] = adapter.predict_proba(batch, batch_size)[np.arange(len(rows)), target[image]]

    for_each_range(step, n * positions, batch_size, owner="occlusion", progress=progress, message="occlusion")
    drops = original[:, None] - occluded_proba  # (n, positions)
    flat = masks.reshape(positions, -1).astype(np.float64)
    counts = flat.sum(axis=0)
    attribution = (drops @ flat) / counts  # every pixel is covered at least once (stride <= window)
    # One value per pixel (the window spans every channel); captum repeats it across channels.
    maps = attribution.reshape(n, 1, height, width).astype(np.float32)
    ny, nx = len(window_starts(height, window, stride)), len(window_starts(width, window, stride))
    return MethodResult(maps, {
        "probability_map": occluded_proba.reshape(n, ny, nx),
        "original_probability": original,
    })


register(Method(
    name="occlusion", prefix="occ", order=0, title="Occlusion", params_type=OcclusionParams, run=_occlusion,
    unsupported=lambda adapter: None, signed=lambda p: True, output="probability", needs_gradients=False,
    description="Slide a patch over the image and measure how the class probability drops. Works on any "
                "model; slow for large images (one forward pass per position).",
))
