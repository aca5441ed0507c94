"""The torch engine under the gradient methods: batched input gradients, guided ReLUs, captured layers.

Adapters are shared by every session of the server, so nothing here changes a module for other
callers: no backward hooks, no swapped layers. Guided Backprop and Grad-CAM use forward hooks
that only act on forward passes run by the registering thread, and are removed in ``finally``.
Gradients are taken with ``torch.autograd.grad`` with respect to the inputs (and captured
activations) only, so parameters never accumulate ``.grad``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.batching import for_each_range
from core.progress import ProgressCallback


def torch_parts(adapter: ModelAdapter) -> tuple[Any, Any, str]:
    """(torch, module, device) of a gradient-capable adapter."""
    import torch

    module = adapter.torch_module()
    device = getattr(adapter, "device", None) or str(next(module.parameters()).device)
    return torch, module, device


def target_scores(adapter: ModelAdapter, out: Any, target: Any) -> Any:
    """The explained score per row: the module's output for ``target`` (a logit, or a probability
    for modules that return probabilities)."""
    return out.gather(1, target[:, None]).squeeze(1)


def relu_modules(module: Any) -> list[Any]:
    import torch

    return [m for m in module.modules() if isinstance(m, torch.nn.ReLU)]


class _GuidedReLU:
    """ReLU whose backward passes only positive gradients through positive inputs (Guided Backprop)."""

    _fn: Any = None

    @classmethod
    def apply(cls, x: Any) -> Any:
        if cls._fn is None:
            import torch

            class GuidedReLUFunction(torch.autograd.Function):
                @staticmethod
                def forward(ctx: Any, inp: Any) -> Any:
                    out = inp.clamp(min=0)
                    ctx.save_for_backward(out)  # out > 0 exactly where inp > 0
                    return out

                @staticmethod
                def backward(ctx: Any, grad: Any) -> Any:
                    (out,) = ctx.saved_tensors
                    # ReLU's own fused backward kernel (grad where out > 0), on the positive gradients.
                    return torch.ops.aten.threshold_backward(grad.clamp(min=0), out, 0)

            cls._fn = GuidedReLUFunction
        return cls._fn.apply(x)


@contextmanager
def this_thread_hooks(module: Any, hooks: dict[Any, Callable[..., Any]]) -> Iterator[None]:
    """Register forward hooks ``{submodule: hook}`` that only act on this thread's forward passes.

    Every handle is removed on exit, also when the body raises.
    """
    owner = threading.get_ident()
    with ExitStack() as stack:
        for sub, hook in hooks.items():
            def guarded(m: Any, inputs: Any, output: Any, _hook: Callable[..., Any] = hook) -> Any:
                if threading.get_ident() != owner:
                    return None
                return _hook(m, inputs, output)

            handle = sub.register_forward_hook(guarded)
            stack.callback(handle.remove)
        yield


@contextmanager
def guided_relus(module: Any) -> Iterator[None]:
    """Within the block, this thread's forward passes use guided ReLUs (Springenberg et al. 2015).

    The forward hook replaces each ReLU's output by a guided ReLU applied to its input; for
    in-place ReLUs the input already holds the output, and relu(relu(x)) = relu(x) with the same
    mask, so the result is the same.
    """
    hooks = {m: (lambda _m, inputs, _out: _GuidedReLU.apply(inputs[0])) for m in relu_modules(module)}
    with this_thread_hooks(module, hooks):
        yield


@contextmanager
def captured(module: Any, layer: str) -> Iterator[list[Any]]:
    """Record ``layer``'s output tensors (still in the autograd graph) during this thread's passes."""
    target = dict(module.named_modules())[layer]
    outputs: list[Any] = []

    def hook(_m: Any, _inputs: Any, output: Any) -> None:
        outputs.append(output[0] if isinstance(output, tuple) else output)

    with this_thread_hooks(module, {target: hook}):
        yield outputs


def input_gradients(
    adapter: ModelAdapter,
    n_rows: int,
    make_batch: Callable[[int, int], tuple[Any, Any]],
    consume: Callable[[int, int, Any, Any, Any], None],
    *,
    batch_size: int,
    owner: str,
    progress: ProgressCallback | None = None,
    message: str = "gradients",
    guided: bool = False,
) -> None:
    """Gradients of the target scores with respect to generated inputs, batch by batch.

    Parameters
    ----------
    n_rows : int
        Total inputs to differentiate (e.g. images x noise samples).
    make_batch : callable
        ``make_batch(start, stop) -> (inputs, targets)``: tensors on the model's device of shape
        (stop - start, C, H, W) and (stop - start,).
    consume : callable
        ``consume(start, stop, inputs, grads, scores)`` accumulates the results (called once per
        range, only after the range succeeded, so out-of-memory retries never double-count).
    guided : bool
        Use guided ReLUs (Guided Backprop).
    """
    torch, module, _device = torch_parts(adapter)

    def step(start: int, stop: int) -> None:
        inputs, targets = make_batch(start, stop)
        inputs = inputs.detach().requires_grad_(True)
        with torch.enable_grad():
            scores = target_scores(adapter, module(inputs), targets)
            (grads,) = torch.autograd.grad(scores.sum(), inputs)
        consume(start, stop, inputs.detach(), grads.detach(), scores.detach())

    with ExitStack() as stack:
        if guided:
            stack.enter_context(guided_relus(module))
        for_each_range(step, n_rows, batch_size, owner=owner, progress=progress, message=message)


def batched_scores(adapter: ModelAdapter, inputs: Any, targets: Any, batch_size: int) -> Any:
    """The target scores (see :func:`target_scores`) of inputs already on the device, without gradients,
    ``batch_size`` rows per pass; a float64 tensor of shape (m,)."""
    torch, module, _device = torch_parts(adapter)
    with torch.inference_mode():
        return torch.cat([target_scores(adapter, module(inputs[s:s + batch_size]), targets[s:s + batch_size])
                          for s in range(0, len(inputs), batch_size)]).double()


def target_probabilities(adapter: ModelAdapter, batch: Any, targets: Any) -> np.ndarray:
    """P(target) per row of a batch already on the model's device, float64 numpy of shape (m,)."""
    torch, module, _device = torch_parts(adapter)
    with torch.inference_mode():
        out = module(batch).float()
        if getattr(adapter, "outputs", "logits") == "logits":
            out = torch.softmax(out, dim=1)
        return out.gather(1, targets[:, None]).squeeze(1).double().cpu().numpy()


def to_device(torch: Any, array: np.ndarray, device: str, dtype: Any = None) -> Any:
    return torch.as_tensor(array, dtype=dtype or torch.float32).to(device)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Blur each channel of (n, C, H, W) images with a Gaussian of ``sigma`` pixels (edges replicated).

    Used for occlusion's "blur" fill and Integrated Gradients' blurred baseline. ``sigma`` 0
    returns the images unchanged.
    """
    images = np.asarray(images, dtype=np.float32)
    if sigma <= 0:
        return images.copy()
    radius = max(1, int(round(3 * sigma)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    out = images.astype(np.float64)
    for axis in (2, 3):
        size = out.shape[axis]
        # Replicate the edge pixels (reflection would need radius < size, not true for 8x8 digits).
        idx = np.clip(np.arange(-radius, size + radius), 0, size - 1)
        padded = np.take(out, idx, axis=axis)
        acc = np.zeros_like(out)
        for k, weight in enumerate(kernel):
            acc += weight * np.take(padded, np.arange(k, k + size), axis=axis)
        out = acc
    return out.astype(np.float32)
