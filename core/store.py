"""On-disk artifact cache keyed by content.

A key is the sha256 of the canonical JSON of
``{schema, model fingerprint, data fingerprint, op, params, library versions}``, so a result is
reused exactly when everything it depends on is unchanged, and recomputed when any part is
(new weights, other data, another parameter, an upgraded library).

Writes are atomic (temporary file in the same folder, then ``os.replace``), so a crashed process or
a concurrent reader never sees half a file (the file is not fsynced: after a power cut an entry
may read as corrupt, and is then recomputed). A corrupt or mismatched entry is discarded with a
warning and recomputed; it never reaches a page as an exception.

The store only ever reads files that TrustLens itself wrote into a folder the person running
the server controls (``TRUSTLENS_CACHE_DIR``); it is never pointed at uploaded files, which is
why it may use pickle.

Trained built-in models (the scenarios' models, their random-label twins, uncertainty ensemble
members, the Bayes-by-backprop network and the autoencoder) may live in a folder of their own:
``TRUSTLENS_MODEL_CACHE_DIR``, when set, is where :func:`model_store` reads and writes them, unless
the caller passed a store of its own. Their keys hold the sha256 of the training code's source
(:func:`source_hash`) besides the data fingerprint, the recipe and the library versions, so the
folder can outlive a checkout: CI keeps it between runs on one machine
(``$HOME/.cache/trustlens-ci-models``, see .ci/run) and a change to the training code, the data or
a library retrains. Everything else (explanations, maps, reports) stays in ``TRUSTLENS_CACHE_DIR``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

try:  # POSIX: one computation per key across processes sharing the folder
    import fcntl
except ImportError:  # pragma: no cover - Windows: threads of one process are still coordinated
    fcntl = None  # type: ignore[assignment]

from core.errors import ConfigurationError
from core.fingerprint import canonical_json, hash_json

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ENV_VAR = "TRUSTLENS_CACHE_DIR"
MODEL_CACHE_ENV_VAR = "TRUSTLENS_MODEL_CACHE_DIR"  # trained built-in models only; see model_store()
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "data" / "cache"
DEFAULT_LIBRARIES = ("numpy", "scikit-learn", "torch")
_MAGIC = "trustlens-artifact"

T = TypeVar("T")


class CorruptEntryWarning(UserWarning):
    """A cache entry could not be read and is being recomputed."""


@functools.lru_cache(maxsize=None)
def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def library_versions(libraries: Iterable[str] = DEFAULT_LIBRARIES) -> dict[str, str]:
    """Installed versions of ``libraries`` (distribution names), read without importing them."""
    return {name: _version(name) for name in sorted(set(libraries))}


def cache_key(
    *,
    op: str,
    model_fingerprint: str | None = None,
    data_fingerprint: str | None = None,
    params: dict[str, Any] | None = None,
    libraries: Iterable[str] = DEFAULT_LIBRARIES,
) -> str:
    """sha256 hex key of everything a result depends on.

    Parameters
    ----------
    op : str
        The operation, e.g. ``"train"`` or ``"activations"``.
    model_fingerprint, data_fingerprint : str or None
        Content fingerprints (``None`` where the op has no model or no data).
    params : dict
        The operation's parameters; must be JSON-like (see ``core.fingerprint``).
    libraries : iterable of str
        Distributions whose versions change the result.
    """
    return hash_json(_key_document(op, model_fingerprint, data_fingerprint, params, libraries))


def _key_document(op, model_fingerprint, data_fingerprint, params, libraries) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "op": op,
        "model": model_fingerprint,
        "data": data_fingerprint,
        "params": params or {},
        "libraries": library_versions(libraries),
    }


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    corrupt: int


class ArtifactStore:
    """A folder of pickled results, one file per key.

    Parameters
    ----------
    root : str or Path, optional
        Folder to use. Default: ``$TRUSTLENS_CACHE_DIR``, else ``data/cache`` in the checkout.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        if root is None:
            root = os.environ.get(ENV_VAR) or DEFAULT_DIR
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot create the cache folder {str(self.root)!r}: {exc.strerror or exc}.",
                hint=f"set {ENV_VAR} to a writable folder.",
            ) from exc
        self._locks: dict[str, list[Any]] = {}  # key -> [lock, callers holding or waiting]; dropped at 0
        self._locks_guard = threading.Lock()
        self.hits = self.misses = self.corrupt = 0

    # -- paths -----------------------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"Cache keys are sha256 hex digests; got {key!r}.")
        return self.root / key[:2] / f"{key}.pkl"

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        """One lock per key while anyone computes or waits for it; forgotten afterwards (a long-running
        server asks for a new key with every parameter a user tries, so kept locks would only grow)."""
        with self._locks_guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = [threading.Lock(), 0]
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._locks_guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    @contextmanager
    def _process_lock(self, key: str) -> Iterator[None]:
        """Hold an advisory lock on ``.<key>.lock`` beside the entry while computing it, so another
        process sharing the folder waits instead of computing the same entry. The lock files stay
        (empty; removing one while another process waits on it would let a third compute anyway)."""
        if fcntl is None:
            yield
            return
        path = self.path_for(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path.parent / f".{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only or full folder: compute without the lock, as before
            log.warning("could not create the lock file for cache entry %s: %s", key[:12], exc)
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # -- reading and writing ---------------------------------------------------------------
    def contains(self, key: str) -> bool:
        return self.path_for(key).exists()

    def load(self, key: str) -> Any:
        """Return the stored value; raise ``KeyError`` if absent, ``ValueError`` if corrupt."""
        path = self.path_for(key)
        try:
            with open(path, "rb") as fh:
                payload = pickle.load(fh)
        except FileNotFoundError:
            raise KeyError(key) from None
        except Exception as exc:  # any unpickling failure means the file is unusable
            raise ValueError(f"cache entry {path} is unreadable: {type(exc).__name__}: {exc}") from exc
        if not (isinstance(payload, dict) and payload.get("magic") == _MAGIC and payload.get("key") == key):
            raise ValueError(f"cache entry {path} does not hold the artifact for key {key[:12]}")
        return payload["value"]

    def save(self, key: str, value: Any, description: dict[str, Any] | None = None) -> Path:
        """Write ``value`` under ``key`` atomically and return its path."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "magic": _MAGIC,
            "key": key,
            "created": time.time(),
            "description": description or {},
            "value": value,
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:12]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                # No fsync: a cache needs no durability (2-3 ms per entry while the disk was busy; no
                # measurable change to the trust checks on an idle machine). A process crash cannot lose
                # the written pages; a power cut may leave an empty or short file, which load() detects
                # and recomputes.
                pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return path

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], T],
        description: dict[str, Any] | None = None,
    ) -> T:
        """Return the cached value for ``key``, computing and storing it on a miss.

        Concurrent callers asking for the same key (threads of this process, or other processes
        sharing the folder) wait for a single computation instead of repeating it. A corrupt entry is
        removed, a :class:`CorruptEntryWarning` is issued, and the value is recomputed.
        """
        self.path_for(key)  # a malformed key is the caller's bug: raise it, do not treat it as corruption
        with self._lock(key):
            found, value = self._try_load(key)
            if found:
                return value
            with self._process_lock(key):
                found, value = self._try_load(key)  # another process may have computed it while we waited
                if found:
                    return value
                self.misses += 1
                value = compute()
                try:
                    self.save(key, value, description)
                except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
                    # A full disk or an unpicklable result must not lose the value we just computed.
                    log.warning("could not write cache entry %s: %s", key[:12], exc)
                return value

    def _try_load(self, key: str) -> tuple[bool, Any]:
        """(True, value) on a hit; (False, None) when absent or corrupt (a corrupt entry is removed)."""
        try:
            value = self.load(key)
        except KeyError:
            return False, None
        except ValueError as exc:
            self.corrupt += 1
            message = f"{exc}; recomputing it."
            log.warning(message)
            warnings.warn(message, CorruptEntryWarning, stacklevel=3)
            self.path_for(key).unlink(missing_ok=True)
            return False, None
        self.hits += 1
        return True, value

    def cached(
        self,
        compute: Callable[[], T],
        *,
        op: str,
        model_fingerprint: str | None = None,
        data_fingerprint: str | None = None,
        params: dict[str, Any] | None = None,
        libraries: Iterable[str] = DEFAULT_LIBRARIES,
    ) -> T:
        """``get_or_compute`` with the key built from its parts (the usual entry point)."""
        document = _key_document(op, model_fingerprint, data_fingerprint, params, libraries)
        key = hash_json(document)
        return self.get_or_compute(key, compute, description=_describe(document))

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.corrupt)

    def entries(self) -> list[Path]:
        return sorted(self.root.glob("??/*.pkl"))

    def clear(self) -> int:
        """Delete every entry; return how many were removed."""
        removed = 0
        for path in self.entries():
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def _describe(document: dict[str, Any]) -> dict[str, Any]:
    # Stored beside the value so `python -m core cache` style tooling can say what a file is.
    return {"op": document["op"], "params": canonical_json(document["params"])[:500]}


_default_store: ArtifactStore | None = None
_default_root: str | None = None
_default_guard = threading.Lock()


def default_store() -> ArtifactStore:
    """The process-wide store for the current ``TRUSTLENS_CACHE_DIR`` (re-read on change)."""
    global _default_store, _default_root
    root = os.environ.get(ENV_VAR) or str(DEFAULT_DIR)
    with _default_guard:
        if _default_store is None or _default_root != root:
            _default_store = ArtifactStore(root)
            _default_root = root
        return _default_store


_model_stores: dict[str, ArtifactStore] = {}


def model_store(store: ArtifactStore | None = None) -> ArtifactStore:
    """The store a trained built-in model is read from and written to.

    ``store`` when the caller chose one (a test's own folder keeps training into it); otherwise the
    folder named by ``TRUSTLENS_MODEL_CACHE_DIR`` when that is set, else :func:`default_store`.
    The process's default store counts as no choice: code that resolved ``store or default_store()``
    before passing it down still reaches the model folder.
    """
    if store is not None and store is not default_store():
        return store
    root = os.environ.get(MODEL_CACHE_ENV_VAR)
    if not root:
        return default_store()
    with _default_guard:
        found = _model_stores.get(root)
        if found is None:
            try:
                found = _model_stores[root] = ArtifactStore(root)
            except ConfigurationError as exc:
                raise ConfigurationError(exc.message,
                                         hint=f"set {MODEL_CACHE_ENV_VAR} to a writable folder, or unset it.") from exc
        return found


_ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_hash(*modules: str) -> str:
    """sha256 of the source text of ``modules`` (paths relative to the checkout, e.g. ``"core/nets.py"``).

    Part of the keys of trained models, so that a model cached by other code (a persistent
    ``TRUSTLENS_MODEL_CACHE_DIR``) is retrained when the code that trains it changes. Read once per
    process and file.
    """
    return hash_json({name: _file_digest(str(_ROOT / name)) for name in sorted(modules)})
