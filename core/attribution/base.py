"""Shared types of the image attribution methods: the result object, parameter checks, the registry.

Every method lives in its own module and registers a :class:`~core.explanation.Method` (modality
"image") in the one registry of :mod:`core.explanation` by name. A method
declares which models it supports (``unsupported(adapter)`` returns the reason it cannot run, or
None), its parameters as a frozen dataclass (whose fields drive the page's form), and one
``run(adapter, x, target, params, batch_size, progress, context)`` that returns raw maps.

Nothing here imports torch: the page lists methods and their parameters before any model loads.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from core.adapters.base import ModelAdapter
from core.errors import InputShapeError, ParameterError
from core.explanation import REGISTRY, Attribution, Method, register, register_loader  # noqa: F401 (register: the methods import it from here)
from core.explanation import get_method as _get_method
from core.explanation import method_names as _method_names
from core.progress import ProgressCallback


@dataclass(frozen=True, eq=False)
class ImageAttribution(Attribution):
    """One method's attributions for ``n`` images, as parallel arrays (units: pixels).

    Attributes
    ----------
    method : str
        Registered method name, e.g. ``"integrated_gradients"``.
    maps : ndarray of shape (n, channels, height, width), float32
        Attribution of every input value (same layout as the images), or of every pixel
        (``channels`` = 1) for methods that give one value per pixel (occlusion, Grad-CAM).
    target : ndarray of shape (n,), int64
        Class whose output was explained, per image.
    output : {"logit", "probability"}
        Which model output the maps explain (gradient methods: the module's raw score; occlusion:
        the class probability, as in the lecture).
    signed : bool
        True when values can be negative (diverging colour map), False for magnitudes.
    params : dict
        The parameters that produced the maps (JSON-like).
    extras : dict of str -> ndarray
        Method-specific arrays whose first axis is ``n``: ``probability_map`` (occlusion),
        ``completeness_gap`` / ``attribution_sum`` / ``output_delta`` (Integrated Gradients),
        ``cam`` (Grad-CAM at the layer's resolution).
    """

    method: str
    maps: np.ndarray
    target: np.ndarray
    output: str
    signed: bool
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        maps = np.asarray(self.maps, dtype=np.float32)
        if maps.ndim != 4:
            raise InputShapeError(f"ImageAttribution maps must have shape (n, C, H, W); got {maps.shape}.")
        target = np.asarray(self.target, dtype=np.int64).reshape(-1)
        if target.shape != (len(maps),):
            raise InputShapeError(f"ImageAttribution target must have shape ({len(maps)},); got {target.shape}.")
        for key, value in self.extras.items():
            if len(value) != len(maps):
                raise InputShapeError(f"ImageAttribution extra {key!r} has {len(value)} rows for {len(maps)} maps.")
        object.__setattr__(self, "maps", maps)
        object.__setattr__(self, "target", target)

    units: ClassVar[str] = "pixels"

    def __len__(self) -> int:
        return len(self.maps)

    def unit_values(self) -> np.ndarray:
        """One value per pixel, (n, height * width), row-major: the heatmap flattened."""
        return self.heatmap().reshape(len(self.maps), -1)

    def unit_names(self, i: int = 0) -> list[str]:
        height, width = self.maps.shape[-2:]
        return [f"({r}, {c})" for r in range(height) for c in range(width)]

    def heatmap(self) -> np.ndarray:
        """One value per pixel, ndarray of shape (n, height, width), float32.

        Channels are summed for signed maps (contributions add up) and their absolute values
        summed for unsigned ones, so three-channel images get one map per image.
        """
        return self.maps.sum(axis=1) if self.signed else np.abs(self.maps).sum(axis=1)

    @property
    def degenerate(self) -> np.ndarray:
        """Boolean ndarray of shape (n,): True where a map is blank, constant or non-finite.

        Such a map ranks no pixel: pages say so beside it and trust checks leave it out of their
        verdicts (:mod:`core.trust.degenerate`).
        """
        from core.trust.degenerate import degenerate_rows

        return degenerate_rows(self.heatmap())

    def degenerate_reason(self, i: int, title: str | None = None) -> str | None:
        """Why map ``i`` is degenerate, in a sentence for the page (None when it is usable)."""
        from core.trust.degenerate import degenerate_reason

        return degenerate_reason(self.heatmap()[i], title or self.method, "map")

    def __getitem__(self, key: int | slice | list[int] | np.ndarray) -> "ImageAttribution":
        """Select images (positions in this object); always returns an ImageAttribution."""
        if isinstance(key, (int, np.integer)):
            key = [int(key)]
        idx = np.asarray(key) if isinstance(key, list) else key
        return replace(self, maps=self.maps[idx], target=self.target[idx],
                       extras={k: v[idx] for k, v in self.extras.items()})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for ``np.savez``: ``maps``, ``heatmap``, ``target``, ``degenerate`` and every extra."""
        out = {"maps": self.maps, "heatmap": self.heatmap(), "target": self.target, "degenerate": self.degenerate}
        out.update({f"extra_{k}": np.asarray(v) for k, v in self.extras.items()})
        return out


@dataclass(frozen=True)
class MethodResult:
    """What a method's ``run`` returns: maps (n, C, H, W) and its extras."""

    maps: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)


RunFn = Callable[..., MethodResult]

# The one registry (core/explanation.py); image methods are its "image" modality.
METHODS: dict[str, Method] = REGISTRY["image"]


def get_method(name: str) -> Method:
    return _get_method(name, "image")


def method_names() -> list[str]:
    """Registered image method names in the lecture's column order (then any others, by name)."""
    return _method_names("image")


def _load_all() -> None:
    """Import every method module of this package once (importing one registers its methods)."""
    if _LOADED:
        return
    import importlib
    import pkgutil

    import core.attribution as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _NOT_METHODS:
            importlib.import_module(f"core.attribution.{info.name}")
    _LOADED.append(True)


_NOT_METHODS = {"base", "run", "torch_ops"}
_LOADED: list[bool] = []
register_loader("image", _load_all)


@dataclass(frozen=True)
class ImageContext:
    """Dataset facts some methods need besides the images themselves.

    Attributes
    ----------
    channel_mean : ndarray of shape (channels,), optional
        Mean of each channel over the training images (occlusion's "dataset mean" fill).
    value_range : (float, float)
        Smallest and largest valid pixel value (SmoothGrad's noise scale, noise baselines).
    background : ndarray of shape (m, C, H, W), optional
        A fixed sample of training images (expected gradients draws its baselines from it).
    """

    channel_mean: np.ndarray | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    background: np.ndarray | None = None


# -- gradient support -------------------------------------------------------------------------
def gradients_unsupported(adapter: ModelAdapter) -> str | None:
    """Why gradient methods cannot run on ``adapter`` (None when they can)."""
    if adapter.torch_module() is None:
        return adapter.info.gradients_unavailable or (
            f"{adapter.info.framework} models are not differentiable through torch, so gradient methods "
            "are not offered; occlusion works on any model."
        )
    return None


def layers_unsupported(adapter: ModelAdapter, method: str) -> str | None:
    """Why ``method``, which works layer by layer, cannot run on ``adapter`` (None when it may)."""
    reason = gradients_unsupported(adapter)
    if reason:
        return reason
    if getattr(adapter, "layers_hidden", False):
        return (f"{method} works on the model's individual layers, and this model's layers are compiled "
                "(TorchScript / torch.export) so they cannot be inspected or hooked; the gradient, SmoothGrad "
                "and Integrated Gradients work on it.")
    return None


def check_images(x: Any, owner: str) -> np.ndarray:
    """Images as float32 (n, C, H, W); a clear error for anything else."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 4:
        raise InputShapeError(
            f"{owner} expects images of shape (n, channels, height, width); got an array of shape {arr.shape}.",
            hint="pass a batch, e.g. x[None] for a single image.",
        )
    if not np.isfinite(arr).all():
        raise InputShapeError(f"{owner} got images containing NaN or infinite values.",
                              hint="check the uploaded file or the preprocessing.")
    return arr


def check_number(name: str, value: Any, owner: str, low: float, high: float | None = None,
                 low_inclusive: bool = True) -> float:
    """Validate a real parameter in [low, high] (or (low, high] when ``low_inclusive`` is False)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)):
        raise ParameterError(f"The {name!r} parameter of {owner} must be a finite number. Got {value!r} instead.")
    value = float(value)
    bad_low = value < low if low_inclusive else value <= low
    if bad_low or (high is not None and value > high):
        bracket = "[" if low_inclusive else "("
        upper = f"{high}]" if high is not None else "inf)"
        raise ParameterError(f"The {name!r} parameter of {owner} must be in {bracket}{low}, {upper}. Got {value} instead.")
    return value


def check_choice(name: str, value: Any, owner: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ParameterError(
            f"The {name!r} parameter of {owner} must be one of {', '.join(repr(c) for c in choices)}. Got {value!r} instead."
        )
    return str(value)


ProgressArg = ProgressCallback | None
