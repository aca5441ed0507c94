"""Settings widgets for each image attribution method, drawn from its params dataclass.

The fields, labels, ranges and widget keys (``occ_window``, ``ig_steps`` ...) are declared once in
each method's own file (:mod:`core.params`); this module only gathers what the bounds and choices
refer to for the images at hand (their size, Grad-CAM's spatial layers).
"""

from __future__ import annotations

from typing import Any

from components.params_form import params_form
from core.attribution import get_method
from core.attribution.gradcam import layer_label


def image_form_context(image_shape: tuple[int, int, int], spatial_layers: list[str], default_layer: str | None,
                       pre_activation: set[str] | frozenset[str] = frozenset(),
                       token_notes: dict[str, str] | None = None) -> dict[str, Any]:
    """What the image methods' bounds and choices refer to."""
    _channels, height, width = image_shape
    pre, tokens = set(pre_activation), dict(token_notes or {})
    return {"image_shape": tuple(image_shape), "image_side": min(height, width), "layers": list(spatial_layers),
            "default_layer": default_layer, "layer_label": lambda name: layer_label(name, pre, tokens)}


def method_params(method: str, image_shape: tuple[int, int, int], spatial_layers: list[str], default_layer: str | None,
                  container: Any, pre_activation: set[str] | frozenset[str] = frozenset(),
                  token_notes: dict[str, str] | None = None) -> Any:
    """Draw ``method``'s settings in ``container`` and return its Params.

    ``pre_activation``: spatial layers followed by an activation, labelled as such in Grad-CAM's layer picker;
    ``token_notes``: a Vision Transformer's token layers and what each is (:func:`core.attribution.gradcam.token_layers`).
    """
    spec = get_method(method)
    context = image_form_context(image_shape, spatial_layers, default_layer, pre_activation, token_notes)
    return params_form(spec.params_type, spec.prefix, context, container)
