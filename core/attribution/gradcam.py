"""Grad-CAM and Guided Grad-CAM (Selvaraju et al. 2017).

Grad-CAM weights a convolutional layer's channels by the spatial mean of the class score's
gradient, sums them, keeps the positive part and upsamples to the image: a coarse "where" map.
Guided Grad-CAM multiplies it with Guided Backprop for a sharp "what, where" map. captum's
``LayerGradCam`` / ``GuidedGradCam`` are the test oracles.
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
    layers_unsupported,
    register,
)
from core.attribution.torch_ops import captured, target_scores, to_device, torch_parts
from core.batching import for_each_range
from core.errors import unknown_name
from core.params import param
from core.progress import ProgressCallback

INTERPOLATIONS = ("bilinear", "nearest")


@dataclass(frozen=True)
class GradCamParams:
    """Grad-CAM parameters.

    Attributes
    ----------
    layer : str, optional
        A layer with a spatial (n, channels, h, w) output. Default: the output of the last
        convolutional block, after its activation (:func:`default_layer`).
    interpolation : {"bilinear", "nearest"}
        How the layer-resolution map is enlarged to the image (captum's default is nearest).
    """

    layer: str | None = param(None, "Layer", "layer", choices="layers", names="layer_label",
                              help="a layer with a spatial feature map; the default is the output of the last "
                                   "convolutional block, after its activation. Before the activation the weighted "
                                   "channels are often negative everywhere and the map comes out blank.")
    interpolation: str = param("bilinear", "Upsampling", "interpolation", choices=INTERPOLATIONS)

    @classmethod
    def form_defaults(cls, context: dict[str, Any]) -> dict[str, Any]:
        layers = list(context.get("layers") or [])
        default = context.get("default_layer")
        return {"layer": default if default in layers else (layers[0] if layers else None)}

    def __post_init__(self) -> None:
        check_choice("interpolation", self.interpolation, "GradCamParams", INTERPOLATIONS)


_SPATIAL_CACHE: dict[tuple[str, tuple[int, ...]], list[str]] = {}
_PRE_ACTIVATION: dict[tuple[str, tuple[int, ...]], set[str]] = {}
_DEFAULT: dict[tuple[str, tuple[int, ...]], str | None] = {}


def spatial_layers(adapter: ModelAdapter, image_shape: tuple[int, ...]) -> list[str]:
    """Layers whose output is a (n, channels, h, w) map for images of ``image_shape`` (C, H, W), in forward order.

    Found with one forward pass of a blank image, remembered per model fingerprint and shape.
    """
    return list(_SPATIAL_CACHE[_discover(adapter, image_shape)])


def pre_activation_layers(adapter: ModelAdapter, image_shape: tuple[int, ...]) -> set[str]:
    """Spatial layers whose output goes through an activation next (a convolution before its ReLU).

    Grad-CAM at such a layer sums signed channels; its ReLU then often leaves a blank map.
    """
    return set(_PRE_ACTIVATION[_discover(adapter, image_shape)])


def layer_label(name: str, pre_activation: set[str]) -> str:
    """The layer picker's label: pre-activation layers say so."""
    return f"{name} (before its activation)" if name in pre_activation else name


def default_layer(adapter: ModelAdapter, image_shape: tuple[int, ...]) -> str | None:
    """Grad-CAM's default layer: the output of the last convolutional block, after its activation.

    That is what Grad-CAM's authors and pytorch-grad-cam use: the last convolution, then the
    normalisation and activation layers that directly follow it in the forward pass (``conv2`` ->
    ``relu2``). At the convolution itself (before the ReLU) the weighted channel sum is negative
    everywhere for most inputs and the map is blank (174 of 200 digits test images). Without an
    activation module after it, the last convolution; without a convolution, the last spatial layer.
    """
    return _DEFAULT[_discover(adapter, image_shape)]


# Modules that keep a convolutional block going (same feature map, element-wise or per channel).
_BLOCK_MODULES = ("torch.nn.modules.activation", "torch.nn.modules.batchnorm", "torch.nn.modules.normalization",
                  "torch.nn.modules.instancenorm")


def _discover(adapter: ModelAdapter, image_shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    key = (adapter.fingerprint, tuple(int(s) for s in image_shape))
    if key in _SPATIAL_CACHE:
        return key
    import torch

    _torch, module, device = torch_parts(adapter)
    leaves = {name: m for name, m in module.named_modules() if name and not list(m.children())}
    order: list[tuple[str, tuple[int, ...]]] = []  # (name, output shape) in the order the forward pass calls them
    hooks = []
    for name, sub in leaves.items():
        hooks.append(sub.register_forward_hook(
            lambda _m, _i, out, _name=name: order.append((_name, tuple(out.shape))) if hasattr(out, "shape") else None))
    try:
        with torch.inference_mode():
            module(torch.zeros((1, *key[1]), device=device))
    finally:
        for handle in hooks:
            handle.remove()
    seen: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}
    for name, shape in order:
        if name not in shapes:
            seen.append(name)
            shapes[name] = shape
    spatial = [name for name in seen if len(shapes[name]) == 4]
    is_conv = {name: isinstance(leaves[name], torch.nn.modules.conv._ConvNd) for name in spatial}
    is_block = {name: type(leaves[name]).__module__ in _BLOCK_MODULES for name in spatial}
    is_activation = {name: type(leaves[name]).__module__ == "torch.nn.modules.activation" for name in spatial}
    pre_activation: set[str] = set()
    default: str | None = spatial[-1] if spatial else None
    for i, name in enumerate(spatial):
        if not is_conv[name]:
            continue
        # The conv block: the conv, then the norm / activation layers that follow it with the same shape.
        block = [name]
        for following in spatial[i + 1:]:
            if not is_block[following] or shapes[following] != shapes[name]:
                break
            block.append(following)
        if any(is_activation[b] for b in block[1:]):
            last_activation = max(j for j, b in enumerate(block) if is_activation[b])
            pre_activation.update(block[:last_activation])
        default = block[-1]  # the last conv's block wins
    _SPATIAL_CACHE[key], _PRE_ACTIVATION[key], _DEFAULT[key] = spatial, pre_activation, default
    return key


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
    name="grad_cam", prefix="cam", order=8, title="Grad-CAM", params_type=GradCamParams, run=_gradcam, unsupported=_gradcam_unsupported,
    signed=lambda p: False, output="logit", needs_gradients=True,
    description="A convolutional layer's channels weighted by their mean gradient: a coarse map of where "
                "the evidence for the class is.",
))
register(Method(
    name="guided_grad_cam", prefix="gcam", order=9, title="Guided Grad-CAM", params_type=GradCamParams, run=_guided_gradcam,
    unsupported=_gradcam_unsupported, signed=lambda p: True, output="logit", needs_gradients=True,
    description="Guided Backprop masked by Grad-CAM: fine detail, restricted to where the class evidence is.",
))
