"""Attention rollout on a Vision Transformer's patches (Abnar & Zuidema 2020), as an image map.

Each block's attention (heads averaged) plus the identity for the residual connection, rows
renormalised, multiplied from the first block up; the [CLS] token's row over the patch tokens is how
much each patch flows into what the head reads. The map is that value on every pixel of its patch
(a patch map: 4 x 4 blocks of 7 x 7 pixels on MNIST), unsigned and the same for every class:
attention says where the model looked, not which class a patch speaks for (the lecture's caveat;
compare it with the gradients beside it).

Runs on models whose module offers ``grid`` (patch rows, columns) and either ``attention_maps(x)`` (each
block's maps for a batch, e.g. an uploaded Hugging Face ViT: core/adapters/hf_image_adapter.py) or
``attention_modules()`` (the modules whose outputs are the attention maps, read with forward hooks, e.g.
:class:`core.nets.VisionTransformer`). A patch's value covers the pixels it came from: the grid is spread over
the image as it is (an uploaded model resizes its input to the grid's image size itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.attribution.base import ImageContext, MethodResult, layers_unsupported
from core.explanation import Method, register
from core.progress import ProgressCallback, report


@dataclass(frozen=True)
class RolloutParams:
    """Attention rollout has no parameters: heads averaged, the residual counted as in the paper."""


def rollout_unsupported(adapter: ModelAdapter) -> str | None:
    reason = layers_unsupported(adapter, "Attention rollout")
    if reason:
        return reason
    module = adapter.torch_module()
    maps = callable(getattr(module, "attention_maps", None)) or callable(getattr(module, "attention_modules", None))
    if not maps:
        return "the model has no attention layers (it is not a Vision Transformer)."
    if not getattr(module, "grid", None):
        return ("the model's tokens are not one [CLS] token and a grid of patches (only a ViT's are), so its attention "
                "cannot be mapped onto the image.")
    return None


def patch_rollout(attentions: list[Any]) -> np.ndarray:
    """Per image, the [CLS] row of the rollout over the patch tokens: (n, patches), from per-block maps
    of shape (n, heads, tokens, tokens) with [CLS] first."""
    import torch

    # Only the [CLS] row of the product A_L ... A_1 is needed: a row vector times each block's matrix, from the last
    # block down, for the whole batch at once (tests/core/test_vit.py checks it against the full product by hand;
    # core.text.token_methods.rollout_matrix image by image cost 2.7-3x the forward pass, bench/transformers.py).
    row = None
    for maps in reversed(attentions):  # (n, heads, tokens, tokens) per block
        a = torch.as_tensor(maps).double().mean(dim=1)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=torch.float64)
        a = a / a.sum(dim=-1, keepdim=True)
        row = a[:, 0] if row is None else torch.einsum("nt,nts->ns", row, a)
    return row[:, 1:].numpy()


def _attention_rollout(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: RolloutParams, *,
                       batch_size: int, progress: ProgressCallback | None = None,
                       context: ImageContext | None = None) -> MethodResult:
    import torch

    from core.attribution.torch_ops import this_thread_hooks

    module = adapter.torch_module()
    rows, cols = module.grid
    n, c, h, w = x.shape
    # each pixel's patch (h // rows pixels a patch when the image splits evenly, else the nearest split)
    row_of, col_of = (np.arange(h) * rows) // h, (np.arange(w) * cols) // w
    maps_of = getattr(module, "attention_maps", None)
    out = np.zeros((n, c, h, w), dtype=np.float32)
    for start in range(0, n, batch_size):
        report(progress, start / max(n, 1), f"attention rollout: images {start + 1}-{min(start + batch_size, n)} of {n}")
        batch = torch.as_tensor(x[start:start + batch_size]).to(adapter.device)
        captured: list[Any]
        if callable(maps_of):
            with torch.inference_mode():
                captured = [a.detach().float().cpu() for a in maps_of(batch)]
        else:
            captured = []
            hooks = {m: (lambda _m, _i, output, _into=captured: _into.append(output.detach().float().cpu()))
                     for m in module.attention_modules()}
            with this_thread_hooks(module, hooks), torch.inference_mode():
                module(batch)
        patches = patch_rollout(captured).reshape(-1, rows, cols)
        pixels = patches[:, row_of][:, :, col_of]  # each patch's value on all of its pixels
        out[start:start + batch_size] = (pixels / c)[:, None].astype(np.float32)  # channels sum back to the map
    return MethodResult(out)


register(Method(
    name="attention_rollout", prefix="", order=12, title="Attention rollout", params_type=RolloutParams,
    run=_attention_rollout, unsupported=rollout_unsupported, signed=lambda p: False, output="attention",
    needs_gradients=False,
    description="How much each patch flows into the [CLS] token through every block's attention and residual "
                "(Abnar & Zuidema 2020): where a Vision Transformer looked, not which class a patch supports.",
))
