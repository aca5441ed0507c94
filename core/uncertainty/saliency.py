"""Where do the members disagree about *why*? Every member's saliency map and their pixel-wise variance.

The maps are the gradient method of :func:`core.attribution.run.explain_images` (cached on disk per
member and image), each member explaining the same target class. Each member's |map| is divided by
its own largest value before comparing, so a member with larger gradients overall does not
dominate the variance: what is compared is *where* each member looks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.progress import ProgressCallback, subrange
from core.store import ArtifactStore


@dataclass(frozen=True, eq=False)
class MemberSaliency:
    """maps: ndarray (n_members, height, width) of |gradient| scaled to [0, 1] per member;
    variance: ndarray (height, width) across members; target: the class explained."""

    maps: np.ndarray
    variance: np.ndarray
    target: int


def member_saliency(adapters: list[ModelAdapter] | tuple[ModelAdapter, ...], image: Any, target: int, *,
                    batch_size: int = 64, progress: ProgressCallback | None = None,
                    store: ArtifactStore | None = None) -> MemberSaliency:
    """Gradient saliency of one image (shape (channels, height, width)) under every member, and their variance."""
    from core.attribution.run import explain_images

    x = np.asarray(image, dtype=np.float32)[None]
    target_arr = np.asarray([int(target)], dtype=np.int64)
    maps = []
    for i, adapter in enumerate(adapters):
        result = explain_images(adapter, x, target_arr, "gradient", batch_size=batch_size, store=store,
                                progress=subrange(progress, i / len(adapters), (i + 1) / len(adapters)))
        heat = np.abs(result.maps[0]).sum(axis=0)  # channels -> one value per pixel
        maps.append(heat / max(float(heat.max()), 1e-12))
    stacked = np.stack(maps)
    return MemberSaliency(stacked, stacked.var(axis=0), int(target))
