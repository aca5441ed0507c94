"""Content fingerprints: short sha256 digests of arrays, texts and JSON-able values.

A fingerprint depends on content only (never on object identity, file paths or time), so
two processes that load the same data or the same weights agree on it, and the
ArtifactStore can key results by it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

import numpy as np

FINGERPRINT_LENGTH = 16  # hex chars shown in the UI; full digests are used for cache keys


def _canonical(value: Any) -> Any:
    """Turn ``value`` into plain JSON types, deterministically."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": type(value).__name__, **_canonical(dataclasses.asdict(value))}
    if isinstance(value, dict):
        # Non-string keys carry their type so {1: x} and {"1": x} stay distinct.
        keyed = {(k if isinstance(k, str) else f"{type(k).__name__}:{k}"): v for k, v in value.items()}
        return {k: _canonical(v) for k, v in sorted(keyed.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_canonical(v) for v in value)
    if isinstance(value, np.generic):
        return _canonical(value.item())
    if isinstance(value, np.ndarray):
        return {"__ndarray__": hash_array(value)}
    if isinstance(value, float):
        # Non-finite floats become tagged objects, distinct from the strings "NaN" / "Infinity".
        if math.isnan(value):
            return {"__float__": "NaN"}
        if math.isinf(value):
            return {"__float__": "Infinity" if value > 0 else "-Infinity"}
        return value
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(
        f"Cannot fingerprint a value of type {type(value).__name__}: expected JSON-like data "
        "(dict, list, str, number, numpy array, dataclass)."
    )


def canonical_json(value: Any) -> str:
    """Canonical JSON text of ``value``: sorted keys, no whitespace, numpy made plain."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def hash_json(value: Any) -> str:
    """Full sha256 hex digest of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def hash_array(array: np.ndarray, h: "hashlib._Hash | None" = None) -> str:
    """sha256 of an array's dtype, shape and bytes (C order). Object arrays hash their str()."""
    own = h is None
    h = h or hashlib.sha256()
    array = np.asarray(array)
    h.update(f"{array.dtype.str}|{array.shape}|".encode())
    if array.dtype == object:
        for item in array.ravel():
            encoded = str(item).encode("utf-8", "surrogatepass")
            h.update(len(encoded).to_bytes(8, "little"))
            h.update(encoded)
    else:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest() if own else ""


def hash_texts(texts: Iterable[str], h: "hashlib._Hash | None" = None) -> str:
    """sha256 of a sequence of strings, length-prefixed so ("ab","c") != ("a","bc")."""
    own = h is None
    h = h or hashlib.sha256()
    for text in texts:
        encoded = text.encode("utf-8", "surrogatepass")
        h.update(len(encoded).to_bytes(8, "little"))
        h.update(encoded)
    return h.hexdigest() if own else ""


def short(digest: str) -> str:
    """The first characters of a digest, for display."""
    return digest[:FINGERPRINT_LENGTH]
