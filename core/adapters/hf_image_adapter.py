"""Hugging Face image classifiers (``*ForImageClassification``, e.g. ViT) behind the same adapter as every torch model.

:class:`HFImageClassifier` wraps the transformers model as one ``nn.Module`` that takes the app's image batch,
``(n, C, H, W)`` float in [0, 1] at the data's own size, and does in torch what the model's image processor
does with PIL (:class:`core.upload.transformers_folder.ImageProcessing`):

- channels: grey images (1 channel) into a 3-channel model are repeated into the three channels, colour
  images into a 1-channel model averaged (the adapter's ``info.extra["channels"]`` says which);
- resize (bilinear, antialiased as PIL is when shrinking) to the processor's size, centre crop, then to
  the model's ``image_size`` if still needed;
- ``pixels * 255 * rescale_factor`` and ``(pixels - mean) / std``;

then returns the logits. Everything is differentiable, so the gradient methods (gradient, SmoothGrad,
Integrated Gradients) explain the user's pixels, and occlusion / LIME perturb them. The identity modules
``input``, ``pixel_values`` (what the transformers model receives), ``cls.K`` (the [CLS] token of hidden
state K, 0 = the embeddings; the spatial mean for a model without tokens) and ``logits`` are hook points,
and ``cls.K`` / ``logits`` the layers the Embeddings page maps.

For a ViT, ``grid`` is the patch grid and :meth:`HFImageClassifier.attention_maps` returns each block's
attention (eager attention: ``output_attentions=True``), which attention rollout
(core/attribution/attention_rollout.py) reads; :meth:`HFImageClassifier.layer_groups` names the embeddings
and each encoder block, the units the model-randomisation check (core/trust/sanity.py) re-initialises.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core.adapters.torch_adapter import TorchAdapter
from core.errors import InputShapeError

# Models whose tokens are [CLS] followed by one token per patch, row by row: attention rollout maps them onto
# the image. Others (DeiT's distillation token, Swin's windows) run every other method.
ROLLOUT_MODEL_TYPES = ("vit",)


def _module_base() -> type:
    import torch

    return torch.nn.Module


def channel_note(data_channels: int | None, model_channels: int) -> str:
    """What the wrapper does with ``data_channels`` for a model of ``model_channels`` (for the model card)."""
    if data_channels is None or data_channels == model_channels:
        return f"{model_channels} channel{'s' if model_channels != 1 else ''}, as the model takes"
    if data_channels == 1 and model_channels == 3:
        return "grey images (1 channel) repeated into the model's 3 channels"
    if data_channels == 3 and model_channels == 1:
        return "colour images (3 channels) averaged into the model's 1 channel"
    return f"{data_channels}-channel images for a {model_channels}-channel model: not taken"


class HFImageClassifier(_module_base()):  # type: ignore[misc]
    """``forward(images) -> logits`` for a transformers ``*ForImageClassification`` and its processor's settings.

    Parameters
    ----------
    model : a transformers ``*ForImageClassification`` (eager attention)
    processing : core.upload.transformers_folder.ImageProcessing
    """

    def __init__(self, model: Any, processing: Any) -> None:
        import torch

        super().__init__()
        self.model = model
        self.processing = processing
        self.input = torch.nn.Identity()
        self.pixel_values = torch.nn.Identity()
        config = model.config
        n_states = int(getattr(config, "num_hidden_layers", 0) or 0) + 1
        # a ModuleDict, not a ModuleList: the encoder's blocks stay the model's only list of layers
        self.cls = torch.nn.ModuleDict({str(k): torch.nn.Identity() for k in range(n_states)})
        self.logits = torch.nn.Identity()
        if processing.mean is not None:
            shape = (1, -1, 1, 1)
            self.register_buffer("mean", torch.tensor(processing.mean, dtype=torch.float32).reshape(shape))
            self.register_buffer("std", torch.tensor(processing.std, dtype=torch.float32).reshape(shape))
        patch = getattr(config, "patch_size", None)
        self.grid: tuple[int, int] | None = None
        if getattr(config, "model_type", None) in ROLLOUT_MODEL_TYPES and isinstance(patch, int) and patch > 0:
            self.grid = (processing.height // patch, processing.width // patch)

    # -- preprocessing ---------------------------------------------------------------------------------
    @staticmethod
    def _resize(x: Any, size: tuple[int, int]) -> Any:
        import torch

        if tuple(x.shape[-2:]) == tuple(size):
            return x
        return torch.nn.functional.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear",
                                               align_corners=False, antialias=True)

    def prepare(self, x: Any) -> Any:
        """The model's ``pixel_values`` for images in [0, 1] of shape (n, C, H, W), differentiably."""
        p = self.processing
        channels = int(x.shape[1])
        if channels != p.channels:
            if channels == 1 and p.channels == 3:
                x = x.expand(-1, 3, -1, -1)
            elif channels == 3 and p.channels == 1:
                x = x.mean(dim=1, keepdim=True)
            else:
                raise InputShapeError(f"The model takes {p.channels}-channel images; these have {channels}.",
                                      hint="upload grey or RGB images.")
        x = x.float() * 255.0
        if p.resize is not None:
            x = self._resize(x, p.resize)
        elif p.shortest_edge is not None:
            h, w = int(x.shape[-2]), int(x.shape[-1])
            short, long = (h, w) if h <= w else (w, h)
            new_short, new_long = p.shortest_edge, int(p.shortest_edge * long / short)
            x = self._resize(x, (new_short, new_long) if h <= w else (new_long, new_short))
        if p.crop is not None and x.shape[-2] >= p.crop[0] and x.shape[-1] >= p.crop[1]:
            top, left = (int(x.shape[-2]) - p.crop[0]) // 2, (int(x.shape[-1]) - p.crop[1]) // 2
            x = x[..., top:top + p.crop[0], left:left + p.crop[1]]
        x = self._resize(x, (p.height, p.width))  # no-op after a matching resize or crop
        if p.rescale_factor is not None:
            x = x * p.rescale_factor
        if p.mean is not None:
            x = (x - self.mean) / self.std
        return x

    # -- forward -----------------------------------------------------------------------------------------
    def forward(self, x: Any) -> Any:
        pixels = self.pixel_values(self.prepare(self.input(x)))
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        for k, hidden in enumerate((out.hidden_states or ())[:len(self.cls)]):
            self.cls[str(k)](hidden[:, 0] if hidden.ndim == 3 else hidden.mean(dim=tuple(range(2, hidden.ndim))))
        return self.logits(out.logits)

    def attention_maps(self, x: Any) -> list[Any]:
        """Each block's attention, (n, heads, tokens, tokens) with [CLS] first, for images ``x`` (as ``forward``)."""
        out = self.model(pixel_values=self.pixel_values(self.prepare(self.input(x))), output_attentions=True)
        maps = list(out.attentions or ())
        if not maps:
            raise InputShapeError(f"{type(self.model).__name__} returned no attention maps.",
                                  hint="attention rollout needs a model loaded with eager attention.")
        if self.grid is not None and maps[-1].shape[-1] != 1 + self.grid[0] * self.grid[1]:
            raise InputShapeError(f"{type(self.model).__name__} has {maps[-1].shape[-1]} tokens, not [CLS] and the "
                                  f"{self.grid[0]}x{self.grid[1]} patches attention rollout maps onto the image.")
        return maps

    def layer_groups(self) -> list[str]:
        """The units the randomisation test re-initialises together: the embeddings, then each encoder block
        (the ``ModuleList`` of ``num_hidden_layers`` blocks, whatever the architecture names it)."""
        import torch

        n_blocks = len(self.cls) - 1
        names = [n for n, m in self.named_modules()]
        embeddings = next((n for n in names if n.startswith("model.") and n.endswith(".embeddings")), None)
        blocks = next((n for n, m in self.named_modules()
                       if isinstance(m, torch.nn.ModuleList) and len(m) == n_blocks and n.startswith("model.")), None)
        return [*([embeddings] if embeddings else []), *([f"{blocks}.{i}" for i in range(n_blocks)] if blocks else [])]


class HFImageAdapter(TorchAdapter):
    """A :class:`HFImageClassifier` as a :class:`TorchAdapter` for images in [0, 1].

    Parameters
    ----------
    module : HFImageClassifier
    data_channels : int, optional
        The data's channel count, for the model card's note on how channels are adapted.
    Other parameters as :class:`TorchAdapter` (``input_kind`` is ``"image"``); ``encoder_fingerprint`` should
    identify the config and processor files.
    """

    default_batch_size = 32

    def __init__(self, module: Any, *, data_channels: int | None = None, **kwargs: Any) -> None:
        kwargs["input_kind"] = "image"
        self._data_channels = data_channels
        super().__init__(module, **kwargs)
        config, processing = module.model.config, module.processing
        self._info = replace(self._info, extra={
            **self._info.extra, "architecture": "transformer", "model_type": str(config.model_type),
            "layers": len(module.cls) - 1, "image_size": [processing.height, processing.width],
            "patch_grid": list(module.grid) if module.grid else None, "preprocessing": processing.describe(),
            "channels": channel_note(data_channels, processing.channels)})

    def with_module(self, module: Any, name: str) -> "HFImageAdapter":
        return HFImageAdapter(module, data_channels=self._data_channels, name=name, class_names=self.class_names,
                              outputs=self._outputs, encoder_fingerprint=self._encoder_fingerprint,
                              device=self.device, description=self.info.description)

    def layer_names(self) -> list[str]:
        """The [CLS] token after each layer (``cls.0``: the embeddings), then the logits."""
        return [f"cls.{k}" for k in range(len(self._module.cls))] + ["logits"]
