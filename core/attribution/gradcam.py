"""Grad-CAM and Guided Grad-CAM (Selvaraju et al. 2017).

Grad-CAM weights a convolutional layer's channels by the spatial mean of the class score's
gradient, sums them, keeps the positive part and upsamples to the image: a coarse "where" map.
Guided Grad-CAM multiplies it with Guided Backprop for a sharp "what, where" map. captum's
``LayerGradCam`` / ``GuidedGradCam`` are the test oracles.

On a Vision Transformer (a module with a ``grid`` attribute: patch rows, columns) a layer whose output is
tokens, (n, 1 + rows * cols, dim) with the [CLS] token first, is a Grad-CAM layer too: the [CLS] token is
dropped and the patch tokens are laid out as an (n, dim, rows, cols) map, then the same weighting (what
pytorch-grad-cam does with its ``reshape_transform`` for ViTs). The default there is the tokens entering the
last block's attention (its first LayerNorm): at the last block's *output* the gradient on every patch token is
exactly zero, because the head reads only the [CLS] token after a per-token LayerNorm, and every map is blank.
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
from core.attribution.torch_ops import captured, target_scores, this_thread_hooks, to_device, torch_parts
from core.batching import for_each_range
from core.errors import ParameterError, unknown_name
from core.params import param
from core.progress import ProgressCallback

INTERPOLATIONS = ("bilinear", "nearest")


@dataclass(frozen=True)
class GradCamParams:
    """Grad-CAM parameters.

    Attributes
    ----------
    layer : str, optional
        A layer with a spatial (n, channels, h, w) output, or on a Vision Transformer a layer with a token
        output (n, 1 + rows * cols, dim). Default: the output of the last convolutional block, after its
        activation; on a Vision Transformer the tokens entering the last block's attention (:func:`default_layer`).
    interpolation : {"bilinear", "nearest"}
        How the layer-resolution map is enlarged to the image (captum's default is nearest).
    """

    layer: str | None = param(None, "Layer", "layer", choices="layers", names="layer_label",
                              help="a layer with a spatial feature map (or a Vision Transformer's patch tokens); "
                                   "the default is the output of the last convolutional block, after its activation "
                                   "(on a Vision Transformer: the tokens entering the last block's attention). Before "
                                   "the activation the weighted channels are often negative everywhere and the map "
                                   "comes out blank; at a transformer's last output only the [CLS] token reaches the "
                                   "head and the map is blank too.")
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
_TOKENS: dict[tuple[str, tuple[int, ...]], dict[str, str]] = {}  # token layer -> what it is (the picker's note)


def spatial_layers(adapter: ModelAdapter, image_shape: tuple[int, ...]) -> list[str]:
    """Layers whose output is a (n, channels, h, w) map for images of ``image_shape`` (C, H, W), in forward order.

    On a Vision Transformer (a module with ``grid``) also its token layers (:func:`token_layers`), and not its
    attention maps (n, heads, tokens, tokens), which are 4-d but no feature map. Found with one forward pass
    of a blank image, remembered per model fingerprint and shape.
    """
    return list(_SPATIAL_CACHE[_discover(adapter, image_shape)])


def token_layers(adapter: ModelAdapter, image_shape: tuple[int, ...]) -> dict[str, str]:
    """A Vision Transformer's token layers Grad-CAM reads, each with what it is, in forward order.

    A token layer is a leaf module whose output is (n, 1 + rows * cols, dim) on a module with ``grid`` = (rows,
    cols): the [CLS] token then the patches. Listed: the LayerNorms and identity taps (the residual stream
    between the blocks' parts). The note says which block's attention or MLP the tokens enter, and when their
    patch tokens never reach the head (their gradient is exactly zero, so Grad-CAM there is blank). Empty for
    other models.
    """
    return dict(_TOKENS[_discover(adapter, image_shape)])


def pre_activation_layers(adapter: ModelAdapter, image_shape: tuple[int, ...]) -> set[str]:
    """Spatial layers whose output goes through an activation next (a convolution before its ReLU).

    Grad-CAM at such a layer sums signed channels; its ReLU then often leaves a blank map.
    """
    return set(_PRE_ACTIVATION[_discover(adapter, image_shape)])


def layer_label(name: str, pre_activation: set[str], tokens: dict[str, str] | None = None) -> str:
    """The layer picker's label: pre-activation layers say so, token layers say what they are."""
    if tokens and name in tokens:
        return f"{name} ({tokens[name]})"
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
    n_tokens = _token_count(module)
    spatial = [name for name in seen if len(shapes[name]) == 4
               and not (n_tokens and shapes[name][-2:] == (n_tokens, n_tokens))]  # a ViT's attention maps
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
    tokens: dict[str, str] = {}
    if n_tokens:
        taps = [name for name in seen if len(shapes[name]) == 3 and shapes[name][1] == n_tokens
                and isinstance(leaves[name], (torch.nn.LayerNorm, torch.nn.Identity))]
        tokens = _token_notes(module, taps, key[1], device)
        spatial += list(tokens)
        blocks = _blocks(module)
        if blocks:
            prefix, count = blocks
            last = next((name for name in tokens if name.startswith(f"{prefix}.{count - 1}.")
                         and isinstance(leaves[name], torch.nn.LayerNorm)), None)
            default = last or default
    _SPATIAL_CACHE[key], _PRE_ACTIVATION[key], _DEFAULT[key], _TOKENS[key] = spatial, pre_activation, default, tokens
    return key


def _token_count(module: Any) -> int:
    """1 + rows * cols for a module with ``grid`` (a Vision Transformer: [CLS] then the patches), else 0."""
    grid = getattr(module, "grid", None)
    try:
        rows, cols = (int(g) for g in grid)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return 0
    return 1 + rows * cols


def _blocks(module: Any) -> tuple[str, int] | None:
    """(name, length) of the module's longest ``nn.ModuleList`` (the transformer blocks), or None."""
    import torch

    lists = [(len(m), name) for name, m in module.named_modules() if name and isinstance(m, torch.nn.ModuleList) and len(m)]
    if not lists:
        return None
    length, name = max(lists, key=lambda pair: pair[0])  # the first of the longest, in module order
    return name, length


def _token_notes(module: Any, taps: list[str], image_shape: tuple[int, ...], device: str) -> dict[str, str]:
    """Per token layer (forward order), what it is: which block's attention / MLP its tokens enter, or the block's
    output; "blank" where the gradient of the scores on its patch tokens is exactly zero (they never reach the head).

    The zero test is one forward / backward pass of a fixed random image and a random mix of the outputs.
    """
    import torch

    blocks = _blocks(module)
    notes: dict[str, str] = {}
    per_block: dict[int, list[str]] = {}
    for name in taps:
        index = None
        if blocks and name.startswith(f"{blocks[0]}."):
            head = name[len(blocks[0]) + 1:].split(".", 1)[0]
            index = int(head) if head.isdigit() else None
        if index is None:
            notes[name] = "tokens" if not blocks else "tokens after the blocks" if per_block else "tokens before the blocks"
            continue
        per_block.setdefault(index, []).append(name)
    named = dict(module.named_modules())
    for index, names in per_block.items():
        where = f"block {index + 1} of {blocks[1]}" if blocks else f"block {index + 1}"
        norms = [n for n in names if isinstance(named[n], torch.nn.LayerNorm)]
        for name in names:
            if name in norms[:2]:
                notes[name] = f"tokens entering {where}'s {'attention' if name == norms[0] else 'MLP'}"
            elif name == names[-1] and name not in norms:
                notes[name] = f"{where}'s output tokens"
            else:
                notes[name] = f"tokens in {where}"
    ordered = {name: notes[name] for name in taps}
    if not taps:
        return ordered
    captured_out: dict[str, Any] = {}
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((1, *image_shape), generator=generator).to(device)

    def keep(name: str, out: Any) -> None:
        captured_out.setdefault(name, out)

    hooks = {named[name]: (lambda _m, _i, out, _name=name: keep(_name, out)) for name in taps}
    with this_thread_hooks(module, hooks), torch.enable_grad():  # other sessions' passes are not ours
        out = module(x.requires_grad_(True))
        mix = torch.rand(out.shape, generator=generator).to(out.device)
        reached = [n for n in taps if n in captured_out and captured_out[n].requires_grad]
        grads = torch.autograd.grad((out * mix).sum(), [captured_out[n] for n in reached],
                                    allow_unused=True) if reached else ()
    for name, grad in zip(reached, grads):
        if grad is None or not bool(grad[:, 1:].abs().sum() > 0):
            ordered[name] += "; its patch tokens never reach the head: blank maps"
    return ordered


def _gradcam_unsupported(adapter: ModelAdapter) -> str | None:
    reason = layers_unsupported(adapter, "Grad-CAM")
    if reason:
        return reason
    import torch

    module = adapter.torch_module()
    if not _token_count(module) and not any(isinstance(m, torch.nn.Conv2d) for m in module.modules()):
        return "Grad-CAM needs a convolutional layer (a spatial feature map); this model has no Conv2d."
    return None


def layer_cams(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, layer: str, *, batch_size: int,
               progress: ProgressCallback | None = None) -> np.ndarray:
    """Grad-CAM at the layer's resolution, ndarray of shape (n, h, w), float32 (after the ReLU).

    At a token layer (n, 1 + rows * cols, dim) of a Vision Transformer, (n, rows, cols): the [CLS] token dropped,
    the patch tokens laid out on the patch grid as channels x rows x cols.
    """
    torch, module, device = torch_parts(adapter)
    listed = spatial_layers(adapter, x.shape[1:])
    n_tokens = _token_count(module)
    # On a ViT any module with a token output is a Grad-CAM layer (the picker lists the LayerNorms and taps).
    if layer not in listed and not (n_tokens and layer in dict(module.named_modules())):
        raise unknown_name("spatial layer for Grad-CAM", layer, listed)
    xt = to_device(torch, x, device)
    tt = to_device(torch, target, device, torch.long)
    chunks: dict[int, np.ndarray] = {}

    def step(start: int, stop: int) -> None:
        inputs = xt[start:stop].detach().requires_grad_(True)
        with captured(module, layer) as outputs, torch.enable_grad():
            scores = target_scores(adapter, module(inputs), tt[start:stop])
            activation = outputs[-1]
            (grads,) = torch.autograd.grad(scores.sum(), activation)
        activation = activation.detach()
        if layer not in listed and (activation.dim() != 3 or activation.shape[1] != n_tokens):
            raise ParameterError(f"Grad-CAM needs a layer with a spatial map or {n_tokens} tokens ([CLS] and the "
                                 f"patches); {layer!r} outputs shape {tuple(activation.shape)}.")
        if activation.dim() == 3:  # ViT tokens: drop [CLS], patches -> (n, dim, rows, cols)
            activation, grads = tokens_to_grid(activation, module.grid), tokens_to_grid(grads, module.grid)
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * activation).sum(dim=1))
        chunks[start] = cam.float().cpu().numpy()

    for_each_range(step, len(x), batch_size, owner="Grad-CAM", progress=progress, message="Grad-CAM")
    return np.concatenate([chunks[k] for k in sorted(chunks)])


def tokens_to_grid(tokens: Any, grid: tuple[int, int]) -> Any:
    """(n, 1 + rows * cols, dim) tokens, [CLS] first -> the patch tokens as an (n, dim, rows, cols) map."""
    rows, cols = (int(g) for g in grid)
    patches = tokens[:, 1:]
    return patches.transpose(1, 2).reshape(len(tokens), patches.shape[2], rows, cols)


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
