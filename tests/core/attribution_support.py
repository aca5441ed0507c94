"""Tiny models for the attribution tests (not a test module)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.adapters.torch_adapter import TorchAdapter
from core.nets import image_cnn

GRADIENT_METHODS = ["gradient", "gradient_x_input", "smoothgrad", "guided_backprop", "integrated_gradients",
                    "expected_gradients", "grad_cam", "guided_grad_cam"]


class PixelMask(nn.Module):
    """Multiply by a fixed 0/1 pixel mask: the model cannot see the masked pixels."""

    def __init__(self, mask: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(mask, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def adapter_of(module: nn.Module, n_classes: int = 3) -> TorchAdapter:
    return TorchAdapter(module, name="tiny", class_names=tuple(str(i) for i in range(n_classes)), input_kind="image",
                        device="cpu")


def half_blind_model(seed: int = 0, size: int = 8, n_classes: int = 3) -> tuple[TorchAdapter, np.ndarray]:
    """A conv model that ignores the left half of the image; returns (adapter, ignored-pixel mask)."""
    torch.manual_seed(seed)
    ignored = np.zeros((size, size), dtype=bool)
    ignored[:, : size // 2] = True
    module = nn.Sequential(
        PixelMask((~ignored).astype(np.float32)),
        nn.Conv2d(1, 4, 1, bias=False),  # 1x1 and no bias: a masked pixel gives zero activation
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * size * size, n_classes),
    )
    return adapter_of(module, n_classes), ignored


def tiny_cnn(seed: int = 0, size: int = 8, channels: int = 1, n_classes: int = 3, sharpen: float = 1.0) -> TorchAdapter:
    """A freshly initialised small CNN. Its logits are nearly equal for every input (differences
    ~1e-2), so tests that need visible output changes multiply the last layer by ``sharpen``."""
    torch.manual_seed(seed)
    module = image_cnn(size, size, channels=channels, n_classes=n_classes, widths=(4, 8), hidden=16)
    with torch.no_grad():
        module.fc2.weight.mul_(sharpen)
    return adapter_of(module, n_classes)


def images(n: int = 5, size: int = 8, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, size=(n, channels, size, size)).astype(np.float32)


def assert_close(ours: np.ndarray, theirs: np.ndarray, rtol: float = 1e-5) -> None:
    """max |ours - theirs| <= rtol * max |theirs| (relative to the map's scale, not per pixel)."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = max(np.abs(theirs).max(), 1e-12)
    err = np.abs(ours - theirs).max()
    assert err <= rtol * scale, f"max abs difference {err:.3g} > {rtol} x scale {scale:.3g}"


def hooks_left(module: nn.Module) -> list[str]:
    """Names of submodules that still carry a hook."""
    out = []
    for name, m in module.named_modules():
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or getattr(m, "_backward_pre_hooks", None):
            out.append(name or "<root>")
    return out
