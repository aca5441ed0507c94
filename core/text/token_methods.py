"""Text methods that look inside a torch text model's tokens: Integrated Gradients and attention.

- ``integrated_gradients``: Integrated Gradients (Sundararajan et al. 2017) on the output of the
  model's token embeddings (a transformer's ``get_input_embeddings()``, another model's first
  ``nn.Embedding``), from a baseline where every word token is the pad token (special tokens and
  positions kept), along the same quadratures as the image method (captum's
  ``LayerIntegratedGradients`` is the oracle in tests/core/test_token_methods.py and the peer in
  bench/transformers.py). Own code rather than captum because captum is not a runtime dependency
  and the path here is one batched forward / backward per chunk of steps.
- ``attention``: one layer's attention (one head, or the mean of the heads) from the model's read-out
  position: the first token for a ``*ForSequenceClassification`` (its head reads [CLS]), the mean
  over the tokens for a head on mean-pooled states.
- ``attention_rollout``: attention rollout (Abnar & Zuidema 2020): each layer's head-mean attention
  plus the identity for the residual, rows renormalised, multiplied from the first layer up, read
  out as above.

Token values are summed into the page's words (:func:`core.text.text_methods.words_from_tokens`);
attention values are unsigned. The attention methods need a transformer (an adapter with a
:class:`core.adapters.transformer_adapter.TransformerClassifier`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.attribution.gradients import IG_RULES, ig_path
from core.attribution.base import check_choice
from core.errors import InputShapeError, check_int
from core.explanation import Method, register
from core.params import param
from core.progress import ProgressCallback, report
from core.store import ArtifactStore, default_store
from core.text.lime_text import LIBRARIES, TextExplanation, resolve_target
from core.text.text_methods import (
    _embedding_layer,
    _gradient_unsupported,
    require_gradients,
    token_owners,
    words_from_tokens,
)
from core.text.words import WordDocument

HEADS = ("mean",)  # besides a head's number


@dataclass(frozen=True)
class TextIGParams:
    """Integrated Gradients on the token embeddings.

    Attributes
    ----------
    steps : int >= 2
        Points on the path from the baseline (pad tokens) to the text.
    rule : {"gausslegendre", "riemann_trapezoid", "riemann_middle"}
    batch_size : int >= 1
        Path points per forward / backward pass. Does not change the result.
    """

    steps: int = param(32, "Steps", "steps", low=2, high=300, help="points on the path from the all-padding text "
                                                                      "to the text; each costs a forward and backward pass")
    rule: str = param("gausslegendre", "Quadrature", "rule", choices=IG_RULES)
    batch_size: int = 16

    def __post_init__(self) -> None:
        check_int("steps", self.steps, "TextIGParams", minimum=2)
        check_choice("rule", self.rule, "TextIGParams", IG_RULES)
        check_int("batch_size", self.batch_size, "TextIGParams", minimum=1)


@dataclass(frozen=True)
class AttentionParams:
    """Which attention map: a layer (1 = nearest the input) and a head (or the mean of the heads)."""

    layer: int = param(0, "Layer", "layer", low=0, high=48,
                       help="1 is nearest the input; 0 means the last layer")
    head: int = param(-1, "Head", "head", low=-1, high=64, help="-1 averages the heads")

    def __post_init__(self) -> None:
        check_int("layer", self.layer, "AttentionParams", minimum=0)
        check_int("head", self.head, "AttentionParams", minimum=-1)


@dataclass(frozen=True)
class RolloutParams:
    """Attention rollout has no parameters: heads are averaged and the residual counted as in the paper."""


def _result(method: str, adapter: ModelAdapter, doc: WordDocument, weights: np.ndarray, k: int, proba: np.ndarray,
            params: dict[str, Any]) -> TextExplanation:
    p = np.asarray(proba, dtype=np.float64)
    return TextExplanation(method, doc, weights, np.argsort(-np.abs(weights), kind="stable"), int(k),
                           tuple(adapter.class_names), p / p.sum(), path="gradient" if method == "integrated_gradients"
                           else "attention", params=params)


def _target_key(target: str | int) -> str | int:
    return target if isinstance(target, str) else int(target)


# -- Integrated Gradients -----------------------------------------------------------------------------------
def baseline_input(adapter: ModelAdapter, packed: Any, owners: np.ndarray) -> Any:
    """The model input with every word token (owner >= 0) replaced by the pad token."""
    base = packed.clone()
    ids = base[:, 0] if base.dim() == 3 else base
    pad = adapter.baseline_token() if hasattr(adapter, "baseline_token") else 0
    positions = np.flatnonzero(owners >= 0)
    ids[0, positions] = pad
    return base


def explain_integrated_gradients(adapter: ModelAdapter, text: str, target: str | int = "predicted",
                                 params: TextIGParams = TextIGParams(), progress: ProgressCallback | None = None,
                                 store: ArtifactStore | None = None) -> TextExplanation:
    """Integrated Gradients of P(target) at the token embeddings, summed per word (see the module docstring)."""
    require_gradients(adapter, "Integrated Gradients")
    doc = WordDocument.parse(text)
    doc.require_words()

    def compute() -> TextExplanation:
        import torch

        from core.attribution.torch_ops import this_thread_hooks

        _, layer = _embedding_layer(adapter)
        module = adapter.torch_module()
        owners = token_owners(adapter, doc)
        packed = adapter.to_tensor([text])
        base_packed = baseline_input(adapter, packed, owners)
        alphas_np, weights_np = ig_path(params.steps, params.rule)
        with torch.inference_mode():
            proba = module(packed).float()
            proba = torch.softmax(proba, dim=1) if adapter.outputs == "logits" else proba
            p0 = proba[0].cpu().double().numpy()
            emb = layer(packed[:, 0] if packed.dim() == 3 else packed).float()
            base = layer(base_packed[:, 0] if base_packed.dim() == 3 else base_packed).float()
        k = resolve_target(p0, target, len(p0), tuple(adapter.class_names))
        emb, base = emb.clone(), base.clone()  # out of inference mode: usable in autograd
        delta = emb - base
        total = torch.zeros_like(emb[0])
        steps = len(alphas_np)
        for start in range(0, steps, params.batch_size):
            report(progress, start / steps, f"Integrated Gradients: path points {start + 1}-"
                                            f"{min(start + params.batch_size, steps)} of {steps}")
            a = torch.as_tensor(alphas_np[start:start + params.batch_size], dtype=torch.float32, device=emb.device)
            w = torch.as_tensor(weights_np[start:start + params.batch_size], dtype=torch.float32, device=emb.device)
            path = (base + a[:, None, None] * delta).requires_grad_(True)
            batch = packed.expand(len(a), *packed.shape[1:])
            with this_thread_hooks(module, {layer: lambda _m, _i, _o, _p=path: _p}), torch.enable_grad():
                out = module(batch).float()
                out = torch.softmax(out, dim=1) if adapter.outputs == "logits" else out
                (grad,) = torch.autograd.grad(out[:, k].sum(), path)
            total += (grad * w[:, None, None]).sum(dim=0)
        scores = (delta[0] * total).sum(dim=-1).detach().cpu().double().numpy()
        weights = words_from_tokens(doc, owners, scores)
        return _result("integrated_gradients", adapter, doc, weights, k, p0,
                       {"steps": params.steps, "rule": params.rule, "tokens": int(len(owners)),
                        "token_sum": float(scores.sum())})

    return (store or default_store()).cached(
        compute, op="integrated_gradients_text", model_fingerprint=adapter.fingerprint,
        data_fingerprint=doc.fingerprint,
        params={"target": _target_key(target), "steps": params.steps, "rule": params.rule}, libraries=LIBRARIES)


# -- attention ----------------------------------------------------------------------------------------------
def _attention_unsupported(adapter: ModelAdapter) -> str:
    reason = _gradient_unsupported(adapter)
    if reason:
        return reason
    if adapter.info.extra.get("architecture") != "transformer":
        return "the model has no attention layers (it is not a transformer)."
    return ""


def attention_maps(adapter: ModelAdapter, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(attentions of shape (layers, heads, tokens, tokens), the model's probabilities, the read-out weights).

    The read-out weights over the tokens: one-hot on the first token for a model with its own head, uniform
    over the tokens for a head on mean-pooled states.
    """
    reason = _attention_unsupported(adapter)
    if reason:
        raise InputShapeError(f"Attention does not support {adapter.info.name!r}: {reason}",
                              hint="use Integrated Gradients, LIME or leave-one-word-out occlusion.")
    import torch

    module = adapter.torch_module()
    packed = adapter.to_tensor([text])
    with torch.inference_mode():
        logits, attentions = module(packed, output_attentions=True)
        proba = torch.softmax(logits.float(), dim=1)[0].cpu().double().numpy()
    if not attentions or attentions[0] is None:
        raise InputShapeError(f"Model {adapter.info.name!r} returned no attention maps.",
                              hint="load it with attn_implementation='eager' (TrustLens does for the folders it loads).")
    att = torch.stack([a[0] for a in attentions]).float().cpu().numpy()
    n = att.shape[-1]
    readout = np.zeros(n)
    if getattr(module, "head", None) is not None:
        readout[:] = 1.0 / n
    else:
        readout[0] = 1.0
    return att, proba, readout


def rollout_matrix(att: np.ndarray) -> np.ndarray:
    """Attention rollout of maps (layers, heads, tokens, tokens): per layer the heads' mean plus the identity
    (the residual), rows renormalised, multiplied from the first layer up; float64, (tokens, tokens).

    In torch, on the torch threads the model just used (numpy's BLAS starting its own threads after a torch
    pass cost up to 17 ms here for six 128 x 128 products).
    """
    import torch

    maps = torch.from_numpy(np.ascontiguousarray(att)).double().mean(dim=1)
    eye = torch.eye(maps.shape[-1], dtype=torch.float64)
    joint = eye
    for layer in maps:
        a = 0.5 * layer + 0.5 * eye
        joint = (a / a.sum(dim=-1, keepdim=True)) @ joint
    return joint.numpy()


def explain_attention(adapter: ModelAdapter, text: str, target: str | int = "predicted",
                      params: AttentionParams = AttentionParams(), rollout: bool = False,
                      store: ArtifactStore | None = None) -> TextExplanation:
    """One layer's (and head's) attention, or the rollout over every layer, from the read-out, per word."""
    doc = WordDocument.parse(text)
    doc.require_words()
    reason = _attention_unsupported(adapter)
    if reason:
        raise InputShapeError(f"Attention does not support {adapter.info.name!r}: {reason}",
                              hint="use Integrated Gradients, LIME or leave-one-word-out occlusion.")

    def compute() -> TextExplanation:
        att, proba, readout = attention_maps(adapter, text)
        n_layers, n_heads = att.shape[:2]
        k = resolve_target(proba, target, len(proba), tuple(adapter.class_names))
        if rollout:
            scores = readout @ rollout_matrix(att)
            used: dict[str, Any] = {"layers": int(n_layers)}
        else:
            layer = params.layer or n_layers
            if layer > n_layers or params.head >= n_heads:
                raise InputShapeError(f"Model {adapter.info.name!r} has {n_layers} layers of {n_heads} heads; "
                                      f"asked for layer {layer}, head {params.head}.",
                                      hint=f"pick a layer 1-{n_layers} (0: the last) and a head 0-{n_heads - 1} "
                                           "(-1: their mean).")
            maps = att[layer - 1]
            scores = readout @ (maps.mean(axis=0) if params.head < 0 else maps[params.head])
            used = {"layer": int(layer), "head": int(params.head)}
        owners = token_owners(adapter, doc)
        weights = words_from_tokens(doc, owners, scores)
        return _result("attention_rollout" if rollout else "attention", adapter, doc, weights, k, proba, used)

    key = {"target": _target_key(target), "rollout": rollout}
    if not rollout:
        key.update(layer=params.layer, head=params.head)
    return (store or default_store()).cached(compute, op="attention_text", model_fingerprint=adapter.fingerprint,
                                             data_fingerprint=doc.fingerprint, params=key, libraries=LIBRARIES)


register(Method(
    name="integrated_gradients", title="Integrated Gradients", params_type=TextIGParams, modality="text", prefix="tig",
    order=4,
    run=lambda adapter, text, target, params, progress, store: explain_integrated_gradients(adapter, text, target, params,
                                                                                              progress, store),
    unsupported=lambda adapter: _gradient_unsupported(adapter) or None, signed=lambda p: True, output="probability",
    needs_gradients=True,
    description="The class probability's gradient at the token embeddings, integrated along the path from an "
                "all-padding text, times the embeddings' difference (sums to the probability's change).",
))
register(Method(
    name="attention", title="Attention", params_type=AttentionParams, modality="text", prefix="att", order=5,
    run=lambda adapter, text, target, params, progress, store: explain_attention(adapter, text, target, params,
                                                                                   store=store),
    unsupported=lambda adapter: _attention_unsupported(adapter) or None, signed=lambda p: False, output="probability",
    needs_gradients=False,
    description="How much the read-out position attends to each word at one layer and head (not an attribution: "
                "the lecture's caveat).",
))
register(Method(
    name="attention_rollout", title="Attention rollout", params_type=RolloutParams, modality="text", order=6,
    run=lambda adapter, text, target, params, progress, store: explain_attention(adapter, text, target, rollout=True,
                                                                                   store=store),
    unsupported=lambda adapter: _attention_unsupported(adapter) or None, signed=lambda p: False, output="probability",
    needs_gradients=False,
    description="Attention multiplied through every layer, with the residual connection counted (Abnar & Zuidema 2020).",
))
