"""Image attribution methods: occlusion, gradients, SmoothGrad, Guided Backprop, Integrated
Gradients, Grad-CAM, Guided Grad-CAM and LRP, behind one verb (:func:`explain_images`).

Importing this package does not import torch; running a gradient method does.
"""

from core.attribution.base import ImageAttribution, ImageContext, get_method, method_names
from core.attribution.run import (
    MethodUnsupportedError,
    explain_grid,
    explain_images,
    image_context,
    resolve_params,
    resolve_targets,
    supported_methods,
)

__all__ = [
    "ImageAttribution",
    "ImageContext",
    "MethodUnsupportedError",
    "explain_grid",
    "explain_images",
    "image_context",
    "get_method",
    "method_names",
    "resolve_params",
    "resolve_targets",
    "supported_methods",
]
