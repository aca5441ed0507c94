"""Image helpers for display (numpy only)."""

from __future__ import annotations

import numpy as np


def to_display(image: np.ndarray, size: int = 112) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> uint8 (H', W') or (H', W', 3), enlarged by pixel repetition.

    Nearest-neighbour enlargement keeps 8x8 digits crisp instead of blurring them.
    """
    image = np.asarray(image, dtype=np.float32)
    channels, height, width = image.shape
    factor = max(1, size // max(height, width))
    out = np.clip(image, 0.0, 1.0)
    out = out.repeat(factor, axis=1).repeat(factor, axis=2)
    out = (out * 255).round().astype(np.uint8)
    return out[0] if channels == 1 else np.transpose(out[:3], (1, 2, 0))
