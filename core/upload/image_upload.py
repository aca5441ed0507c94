"""Turn an uploaded image file into a model input (C, H, W) in [0, 1].

Decoded with Pillow (a Streamlit dependency) in memory: nothing is written to disk, and a file
that is too large, not an image, or a decompression bomb is refused with a clear message.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

from core.errors import InputShapeError

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # far above any photo we need to shrink to 28x28, far below a bomb


@dataclass(frozen=True)
class UploadedImage:
    """A decoded upload.

    Attributes
    ----------
    x : ndarray of shape (channels, height, width), float32 in [0, 1]
        Resized to the model's input size, in the model's channel count.
    original_size : (width, height)
    inverted : bool
        True when the grey values were inverted (dark strokes on light paper -> light on dark,
        the convention of the digit datasets).
    """

    x: np.ndarray
    original_size: tuple[int, int]
    inverted: bool


def load_image(data: bytes, shape: tuple[int, int, int], invert: bool | None = None) -> UploadedImage:
    """Decode ``data`` and fit it to ``shape`` = (channels, height, width).

    Parameters
    ----------
    invert : bool, optional
        Invert grey values. Default (None): invert when the border is brighter than the centre
        region on average, i.e. a dark digit on white paper, since the built-in digit models were
        trained on light strokes on a dark background.

    Raises
    ------
    InputShapeError
        When the file is empty, too large, not a decodable image, or absurdly large in pixels.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputShapeError("The uploaded file is empty.", hint="upload a PNG or JPEG image.")
    if len(data) > MAX_BYTES:
        raise InputShapeError(f"The uploaded file is {len(data) / 1e6:.1f} MB; images up to {MAX_BYTES // 2**20} MB are accepted.",
                              hint="shrink the image first: the model only sees a few dozen pixels a side.")
    channels, height, width = shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise InputShapeError(f"The image is {image.width}x{image.height} pixels, too large to decode safely.",
                                      hint="upload an image under 40 megapixels.")
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        if isinstance(exc, InputShapeError):
            raise
        raise InputShapeError(f"The uploaded file is not an image TrustLens can read ({type(exc).__name__}: {exc}).",
                              hint="upload a PNG, JPEG, BMP or GIF image.") from None
    original = (image.width, image.height)
    mode = "L" if channels == 1 else "RGB"
    if image.mode in ("RGBA", "LA", "P"):  # transparent areas become white paper, not black
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    image = image.convert(mode).resize((width, height), Image.Resampling.LANCZOS)
    arr = np.asarray(image, dtype=np.float32) / 255.0
    arr = arr[None] if channels == 1 else np.transpose(arr, (2, 0, 1))
    if invert is None:
        grey = arr.mean(axis=0)
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]]).mean()
        invert = bool(border > grey.mean() + 0.05 or border > 0.5)
    if invert:
        arr = 1.0 - arr
    return UploadedImage(np.clip(arr, 0.0, 1.0).astype(np.float32), original, invert)
