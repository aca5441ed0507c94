"""Attention rollout on a Vision Transformer's patches (Abnar & Zuidema 2020), as an image map.

Each block's attention (heads averaged) plus the identity for the residual connection, rows
renormalised, multiplied from the first block up; the [CLS] token's row over the patch tokens is how
much each patch flows into what the head reads. The map is that value on every pixel of its patch
(a patch map: 4 x 4 blocks of 7 x 7 pixels on MNIST), unsigned and the same for every class:
attention says where the model looked, not which class a patch speaks for (the lecture's caveat;
compare it with the gradients beside it).

Runs on models whose module offers ``attention_modules()`` (the modules whose outputs are the
attention maps, e.g. :class:`core.nets.VisionTransformer`) and ``grid`` (patch rows, columns).
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
    if not callable(getattr(module, "attention_modules", None)) or not hasattr(module, "grid"):
        return "the model has no attention layers (it is not a Vision Transformer)."
    return None


def patch_rollout(attentions: list[np.ndarray]) -> np.ndarray:
    """Per image, the [CLS] row of the rollout over the patch tokens: (n, patches), from per-block maps
    of shape (n, heads, tokens, tokens) with [CLS] first."""
    from core.text.token_methods import rollout_matrix

    stacked = np.stack(attentions, axis=1)  # (n, blocks, heads, tokens, tokens)
    return np.stack([rollout_matrix(maps)[0, 1:] for maps in stacked])


def _attention_rollout(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: RolloutParams, *,
                       batch_size: int, progress: ProgressCallback | None = None,
                       context: ImageContext | None = None) -> MethodResult:
    import torch

    from core.attribution.torch_ops import this_thread_hooks

    module = adapter.torch_module()
    rows, cols = module.grid
    n, c, h, w = x.shape
    out = np.zeros((n, c, h, w), dtype=np.float32)
    for start in range(0, n, batch_size):
        report(progress, start / max(n, 1), f"attention rollout: images {start + 1}-{min(start + batch_size, n)} of {n}")
        captured: list[Any] = []
        hooks = {m: (lambda _m, _i, output, _into=captured: _into.append(output.detach().float().cpu().numpy()))
                 for m in module.attention_modules()}
        with this_thread_hooks(module, hooks), torch.inference_mode():
            module(torch.as_tensor(x[start:start + batch_size]).to(adapter.device))
        patches = patch_rollout(captured).reshape(-1, rows, cols)
        pixels = np.kron(patches, np.ones((h // rows, w // cols)))  # each patch's value on all of its pixels
        out[start:start + batch_size] = (pixels / c)[:, None].astype(np.float32)  # channels sum back to the map
    return MethodResult(out)


register(Method(
    name="attention_rollout", prefix="", order=12, title="Attention rollout", params_type=RolloutParams,
    run=_attention_rollout, unsupported=rollout_unsupported, signed=lambda p: False, output="attention",
    needs_gradients=False,
    description="How much each patch flows into the [CLS] token through every block's attention and residual "
                "(Abnar & Zuidema 2020): where a Vision Transformer looked, not which class a patch supports.",
))
