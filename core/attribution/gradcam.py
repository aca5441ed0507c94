"""Grad-CAM and Guided Grad-CAM (Selvaraju et al. 2017).

Grad-CAM weights a convolutional layer's channels by the spatial mean of the class score's
gradient, sums them, keeps the positive part and upsamples to the image: a coarse "where" map.
Guided Grad-CAM multiplies it with Guided Backprop for a sharp "what, where" map. captum's
``LayerGradCam`` / ``GuidedGradCam`` are the test oracles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.adapters.base import ModelAdapter
from core.attribution.base import (
    ImageContext,
    Method,
    MethodResult,
    check_choice,
    layers_unsupported,
    register,
)
from core.attribution.torch_ops import captured, target_scores, to_device, torch_parts
from core.batching import for_each_range
from core.errors import unknown_name
from core.progress import ProgressCallback

INTERPOLATIONS = ("bilinear", "nearest")


@dataclass(frozen=True)
class GradCamParams:
    """Grad-CAM parameters.

    Attributes
    ----------
    layer : str, optional
        A layer with a spatial (n, channels, h, w) output. Default: the last convolution.
    interpolation : {"bilinear", "nearest"}
        How the layer-resolution map is enlarged to the image (captum's default is nearest).
    """

    layer: str | None = None
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        check_choice("interpolation", self.interpolation, "GradCamParams", INTERPOLATIONS)


_SPATIAL_CACHE: dict[tuple[str, tuple[int, ...]], list[str]] = {}


def spatial_layers(adapter: ModelAdapter, image_shape: tuple[int, ...]) -> list[str]:
    """Layers whose output is a (n, channels, h, w) map for images of ``image_shape`` (C, H, W).

    Found with one forward pass of a blank image, remembered per model fingerprint and shape.
    """
    key = (adapter.fingerprint, tuple(int(s) for s in image_shape))
    if key not in _SPATIAL_CACHE:
        _SPATIAL_CACHE[key] = _find_spatial_layers(adapter, key[1])
    return list(_SPATIAL_CACHE[key])


def _find_spatial_layers(adapter: ModelAdapter, image_shape: tuple[int, ...]) -> list[str]:
    torch, module, device = torch_parts(adapter)
    names = [name for name, m in module.named_modules() if name and not list(m.children())]
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, sub in module.named_modules():
        if name in names:
            hooks.append(sub.register_forward_hook(
                lambda _m, _i, out, _name=name: shapes.__setitem__(_name, tuple(out.shape)) if hasattr(out, "shape") else None))
    try:
        with torch.inference_mode():
            module(torch.zeros((1, *image_shape), device=device))
    finally:
        for handle in hooks:
            handle.remove()
    return [name for name in names if len(shapes.get(name, ())) == 4]


def default_layer(adapter: ModelAdapter, image_shape: tuple[int, ...]) -> str | None:
    """The last convolution with a spatial output (Grad-CAM's usual choice), else the last spatial layer."""
    import torch

    _torch, module, _device = torch_parts(adapter)
    layers = spatial_layers(adapter, image_shape)
    convs = [name for name in layers if isinstance(dict(module.named_modules())[name], torch.nn.modules.conv._ConvNd)]
    return (convs or layers or [None])[-1]


def _gradcam_unsupported(adapter: ModelAdapter) -> str | None:
    reason = layers_unsupported(adapter, "Grad-CAM")
    if reason:
        return reason
    import torch

    if not any(isinstance(m, torch.nn.Conv2d) for m in adapter.torch_module().modules()):
        return "Grad-CAM needs a convolutional layer (a spatial feature map); this model has no Conv2d."
    return None


def layer_cams(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, layer: str, *, batch_size: int,
               progress: ProgressCallback | None = None) -> np.ndarray:
    """Grad-CAM at the layer's resolution, ndarray of shape (n, h, w), float32 (after the ReLU)."""
    torch, module, device = torch_parts(adapter)
    if layer not in spatial_layers(adapter, x.shape[1:]):
        raise unknown_name("spatial layer for Grad-CAM", layer, spatial_layers(adapter, x.shape[1:]))
    xt = to_device(torch, x, device)
    tt = to_device(torch, target, device, torch.long)
    chunks: dict[int, np.ndarray] = {}

    def step(start: int, stop: int) -> None:
        inputs = xt[start:stop].detach().requires_grad_(True)
        with captured(module, layer) as outputs, torch.enable_grad():
            scores = target_scores(adapter, module(inputs), tt[start:stop])
            activation = outputs[-1]
            (grads,) = torch.autograd.grad(scores.sum(), activation)
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * activation.detach()).sum(dim=1))
        chunks[start] = cam.float().cpu().numpy()

    for_each_range(step, len(x), batch_size, owner="Grad-CAM", progress=progress, message="Grad-CAM")
    return np.concatenate([chunks[k] for k in sorted(chunks)])


def upsample(cams: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """(n, h, w) -> (n, 1, height, width) with torch's interpolate (align_corners=False)."""
    import torch

    t = torch.as_tensor(cams, dtype=torch.float32)[:, None]
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    return torch.nn.functional.interpolate(t, size=(height, width), mode=mode, **kwargs).numpy()


def _gradcam(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: GradCamParams, *, batch_size: int,
             progress: ProgressCallback | None = None, context: ImageContext | None = None) -> MethodResult:
    layer = params.layer or default_layer(adapter, x.shape[1:])
    cams = layer_cams(adapter, x, target, layer, batch_size=batch_size, progress=progress)
    return MethodResult(upsample(cams, x.shape[2], x.shape[3], params.interpolation), {"cam": cams})


def _guided_gradcam(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: GradCamParams, *,
                    batch_size: int, progress: ProgressCallback | None = None,
                    context: ImageContext | None = None) -> MethodResult:
    from core.attribution.gradients import _plain_gradients
    from core.progress import subrange

    layer = params.layer or default_layer(adapter, x.shape[1:])
    cams = layer_cams(adapter, x, target, layer, batch_size=batch_size, progress=subrange(progress, 0.0, 0.5))
    guided = _plain_gradients(adapter, x, target, batch_size, subrange(progress, 0.5, 1.0), "guided backprop", guided=True)
    return MethodResult(guided * upsample(cams, x.shape[2], x.shape[3], params.interpolation), {"cam": cams})


register(Method(
    name="grad_cam", title="Grad-CAM", params_type=GradCamParams, run=_gradcam, unsupported=_gradcam_unsupported,
    signed=lambda p: False, output="logit", needs_gradients=True,
    description="A convolutional layer's channels weighted by their mean gradient: a coarse map of where "
                "the evidence for the class is.",
))
register(Method(
    name="guided_grad_cam", title="Guided Grad-CAM", params_type=GradCamParams, run=_guided_gradcam,
    unsupported=_gradcam_unsupported, signed=lambda p: True, output="logit", needs_gradients=True,
    description="Guided Backprop masked by Grad-CAM: fine detail, restricted to where the class evidence is.",
))
