"""Where precomputed results live: shards, then a manifest written last, under ``<store>/precomputed/<key>/``.

The store is a URL: a local folder, or anything fsspec opens (``s3://bucket/prefix`` once s3fs is
installed: ``requirements-scale.txt``); fsspec is imported when a store is used, never at import time.

- A **shard** is one batch's columns as an ``.npz`` file (``__index__``: the rows' sample indices, then
  the op's columns), written by the driver with fixed zip timestamps, so the same values give the same
  bytes whatever the engine or the worker count. Nothing in a shard needs pickle: readers load it with
  ``allow_pickle=False``, safe on a shared bucket.
- The **manifest** (``manifest.json``) is written last: rows, columns (dtype, shape per row), the shards
  with the sha256 of each, the op and its params, the engine, the seconds. Locally it is written beside
  its final name and renamed onto it; on S3 one PUT is atomic.
- A **reader** (:func:`find`, :class:`Precomputed`) trusts a prefix only when its manifest exists and
  every shard's sha256 matches. A prefix without a manifest (a run that crashed or was cancelled) is
  invisible, and the next run of the same work removes it before writing.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import ConfigurationError, TrustLensError

FORMAT, VERSION = "trustlens-precomputed", 1
FOLDER, MANIFEST = "precomputed", "manifest.json"
INDEX = "__index__"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same arrays always give the same bytes


# -- the file system -------------------------------------------------------------------------------------
def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec file system, root path) of a store URL or local folder."""
    try:
        from fsspec.core import split_protocol, url_to_fs

        from core.store_remote import storage_options  # the S3 endpoint as the artifact store reads it
    except ImportError:  # pragma: no cover - fsspec comes with torch and s3fs
        raise ConfigurationError("Precomputed results are written through fsspec, which is not installed.",
                                 hint="pip install -r requirements-scale.txt") from None
    protocol = split_protocol(str(url))[0] or "file"
    try:
        fs, root = url_to_fs(str(url), **storage_options(protocol))
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(f"Cannot open the store {url!r}: {exc}",
                                 hint="a local folder, or s3://bucket/prefix with s3fs installed "
                                      "(pip install -r requirements-scale.txt).") from None
    return fs, root.rstrip("/") or "/"


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


# -- shards ----------------------------------------------------------------------------------------------
def encode_shard(arrays: dict[str, np.ndarray]) -> bytes:
    """``.npz`` bytes of ``arrays`` (uncompressed, fixed timestamps, no pickle: object arrays are refused)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            array = np.asarray(value)
            if array.dtype.hasobject:
                raise TypeError(f"column {name!r} is an object array; shards hold numeric, boolean or string "
                                "arrays only (they are read without pickle).")
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME), member.getvalue())
    return buffer.getvalue()


def decode_shard(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a shard (``allow_pickle=False``)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def describe_columns(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """{column: {"dtype", "shape"}}: the shape of one row; strings as dtype ``"str"`` (their width varies)."""
    out = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        out[name] = {"dtype": "str" if array.dtype.kind == "U" else array.dtype.str, "shape": list(array.shape[1:])}
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- a prefix: the folder of one key ---------------------------------------------------------------------
class Prefix:
    """``<store>/precomputed/<key>/``: read its manifest, write shards and the manifest, remove it all."""

    def __init__(self, store_url: str, key: str) -> None:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"precompute keys are sha256 hex digests; got {key!r}.")
        self.store_url, self.key = str(store_url), key
        self.fs, root = filesystem(store_url)
        self.path = f"{root}/{FOLDER}/{key}" if root != "/" else f"/{FOLDER}/{key}"

    def file(self, name: str) -> str:
        return f"{self.path}/{name}"

    def manifest(self) -> dict[str, Any] | None:
        """The manifest, or None when absent or unreadable (a prefix without one is not a result)."""
        try:
            document = json.loads(self.fs.cat_file(self.file(MANIFEST)))
        except (FileNotFoundError, ValueError, OSError):
            return None
        if not (isinstance(document, dict) and document.get("format") == FORMAT and document.get("key") == self.key):
            return None
        return document

    def open(self, verify: bool = True) -> "Precomputed | None":
        """The result, when the manifest exists and (``verify``) every shard's sha256 matches; else None."""
        document = self.manifest()
        if document is None:
            return None
        found = Precomputed(self, document)
        if verify and not found.verify():
            return None
        return found

    def files(self) -> list[str]:
        try:
            return [str(p) for p in self.fs.find(self.path)]
        except (FileNotFoundError, OSError):
            return []

    def clear(self) -> int:
        """Remove everything under the prefix (a half-written or invalid result); how many files went."""
        found = self.files()
        if found:
            try:
                self.fs.rm(self.path, recursive=True)
            except FileNotFoundError:
                pass
        return len(found)

    def write(self, name: str, data: bytes) -> None:
        if _is_local(self.fs):
            self.fs.makedirs(self.path, exist_ok=True)
        self.fs.pipe_file(self.file(name), data)

    def publish(self, document: dict[str, Any]) -> None:
        """Write the manifest (the last file of a result): locally beside its name, then renamed onto it."""
        data = json.dumps(document, indent=1).encode()  # columns keep the op's order
        if _is_local(self.fs):
            tmp = self.file(f".{MANIFEST}.{os.getpid()}.tmp")
            self.fs.pipe_file(tmp, data)
            os.replace(tmp, self.file(MANIFEST))
        else:
            self.fs.pipe_file(self.file(MANIFEST), data)


class CorruptShardError(TrustLensError):
    """A shard's bytes no longer match the sha256 its manifest recorded."""


@dataclass(eq=False)
class Precomputed:
    """A published result: its manifest, and its rows read back by sample index.

    ``read(rows)`` returns ``{column: ndarray}`` for those sample indices (all rows when None), each shard's
    sha256 checked as it is read.
    """

    prefix: Prefix
    manifest: dict[str, Any]
    _cache: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        return self.prefix.key

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    @property
    def columns(self) -> list[str]:
        return list(self.manifest["columns"])

    @property
    def op(self) -> str:
        return self.manifest["op"]

    @property
    def params(self) -> dict[str, Any]:
        return self.manifest["params"]

    def __len__(self) -> int:
        return self.rows

    def verify(self) -> bool:
        """True when every shard exists and matches its sha256 (reads them all)."""
        try:
            for entry in self.manifest["shards"]:
                self._bytes(entry)
        except (CorruptShardError, FileNotFoundError, OSError, KeyError):
            return False
        return True

    def _bytes(self, entry: dict[str, Any]) -> bytes:
        data = self.prefix.fs.cat_file(self.prefix.file(entry["path"]))
        if sha256(data) != entry["sha256"]:
            raise CorruptShardError(f"Shard {entry['path']} of precomputed {self.key[:12]} does not match its sha256.",
                                    hint="run the precompute again: it rewrites a result whose shards changed.")
        return data

    def _shard(self, entry: dict[str, Any]) -> dict[str, np.ndarray]:
        if entry["path"] not in self._cache:
            self._cache.clear()  # one decoded shard at a time: reading in order touches each once
            self._cache[entry["path"]] = decode_shard(self._bytes(entry))
        return self._cache[entry["path"]]

    def read(self, rows: Any = None, columns: list[str] | None = None) -> dict[str, np.ndarray]:
        """``{column: ndarray}`` of the sample indices ``rows`` (int, sequence, slice or None for all), in that order."""
        names = columns or self.columns
        unknown = [c for c in names if c not in self.manifest["columns"]]
        if unknown:
            raise TrustLensError(f"Precomputed {self.op} has no column(s) {unknown}; it has {self.columns}.")
        wanted = np.arange(self.rows)[rows] if isinstance(rows, slice) else (
            np.arange(self.rows) if rows is None else np.atleast_1d(np.asarray(rows, dtype=np.int64)))
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.rows):
            raise TrustLensError(f"Sample indices must be in 0..{self.rows - 1}; got {wanted.min()}..{wanted.max()}.")
        shards = self.manifest["shards"]
        starts = np.array([s["start"] for s in shards], dtype=np.int64)
        which = np.searchsorted(starts, wanted, side="right") - 1
        parts: dict[str, list[np.ndarray]] = {c: [] for c in names}
        order = np.argsort(which, kind="stable")
        for shard in np.unique(which):
            members = order[which[order] == shard]
            data = self._shard(shards[int(shard)])
            local = wanted[members] - shards[int(shard)]["start"]
            for c in names:
                parts[c].append(data[c][local])
        out = {}
        back = np.argsort(order, kind="stable")
        for c in names:
            joined = np.concatenate(parts[c]) if parts[c] else np.empty((0, *self.manifest["columns"][c]["shape"]))
            out[c] = joined[back] if len(joined) else joined
        return out


def find(store_url: str, model_fingerprint: str, data_fingerprint: str, op: str,
         params: dict[str, Any]) -> Precomputed | None:
    """The published result of ``op`` with resolved ``params`` on this model and these rows, or None.

    ``params`` are the resolved params the run printed / stored (e.g. ``{"layer": "relu3"}``); a prefix counts
    only with its manifest and every shard's sha256 matching.
    """
    from core.precompute.ops import get_op
    from core.precompute.plan import precompute_key

    key = precompute_key(get_op(op), model_fingerprint, data_fingerprint, params)
    return Prefix(store_url, key).open(verify=True)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
