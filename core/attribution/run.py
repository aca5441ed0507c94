"""One verb for image attributions: :func:`explain_images` (one method) and :func:`explain_grid` (several).

Results are cached on disk by content: the model's fingerprint, a hash of the images, targets and
dataset context, the method's resolved parameters and the torch / numpy versions. The batch size
is not part of the key: it changes speed and memory, never the result (a test checks that).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import numpy as np

from core.adapters.base import ModelAdapter
from core.attribution.base import (
    ImageAttribution,
    ImageContext,
    check_images,
    get_method,
)
from core.errors import InputShapeError, ParameterError, TrustLensError, check_int
from core.explanation import resolve_targets as resolve
from core.explanation import supported_methods as supported
from core.fingerprint import hash_array
from core.progress import ProgressCallback, report, subrange
from core.store import ArtifactStore, default_store

DEFAULT_BATCH_SIZE = 256
TARGETS = ("predicted", "true")


class MethodUnsupportedError(TrustLensError):
    """The chosen method cannot run on this model (the message says why)."""


BACKGROUND_POOL = 1000


def image_context(train: Any) -> ImageContext:
    """Dataset facts for the methods, from the training images (a DataBundle or an array).

    The background pool is a fixed random sample (seed 0) of ``BACKGROUND_POOL`` training images:
    large enough for expected gradients' background subsets, small enough to hash per request.
    """
    x = np.asarray(getattr(train, "x", train), dtype=np.float32)
    rows = np.sort(np.random.RandomState(0).choice(len(x), min(BACKGROUND_POOL, len(x)), replace=False))
    return ImageContext(channel_mean=x.mean(axis=(0, 2, 3)).astype(np.float64),
                        value_range=(float(min(0.0, x.min())), float(max(1.0, x.max()))),
                        background=x[rows])


def supported_methods(adapter: ModelAdapter) -> dict[str, str | None]:
    """Every image method -> None when it can run on ``adapter``, else the reason it cannot."""
    return supported(adapter, "image")


def resolve_targets(adapter: ModelAdapter, x: np.ndarray, target: str | int | np.ndarray,
                    y: np.ndarray | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Class index to explain per image, ndarray of shape (n,), int64.

    ``target`` is ``"predicted"``, ``"true"`` (needs ``y``), a class index or class name applied
    to every image, or an array with one class index per image.
    """
    return resolve(target, tuple(adapter.class_names), len(x), predicted=lambda: adapter.predict(x, batch_size), y=y)


def resolve_params(method: str, params: Any, adapter: ModelAdapter, image_shape: tuple[int, ...]) -> Any:
    """``params`` (or the method's defaults) with every automatic choice written in.

    The resolved values (occlusion's window and stride, Grad-CAM's layer) go into the cache key
    and the exported file, so two requests that mean the same thing share one result.
    """
    spec = get_method(method)
    params = spec.params_type() if params is None else params
    if not isinstance(params, spec.params_type):
        raise ParameterError(f"Method {method!r} takes {spec.params_type.__name__}; got {type(params).__name__}.")
    if method == "occlusion":
        window, stride = params.resolved(image_shape[-2], image_shape[-1])
        params = replace(params, window=window, stride=stride)
    if getattr(params, "layer", "") is None:
        from core.attribution.gradcam import default_layer

        params = replace(params, layer=default_layer(adapter, image_shape))
    return params


def explain_images(
    adapter: ModelAdapter,
    x: Any,
    target: np.ndarray,
    method: str,
    params: Any = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    context: ImageContext | None = None,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> ImageAttribution:
    """Attributions of ``method`` for each image towards its ``target`` class.

    Parameters
    ----------
    adapter : ModelAdapter
        An image classifier. Gradient methods need a torch model; occlusion runs on any.
    x : array-like of shape (n, channels, height, width)
        Pixel values in the model's input space (the scenarios use [0, 1]).
    target : ndarray of shape (n,), int
        Class explained per image (see :func:`resolve_targets`).
    method : str
        A name from :func:`core.attribution.base.method_names`.
    params : dataclass, optional
        The method's ``params_type``; default its defaults.
    batch_size : int
        Forward / backward rows per pass (images x samples or steps or positions). Halved and
        retried on out-of-memory. Does not change the result.
    context : ImageContext, optional
        Dataset facts (channel means for occlusion's mean fill, the pixel value range).

    Raises
    ------
    MethodUnsupportedError
        When the method cannot run on this model (e.g. gradients of a scikit-learn model).
    """
    spec = get_method(method)
    batch_size = check_int("batch_size", batch_size, "explain_images")
    images = check_images(x, "explain_images")
    reason = spec.unsupported(adapter)
    if reason:
        raise MethodUnsupportedError(f"{spec.title} cannot run on model {adapter.info.name!r}: {reason}",
                                     hint="pick another method; occlusion works on every model.")
    target = np.asarray(target, dtype=np.int64).reshape(-1)
    if target.shape != (len(images),):
        raise InputShapeError(f"explain_images needs one target per image ({len(images)}); got shape {target.shape}.")
    params = resolve_params(method, params, adapter, images.shape[1:])
    context = context or ImageContext()

    def compute() -> ImageAttribution:
        if len(images) == 0:
            result_maps, extras = np.zeros((0, *images.shape[1:]), np.float32), {}
        else:
            result = spec.run(adapter, images, target, params, batch_size=batch_size, progress=progress,
                              context=context)
            result_maps, extras = result.maps, result.extras
        return ImageAttribution(method=method, maps=result_maps, target=target, output=_output_name(spec, adapter),
                                signed=spec.signed(params), params=asdict(params), extras=extras)

    data_fingerprint = hash_array(images) + hash_array(target)
    if context.channel_mean is not None:
        data_fingerprint += hash_array(np.asarray(context.channel_mean, dtype=np.float64))
    if spec.name == "expected_gradients" and context.background is not None:  # only this method reads it
        data_fingerprint += hash_array(np.asarray(context.background, dtype=np.float32))
    result = (store or default_store()).cached(
        compute, op="image_attribution", model_fingerprint=adapter.fingerprint, data_fingerprint=data_fingerprint,
        params={"method": method, "params": asdict(params), "value_range": list(context.value_range)},
        libraries=("numpy", "torch"),
    )
    report(progress, 1.0, f"{spec.title}: done")
    return result


def _output_name(spec: Any, adapter: ModelAdapter) -> str:
    if spec.output == "probability":
        return "probability"
    return "probability" if getattr(adapter, "outputs", "logits") == "probabilities" else "logit"


def explain_grid(
    adapter: ModelAdapter,
    x: Any,
    target: np.ndarray,
    methods: dict[str, Any],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    context: ImageContext | None = None,
    progress: ProgressCallback | None = None,
    store: ArtifactStore | None = None,
) -> dict[str, ImageAttribution]:
    """Many images x many methods in one request: ``{method: params or None}`` -> ``{method: result}``.

    Methods run one after the other, each batched over all images; the progress callback sees
    the whole request as one bar.
    """
    out: dict[str, ImageAttribution] = {}
    names = list(methods)
    for i, name in enumerate(names):
        out[name] = explain_images(adapter, x, target, name, methods[name], batch_size=batch_size, context=context,
                                   progress=subrange(progress, i / len(names), (i + 1) / len(names)), store=store)
    return out
