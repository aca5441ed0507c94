"""Fast Gradient Sign Method (Goodfellow et al., 2015): the adversarial inputs seed 003 maps."""

from __future__ import annotations

import numpy as np

from core.adapters.base import ModelAdapter
from core.batching import map_batches
from core.errors import InputShapeError, ParameterError, check_int
from core.progress import ProgressCallback
from core.store import ArtifactStore, default_store


def fgsm(adapter: ModelAdapter, x: np.ndarray, y: np.ndarray, epsilon: float, batch_size: int = 64,
         progress: ProgressCallback | None = None) -> np.ndarray:
    """``clip(x + epsilon * sign(d loss(model(x), y) / dx), 0, 1)`` per sample, batched on the model's device.

    Parameters
    ----------
    adapter : ModelAdapter with a torch module and image (or numeric tabular) inputs
    x : ndarray of shape (n_samples, ...), float32 in [0, 1] for images
    y : ndarray of shape (n_samples,) of int
        The labels whose cross-entropy is increased (usually the true labels).
    epsilon : float
        Step size in input units (pixels in [0, 1]); 0 returns ``x``.

    Returns
    -------
    ndarray with the shape of ``x``, float32.
    """
    module = adapter.torch_module()
    if module is None or adapter.info.input_kind == "text":
        why = adapter.info.gradients_unavailable or f"model {adapter.info.name!r} takes {adapter.info.input_kind} input"
        raise ParameterError(f"FGSM needs gradients with respect to a numeric input; {why}.",
                             hint="pick a torch image model (digits or mnist cnn).")
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or not np.isfinite(epsilon) or epsilon < 0:
        raise ParameterError(f"The 'epsilon' parameter of fgsm must be a number >= 0. Got {epsilon!r} instead.",
                             hint="pixels lie in [0, 1]: try 0.05 to 0.3.")
    batch_size = check_int("batch_size", batch_size, "fgsm")
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y):
        raise InputShapeError(f"fgsm got {len(x)} inputs but {len(y)} labels.")
    if len(x) == 0:
        return x.copy()
    import torch

    device = getattr(adapter, "device", "cpu")
    outputs = getattr(adapter, "outputs", "logits")
    clip = adapter.info.input_kind == "image"

    def attack(rows: np.ndarray) -> np.ndarray:
        xb = torch.as_tensor(x[rows], device=device).clone().requires_grad_(True)
        yb = torch.as_tensor(y[rows], device=device)
        with torch.enable_grad():
            out = module(xb).float()
            log_p = torch.log_softmax(out, dim=1) if outputs == "logits" else torch.log(out.clamp_min(1e-12))
            loss = torch.nn.functional.nll_loss(log_p, yb, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xb)
        adv = xb.detach() + float(epsilon) * grad.sign()
        if clip:
            adv = adv.clamp(0.0, 1.0)
        return adv.cpu().numpy()

    return map_batches(attack, np.arange(len(x)), batch_size, owner="fgsm", progress=progress, message="FGSM")


def fgsm_cached(adapter: ModelAdapter, x: np.ndarray, y: np.ndarray, epsilon: float, *, data_fingerprint: str,
                batch_size: int = 64, store: ArtifactStore | None = None,
                progress: ProgressCallback | None = None) -> np.ndarray:
    """:func:`fgsm` stored under the model, the attacked data and epsilon (batch size not in the key)."""
    store = store or default_store()
    return store.cached(lambda: fgsm(adapter, x, y, epsilon, batch_size, progress), op="fgsm",
                        model_fingerprint=adapter.fingerprint, data_fingerprint=data_fingerprint,
                        params={"epsilon": float(epsilon)}, libraries=("numpy", "torch"))
