"""Layer-wise relevance propagation (LRP; Bach et al. 2015, Montavon et al. 2019).

LRP explains one class score by handing it back through the network, layer by layer, as
*relevance*. It starts at the output: the target class's raw score ``f_c(x)`` is its relevance,
every other output gets none. Each layer then splits the relevance ``R_k`` of each of its outputs
among its inputs in proportion to their contributions ``z_jk = a_j w_jk`` to that output, so that
(up to what biases and stabilisers absorb) the relevance is conserved: the input relevances add up
to the class score. The result is one signed value per input value, of the image's shape.

Rules (``R_j`` is the relevance of input ``j``, ``z_k = sum_j a_j w_jk + b_k`` the layer's output):

epsilon
    ``R_j = sum_k a_j w_jk / (z_k + eps * sign(z_k)) * R_k`` with ``sign(0) = +1``. For layers
    linear in their input (Linear, convolution, average pooling, batch norm with frozen statistics)
    this is ``a * grad_a( sum_k z_k(a) * s_k )`` with ``s = R / (z + eps * sign(z))`` held fixed,
    which is how it is computed here; max pooling uses the same expression, which hands each
    window's relevance to its largest input. With ``eps`` near 0 a bias-free ReLU network's
    epsilon-LRP equals gradient x input.
alpha_beta (Linear and convolution only; pooling and batch norm keep the epsilon rule)
    Each output is split into its positive and negative parts, ``z+ = W+ a+ + W- a- + b+`` and
    ``z- = W+ a- + W- a+ + b-`` (``W+``/``W-``: weights clamped to >= 0 / <= 0, ``a+``/``a-``
    likewise for the inputs, ``b+``/``b-`` for the bias), and
    ``R_j = sum_k (alpha * c+_jk / z+_k - beta * c-_jk / z-_k) R_k`` where ``c+_jk`` / ``c-_jk``
    are input ``j``'s terms of ``z+_k`` / ``z-_k``. Conservation needs ``alpha - beta = 1``.
    alpha=1, beta=0 ("Deep Taylor" / z+) only propagates positive evidence.
identity
    ReLU, Dropout, Flatten, Identity and the models' input normalisation
    (:class:`core.nets.Standardize`) pass relevance through unchanged (Flatten reshapes it back).
    ReLU: the relevance of a zero activation is already zero, so the mask adds nothing.
    Standardize: an elementwise affine map of the pixels; relevance of a standardised pixel is
    that pixel's relevance (captum's ``IdentityRule``).

Conservation: biases take their share ``b_k / z_k * R_k`` of each output's relevance, and the
stabiliser ``eps`` a little more, so for a model with biases the input relevance sums to less (or
more) than the class score; for a bias-free model under the epsilon rule with tiny ``eps`` they
match. Under alpha_beta, ``alpha - beta = 1`` conserves the relevance of a neuron only when it
has both positive and negative contributions: one whose contributions all have the same sign
(``z- = 0`` or ``z+ = 0``) hands on ``alpha R`` (or ``-beta R``), so with ``beta > 0`` the sum
drifts; with alpha=1, beta=0 a bias-free ReLU network conserves a positive class score. The
extras ``relevance_sum`` and ``output`` show both numbers.

LRP needs to know how every layer maps its input, so it only runs on chains of known layers: an
``nn.Sequential`` (nested Sequentials are flattened) of the layer types above. Anything else
(attention, GELU, residual blocks, custom modules) is refused with the offending layer's name.
The forward pass is run here layer by layer on the module's own submodules, without hooks and
without touching weights, so the shared module is never modified, not even for a moment (other
sessions use it from other threads). captum's ``LRP`` is the test oracle
(tests/core/test_attribution_lrp.py).
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
    check_number,
    layers_unsupported,
    register,
)
from core.attribution.torch_ops import to_device, torch_parts
from core.batching import for_each_range
from core.errors import ParameterError, TrustLensError
from core.params import param
from core.progress import ProgressCallback

RULES = ("epsilon", "alpha_beta")

# How each supported leaf layer propagates relevance. "linear": epsilon or alpha-beta (the chosen
# rule); "epsilon": always the epsilon rule; "identity": relevance passes through unchanged.
# Keyed by exact type name under torch.nn (subclasses may override forward with anything).
_LINEAR = ("Linear", "Conv1d", "Conv2d")
_EPSILON = ("AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "MaxPool1d", "MaxPool2d",
            "BatchNorm1d", "BatchNorm2d")
_IDENTITY = ("ReLU", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "Flatten", "Identity")
_ALTERNATIVES = "use Integrated Gradients or Gradient x input, which work on any differentiable model."


class UnsupportedModelError(TrustLensError):
    """A model LRP has no propagation rules for (not a chain, or a layer type without a rule)."""


@dataclass(frozen=True)
class LRPParams:
    """Layer-wise relevance propagation parameters.

    Attributes
    ----------
    rule : {"epsilon", "alpha_beta"}
        Rule for Linear and convolution layers (pooling and batch norm always use epsilon).
    epsilon : float >= 0
        Stabiliser added to every denominator, ``z + epsilon * sign(z)``: the epsilon rule's
        epsilon (larger values absorb the relevance of weakly activated neurons and give sparser,
        less noisy maps), and under alpha_beta the stabiliser of ``z+`` / ``z-`` and of the
        pooling layers. A denominator that is still exactly 0 (epsilon = 0) passes no relevance.
    alpha, beta : float
        Weights of the positive and negative contributions under alpha_beta; ``beta >= 0`` and
        ``alpha - beta = 1`` (conservation). Ignored by the epsilon rule.
    """

    rule: str = param("epsilon", "Rule", "rule", choices=RULES,
                      names={"epsilon": "epsilon (LRP-ε)", "alpha_beta": "alpha-beta (LRP-αβ)"})
    epsilon: float = param(1e-6, "ε", "epsilon", options=(1e-9, 1e-6, 1e-3, 1e-2, 0.1, 0.25, 1.0), when=("rule", "epsilon"),
                           help="absorbs weak or contradictory relevance: larger = sparser, less noisy maps")
    alpha: float = param(1.0, "α (β = α - 1)", "alpha", options=(1.0, 2.0, 3.0), when=("rule", "alpha_beta"),
                         help="weight of positive contributions; β = α - 1 keeps relevance conserved")
    beta: float = 0.0

    @classmethod
    def from_form(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The form asks for alpha only: beta = alpha - 1 (conservation); the epsilon rule uses neither."""
        if values.get("rule") == "alpha_beta":
            values["beta"] = float(values["alpha"]) - 1.0
        else:
            values["alpha"], values["beta"] = 1.0, 0.0
        return values

    def __post_init__(self) -> None:
        check_choice("rule", self.rule, "LRPParams", RULES)
        check_number("epsilon", self.epsilon, "LRPParams", 0.0)
        check_number("alpha", self.alpha, "LRPParams", 0.0)
        check_number("beta", self.beta, "LRPParams", 0.0)
        if abs(float(self.alpha) - float(self.beta) - 1.0) > 1e-9:
            raise ParameterError(
                f"The 'alpha' and 'beta' parameters of LRPParams must satisfy alpha - beta = 1 "
                f"(relevance conservation needs alpha - beta = 1). Got alpha={self.alpha}, beta={self.beta} instead.",
                hint="e.g. alpha=1, beta=0 (positive evidence only) or alpha=2, beta=1.",
            )


# -- the chain of layers ------------------------------------------------------------------------


def _rule_kind(layer: Any) -> str | None:
    """The rule kind of a supported leaf layer ("linear", "epsilon" or "identity"), else None."""
    from torch import nn

    from core.nets import Standardize

    kind = type(layer)
    if kind is Standardize:
        return "identity"
    if getattr(nn, kind.__name__, None) is not kind:  # not torch.nn's own class (e.g. a subclass)
        return None
    if kind.__name__ in _LINEAR:
        return "linear"
    if kind.__name__ in _EPSILON:
        # Batch norm without running statistics normalises with the batch's own statistics:
        # then one image's output depends on the others, and LRP's per-image story breaks.
        if kind.__name__.startswith("BatchNorm") and layer.running_mean is None:
            return None
        # Max pooling that also returns indices gives a tuple, not a tensor the next layer takes.
        if getattr(layer, "return_indices", False):
            return None
        return "epsilon"
    if kind.__name__ in _IDENTITY:
        return "identity"
    return None


def _no_rule(name: str, layer: Any) -> UnsupportedModelError:
    kind = type(layer).__name__
    if list(layer.children()):
        what = (f"LRP has no rule for block {name!r} ({kind}): it is a module with its own forward pass, "
                "not a chain of layers LRP can follow.")
    else:
        what = f"LRP has no rule for layer {name!r} ({kind})."
    supported = ", ".join(sorted({*_LINEAR, *_EPSILON, *_IDENTITY, "Standardize"}))
    return UnsupportedModelError(f"{what} LRP supports nn.Sequential chains of {supported}.", hint=_ALTERNATIVES)


def lrp_chain(module: Any) -> list[tuple[str, Any, str]]:
    """The model as a list of ``(name, layer, rule kind)``, input side first.

    Parameters
    ----------
    module : torch.nn.Module
        Must be an ``nn.Sequential`` (not a subclass with its own ``forward``); nested Sequentials
        are flattened.

    Raises
    ------
    UnsupportedModelError
        For any other model, or a layer without an LRP rule; the message names the layer.
    """
    from torch import nn

    def is_plain_sequential(m: Any) -> bool:
        return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward

    if not is_plain_sequential(module):
        raise UnsupportedModelError(
            f"LRP needs a model that is a chain of layers (torch.nn.Sequential); this model is a "
            f"{type(module).__name__} with its own forward pass, which LRP cannot follow layer by layer.",
            hint=_ALTERNATIVES,
        )
    chain: list[tuple[str, Any, str]] = []

    def walk(seq: Any, prefix: str) -> None:
        # Sequential.forward iterates ``_modules`` itself; named_children() would drop a layer
        # that appears twice, and the chain must list every application.
        for key, layer in seq._modules.items():
            name = f"{prefix}{key}"
            if is_plain_sequential(layer):
                walk(layer, f"{name}.")
                continue
            kind = _rule_kind(layer) if layer is not None and not list(layer.children()) else None
            if kind is None:
                raise _no_rule(name, layer)
            chain.append((name, layer, kind))

    walk(module, "")
    return chain


def lrp_unsupported(adapter: ModelAdapter) -> str | None:
    """Why LRP cannot run on ``adapter`` (None when it can); runs nothing through the model."""
    reason = layers_unsupported(adapter, "LRP")
    if reason:
        return reason
    try:
        lrp_chain(adapter.torch_module())
    except UnsupportedModelError as exc:
        return f"{exc.message} Try: {exc.hint}" if exc.hint else exc.message
    return None


# -- one layer forward and backward ---------------------------------------------------------


def _forward(torch: Any, layer: Any, kind: str, a: Any) -> Any:
    """The layer's output, computed without changing the layer (no running-statistic updates)."""
    name = type(layer).__name__
    if name == "ReLU":
        return torch.relu(a)  # never in place: ``a`` is kept as the previous layer's input record
    if name.startswith("Dropout"):
        return a  # LRP explains the deterministic (eval-mode) network
    if name.startswith("BatchNorm"):
        # F.batch_norm with training=False reads the running statistics and never updates them,
        # even if someone left the shared module in training mode.
        return torch.nn.functional.batch_norm(a, layer.running_mean, layer.running_var, layer.weight, layer.bias,
                                              training=False, eps=layer.eps)
    return layer(a)


def _divide(torch: Any, relevance: Any, z: Any, eps: float) -> Any:
    """``relevance / (z + eps * sign(z))`` with sign(0) = +1; 0 where that denominator is 0."""
    if eps > 0:  # the denominator is at least eps away from 0: one where and one divide
        return relevance / (z + torch.where(z >= 0, eps, -eps))
    safe = torch.where(z == 0, torch.ones_like(z), z)
    return torch.where(z == 0, torch.zeros_like(relevance), relevance / safe)


def _epsilon_rule(torch: Any, leaf: Any, z: Any, relevance: Any, eps: float) -> Any:
    """R_in = a * grad_a( sum(z * stop_grad(R / (z + eps sign z))) ), shape of ``a``.

    ``leaf`` is the layer's input as a leaf tensor and ``z`` its output, both from the single
    grad-enabled forward pass of :func:`_propagate`, so no layer runs twice.
    """
    # Gradient with respect to the leaf only: the layer's parameters never accumulate .grad.
    (grad,) = torch.autograd.grad(z, leaf, grad_outputs=_divide(torch, relevance, z.detach(), eps))
    return leaf.detach() * grad


def _linear_map(torch: Any, layer: Any, a: Any, weight: Any) -> Any:
    """The layer's map with ``weight`` and no bias (convolutions keep stride, padding mode...)."""
    if type(layer).__name__ == "Linear":
        return torch.nn.functional.linear(a, weight)
    return layer._conv_forward(a, weight, None)


def _alpha_beta_rule(torch: Any, layer: Any, a: Any, relevance: Any, params: LRPParams) -> Any:
    """Alpha-beta rule for a Linear or convolution layer; returns R_in of the shape of ``a``."""
    weight = layer.weight.detach()
    w_pos, w_neg = weight.clamp(min=0), weight.clamp(max=0)
    a_pos, a_neg = a.detach().clamp(min=0), a.detach().clamp(max=0)
    bias = layer.bias.detach() if layer.bias is not None else None
    if bias is not None and type(layer).__name__ != "Linear":
        bias = bias.reshape((-1,) + (1,) * (a.dim() - 2))  # (out,) -> (out, 1, ...): over positions

    def share(terms: list[tuple[Any, Any]], bias_part: Any) -> Any:
        """Relevance of each input from ``z = sum(W_t a_t) + bias_part``: sum_t a_t * W_t^T (R / z)."""
        leaves = [part.clone().requires_grad_(True) for part, _w in terms]
        with torch.enable_grad():
            outs = [_linear_map(torch, layer, leaf, w) for leaf, (_part, w) in zip(leaves, terms)]
            z = sum(outs) if bias_part is None else sum(outs) + bias_part
            scale = _divide(torch, relevance, z.detach(), params.epsilon)
            grads = torch.autograd.grad(sum((out * scale).sum() for out in outs), leaves)
        return sum(leaf.detach() * g for leaf, g in zip(leaves, grads))

    # z+ collects the positive products w a (w > 0 with a > 0, w < 0 with a < 0) and the positive
    # bias; z- the negative ones. Each product's share of R is its fraction of z+ (or z-).
    positive = share([(a_pos, w_pos), (a_neg, w_neg)], None if bias is None else bias.clamp(min=0))
    if params.beta == 0:
        return params.alpha * positive
    negative = share([(a_neg, w_pos), (a_pos, w_neg)], None if bias is None else bias.clamp(max=0))
    return params.alpha * positive - params.beta * negative


def _propagate(torch: Any, chain: list[tuple[str, Any, str]], x: Any, target: Any,
               params: LRPParams) -> tuple[Any, Any]:
    """Input relevance (shape of ``x``) and target score (n,) for one batch.

    One forward pass with gradients enabled, in which every layer's input is a fresh leaf tensor:
    each layer's local graph is kept, and the backward relevance pass differentiates one layer at
    a time through it (measured 2x faster than re-running every layer's forward in the rules).
    """
    records = []
    a = x
    with torch.enable_grad():
        for _name, layer, kind in chain:
            leaf = a.detach().requires_grad_(kind != "identity")
            a = _forward(torch, layer, kind, leaf)
            records.append((leaf, a))
    if a.dim() != 2:
        raise UnsupportedModelError(
            f"LRP needs a model whose output is one score per class, shape (n, classes); this model returns "
            f"shape {tuple(a.shape)}.", hint=_ALTERNATIVES)
    a = a.detach()
    score = a.gather(1, target[:, None]).squeeze(1)
    # Relevance starts as the target's own score, zero for the other classes.
    relevance = torch.zeros_like(a).scatter_(1, target[:, None], score[:, None])
    for (_name, layer, kind), (leaf, z) in zip(reversed(chain), reversed(records)):
        if kind == "identity":
            relevance = relevance.reshape(leaf.shape)  # Flatten: back to the input's shape
        elif kind == "linear" and params.rule == "alpha_beta":
            relevance = _alpha_beta_rule(torch, layer, leaf.detach(), relevance, params)
        else:
            relevance = _epsilon_rule(torch, leaf, z, relevance, params.epsilon)
    return relevance, score


# Layers whose relevance rule equals their plain gradient once relevance is written R = a * g
# (ReLU: relu(z) * g = z * (1[z > 0] g); Flatten, Dropout in eval, Identity: unchanged).
_GRADIENT_IDENTITY = ("ReLU", "Flatten", "Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d")


class _EpsilonScale:
    """Identity forward; backward multiplies the gradient by z / (z + eps sign z) (0 where that is 0/0)."""

    _fn: Any = None

    @classmethod
    def apply(cls, z: Any, eps: float) -> Any:
        if cls._fn is None:
            import torch

            class EpsilonScale(torch.autograd.Function):
                @staticmethod
                def forward(ctx: Any, inp: Any, epsilon: float) -> Any:
                    ctx.save_for_backward(inp)
                    ctx.epsilon = epsilon
                    return inp.view_as(inp)

                @staticmethod
                def backward(ctx: Any, grad: Any) -> Any:
                    (z,) = ctx.saved_tensors
                    if ctx.epsilon > 0:
                        # z / (z + eps sign z) = |z| / (|z| + eps): 3 kernels instead of 5 (and 0 at z = 0).
                        magnitude = z.abs()
                        return grad * (magnitude / (magnitude + ctx.epsilon)), None
                    return grad * _divide(torch, z, z, 0.0), None

            cls._fn = EpsilonScale
        return cls._fn.apply(z, eps)


def _fast_epsilon_ok(chain: list[tuple[str, Any, str]]) -> bool:
    """True when the epsilon rule can run as one modified backward pass (see :func:`_propagate_epsilon`)."""
    body = _body_start(chain)
    return all(kind != "identity" or type(layer).__name__ in _GRADIENT_IDENTITY for _n, layer, kind in chain[body:])


def _body_start(chain: list[tuple[str, Any, str]]) -> int:
    """Index of the first non-identity layer (before it: input normalisation, passed through as is)."""
    return next((i for i, (_n, _l, kind) in enumerate(chain) if kind != "identity"), len(chain))


def _propagate_epsilon(torch: Any, chain: list[tuple[str, Any, str]], x: Any, target: Any,
                       eps: float) -> tuple[Any, Any]:
    """The epsilon rule for the whole chain in one forward and one backward pass.

    Writing each layer's input relevance as R = a * g, the epsilon rule
    R_in = a * J^T (R_out / (z + eps sign z)) with R_out = z * g_out becomes
    g_in = J^T (g_out * z / (z + eps sign z)): the plain gradient with each rule layer's output
    gradient scaled by z / (z + eps sign z), and ReLU / Flatten / Dropout passing g as their
    gradient does. So one backward pass with a scaling op after each rule layer gives the same
    relevance as the layer-by-layer pass, at about the cost of a gradient (bench/attributions.py).
    Layers before the first rule layer (the input normalisation) pass relevance through unchanged,
    so the relevance is taken at the first rule layer's input.
    """
    body = _body_start(chain)
    a = x
    with torch.no_grad():
        for _name, layer, kind in chain[:body]:
            a = _forward(torch, layer, kind, a)
    leaf = a.detach().requires_grad_(True)
    h = leaf
    with torch.enable_grad():
        for _name, layer, kind in chain[body:]:
            h = _forward(torch, layer, kind, h)
            if kind != "identity":
                h = _EpsilonScale.apply(h, eps)
        if h.dim() != 2:
            raise UnsupportedModelError(
                f"LRP needs a model whose output is one score per class, shape (n, classes); this model returns "
                f"shape {tuple(h.shape)}.", hint=_ALTERNATIVES)
        score = h.gather(1, target[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad(score.sum(), leaf)
    return (leaf.detach() * grad).reshape(x.shape), score.detach()


def _lrp(adapter: ModelAdapter, x: np.ndarray, target: np.ndarray, params: LRPParams, *, batch_size: int,
         progress: ProgressCallback | None = None, context: ImageContext | None = None) -> MethodResult:
    """LRP maps for ``n`` images.

    Parameters
    ----------
    x : ndarray of shape (n, C, H, W), float32
    target : ndarray of shape (n,), int64

    Returns
    -------
    MethodResult
        ``maps`` (n, C, H, W) float32: the input relevance. Extras, float64 of shape (n,):
        ``relevance_sum`` (sum of the map) and ``output`` (the target's raw score, the relevance
        LRP started from); they differ by what biases and the stabiliser absorbed.
    """
    torch, module, device = torch_parts(adapter)
    chain = lrp_chain(module)
    xt = to_device(torch, x, device)
    tt = to_device(torch, target, device, torch.long)
    maps = np.empty(x.shape, dtype=np.float32)
    scores = np.empty(len(x), dtype=np.float64)

    fast = params.rule == "epsilon" and _fast_epsilon_ok(chain)

    def step(start: int, stop: int) -> None:
        if fast:
            relevance, score = _propagate_epsilon(torch, chain, xt[start:stop], tt[start:stop], params.epsilon)
        else:
            relevance, score = _propagate(torch, chain, xt[start:stop], tt[start:stop], params)
        # Commit only once the whole range succeeded (for_each_range retries on out-of-memory).
        maps[start:stop] = relevance.float().cpu().numpy()
        scores[start:stop] = score.double().cpu().numpy()

    for_each_range(step, len(x), batch_size, owner="LRP", progress=progress, message="LRP")
    relevance_sum = maps.astype(np.float64).reshape(len(x), -1).sum(axis=1)
    return MethodResult(maps, {"relevance_sum": relevance_sum, "output": scores})


register(Method(
    name="lrp", prefix="lrp", order=10, title="LRP", params_type=LRPParams, run=_lrp, unsupported=lrp_unsupported,
    signed=lambda p: True, output="logit", needs_gradients=True,
    description="The class score handed back layer by layer to the pixels in proportion to their "
                "contributions (layer-wise relevance propagation); the relevances add up to about the score.",
))
