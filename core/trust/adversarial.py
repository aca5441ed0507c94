"""Adversarial examples: the fast gradient sign method (Goodfellow et al., 2015).

``x_adv = clip(x + epsilon * sign(grad_x CE(f(x), y)), low, high)``: one gradient step that
raises the loss of the true (or given) class, every pixel moved by at most ``epsilon``. Cached on
disk by the model's fingerprint, the images, the labels and epsilon.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.errors import InputShapeError, ParameterError, check_int
from core.fingerprint import hash_array
from core.progress import ProgressCallback, report
from core.store import ArtifactStore, default_store

DEFAULT_BATCH_SIZE = 128


def fgsm(
    adapter: ModelAdapter,
    x: Any,
    y: Any,
    epsilon: float,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> np.ndarray:
    """FGSM copies of ``x`` that push ``adapter`` away from the labels ``y``.

    Parameters
    ----------
    adapter : ModelAdapter
        A torch classifier (``torch_module()`` not None); the attack needs its input gradients.
    x : ndarray of shape (n, ...)
        Inputs in the model's input space (images in [0, 1] for the built-in scenarios).
    y : ndarray of shape (n,), int
        The classes whose loss is raised (usually the true labels).
    epsilon : float
        Largest change of any input value, >= 0. 0 returns ``x`` unchanged.
    value_range : (float, float)
        Results are clipped into it (a valid image stays a valid image).
    batch_size : int
        Samples per forward / backward pass; does not change the result.

    Returns
    -------
    ndarray of the shape of ``x``, float32.
    """
    from core.batching import for_each_range

    module = adapter.torch_module()
    if module is None or adapter.info.input_kind == "text":
        why = (f"model {adapter.info.name!r} takes text (word ids have no gradient)" if module is not None else
               adapter.info.gradients_unavailable or f"model {adapter.info.name!r} has none")
        raise ParameterError(f"FGSM needs the input gradients of a torch model; {why}.",
                             hint="pick a torch image model (the CNN) of the scenario.")
    try:
        epsilon = float(epsilon)
    except (TypeError, ValueError):
        raise ParameterError(f"The 'epsilon' parameter of fgsm must be a number >= 0. Got {epsilon!r}.") from None
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ParameterError(f"The 'epsilon' parameter of fgsm must be a number >= 0. Got {epsilon} instead.",
                             hint="try 0.1 (a tenth of the pixel range).")
    batch_size = check_int("batch_size", batch_size, "fgsm")
    images = np.asarray(x, dtype=np.float32)
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    if labels.shape != (len(images),):
        raise InputShapeError(f"fgsm needs one label per input ({len(images)}); got shape {labels.shape}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(adapter.class_names)):
        raise ParameterError(f"fgsm labels must be class indices 0..{len(adapter.class_names) - 1}; "
                             f"got {labels.min()}..{labels.max()}.")
    low, high = float(value_range[0]), float(value_range[1])

    def compute() -> np.ndarray:
        import torch

        out = np.empty_like(images)
        device = getattr(adapter, "device", "cpu")
        to_input = getattr(adapter, "to_tensor", lambda chunk: torch.as_tensor(np.asarray(chunk)).to(device))
        probabilities = getattr(adapter, "outputs", "logits") == "probabilities"

        def step(start: int, stop: int) -> None:
            inputs = to_input(images[start:stop]).detach().requires_grad_(True)
            target = torch.as_tensor(labels[start:stop], device=inputs.device)
            outputs = module(inputs)
            scores = torch.log(outputs.clamp_min(1e-12)) if probabilities else outputs
            loss = torch.nn.functional.cross_entropy(scores.float(), target, reduction="sum")
            (grad,) = torch.autograd.grad(loss, inputs)
            moved = (inputs.detach() + epsilon * grad.sign()).clamp(low, high)
            out[start:stop] = moved.float().cpu().numpy()

        for_each_range(step, len(images), batch_size, owner="fgsm", progress=progress, message="FGSM")
        return out

    if epsilon == 0 or len(images) == 0:
        return images.copy()
    result = (store or default_store()).cached(
        compute, op="fgsm", model_fingerprint=adapter.fingerprint,
        data_fingerprint=hash_array(images) + hash_array(labels),
        params={"epsilon": epsilon, "value_range": [low, high]}, libraries=("numpy", "torch"),
    )
    report(progress, 1.0, "FGSM: done")
    return result
