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

The store is a URL (``TRUSTLENS_STORE``; when unset, the folder ``TRUSTLENS_CACHE_DIR``, else
``data/cache``): a plain path or ``file://`` URL is the local folder described above; any other
fsspec protocol (``s3://bucket/prefix``, ``memory://name``, ...) is a shared object store
(:mod:`core.store_remote`), so a precompute job can fill it and many app servers read it. Remote
stores have no cross-process lock: two servers missing the same entry at once may both compute it
(harmless: same key, same content; the last write wins). ``TRUSTLENS_STORE_READONLY=1`` makes every
store of the process read-only: it never writes, never creates a folder or a lock file, and
:meth:`ArtifactStore.get_or_compute` returns what it computed without saving it.

Security: the store unpickles what it reads, so its URL is operator configuration. Point it only at
a folder or bucket that nothing but trusted TrustLens processes write to, never at anything a user
can upload to.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import re
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
STORE_ENV_VAR = "TRUSTLENS_STORE"  # a URL: local path, file://, s3://bucket/prefix, other fsspec protocols
READONLY_ENV_VAR = "TRUSTLENS_STORE_READONLY"  # 1: never write (app servers over a precomputed store)
MODEL_CACHE_ENV_VAR = "TRUSTLENS_MODEL_CACHE_DIR"  # trained built-in models only; see model_store()
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "data" / "cache"
DEFAULT_LIBRARIES = ("numpy", "scikit-learn", "torch")
_MAGIC = "trustlens-artifact"

T = TypeVar("T")


class CorruptEntryWarning(UserWarning):
    """A cache entry could not be read and is being recomputed."""


class StoreReadError(OSError):
    """A remote entry could not be read for a reason other than its absence (network, throttling):
    :meth:`ArtifactStore.get_or_compute` logs it and treats the entry as absent."""


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def store_url() -> str:
    """The store the process uses: ``$TRUSTLENS_STORE``, else ``$TRUSTLENS_CACHE_DIR``, else ``data/cache``."""
    return os.environ.get(STORE_ENV_VAR) or os.environ.get(ENV_VAR) or str(DEFAULT_DIR)


def readonly_from_env() -> bool:
    """Whether ``TRUSTLENS_STORE_READONLY`` asks for read-only stores (``1``/``true``/``yes``/``on``)."""
    raw = os.environ.get(READONLY_ENV_VAR, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{READONLY_ENV_VAR} must be 1 or 0; got {raw!r}.",
                             hint=f"set {READONLY_ENV_VAR}=1 on servers that only read the store, or unset it.")


_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_remote_url(root: object) -> bool:
    """True for a URL of a protocol other than ``file`` (``s3://...``, ``memory://...``, chained ``a::b://``)."""
    if not isinstance(root, str):
        return False  # Path objects are local folders
    match = _URL.match(root)
    if match is None:
        return "::" in root and _URL.search(root) is not None  # chained: simplecache::s3://...
    return match.group(1).lower() not in ("file", "local")


def _local_path(root: str | os.PathLike[str]) -> Path:
    text = os.fspath(root)
    for prefix in ("file://", "local://"):
        if isinstance(text, str) and text.lower().startswith(prefix):
            text = text[len(prefix):]
            if text.startswith("localhost/"):
                text = text[len("localhost"):]
            break
    return Path(text).expanduser()


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
    """A folder of pickled results, one file per key; or, given a URL, a shared object store.

    Parameters
    ----------
    root : str or Path, optional
        Folder or URL to use. Default: :func:`store_url` (``$TRUSTLENS_STORE``, else
        ``$TRUSTLENS_CACHE_DIR``, else ``data/cache`` in the checkout). A plain path or a ``file://``
        URL is a local folder (a process lock per key, ``os.replace`` atomic writes); another fsspec
        protocol (``s3://bucket/prefix``, ``memory://name``) opens a
        :class:`core.store_remote.RemoteArtifactStore` (no cross-process lock; see that module).
    readonly : bool, optional
        Never write: :meth:`get_or_compute` computes and returns without saving, :meth:`save` and
        :meth:`discard` skip the write with a log line (callers that save directly keep working),
        :meth:`clear` raises :class:`~core.errors.ConfigurationError`, and no folder or lock file is
        created. Default: ``$TRUSTLENS_STORE_READONLY``.

    The store unpickles what it reads: ``root`` is operator configuration and must name a folder or
    bucket that only trusted TrustLens processes write to.
    """

    url: str
    readonly: bool

    def __new__(cls, root: str | os.PathLike[str] | None = None, *, readonly: bool | None = None) -> ArtifactStore:
        if cls is ArtifactStore and is_remote_url(store_url() if root is None else root):
            from core.store_remote import RemoteArtifactStore  # fsspec and s3fs only when a URL asks for them

            return super().__new__(RemoteArtifactStore)
        return super().__new__(cls)

    def __init__(self, root: str | os.PathLike[str] | None = None, *, readonly: bool | None = None) -> None:
        if root is None:
            root = store_url()
        self.root = _local_path(root)
        self.url = str(self.root)
        self.readonly = readonly_from_env() if readonly is None else bool(readonly)
        if not self.readonly:  # a read-only server creates nothing; a missing folder reads as empty
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(
                    f"Cannot create the cache folder {str(self.root)!r}: {exc.strerror or exc}.",
                    hint=f"set {ENV_VAR} (or {STORE_ENV_VAR}) to a writable folder.",
                ) from exc
        self._init_state()

    def _init_state(self) -> None:
        # key -> [lock, callers holding or waiting, (value,) computed by a read-only store or None]; dropped at 0
        self._locks: dict[str, list[Any]] = {}
        self._locks_guard = threading.Lock()
        self.hits = self.misses = self.corrupt = 0

    def _readonly_error(self) -> ConfigurationError:
        return ConfigurationError(
            f"The artifact store {self.url!r} is read-only ({READONLY_ENV_VAR}=1 or readonly=True): nothing was removed.",
            hint=f"clear it from a process without {READONLY_ENV_VAR} (the one that fills it).",
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}{', readonly=True' if self.readonly else ''})"

    @property
    def local_dir(self) -> Path:
        """A local folder for this process's own files beside the store (e.g. job records): the store's
        folder, or for a remote store ``$TRUSTLENS_CACHE_DIR`` (else ``data/cache``). Not created here."""
        return self.root

    def _skip_write(self, key: str, what: str = "written") -> None:
        log.info("read-only artifact store %s (%s=1): entry %s not %s", self.url, READONLY_ENV_VAR, key[:12], what)

    # -- paths -----------------------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        _check_key(key)
        return self.root / key[:2] / f"{key}.pkl"

    @contextmanager
    def _lock(self, key: str) -> Iterator[list[Any]]:
        """One lock per key while anyone computes or waits for it; forgotten afterwards (a long-running
        server asks for a new key with every parameter a user tries, so kept locks would only grow)."""
        with self._locks_guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = [threading.Lock(), 0, None]
            entry[1] += 1
        try:
            with entry[0]:
                yield entry
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
        return _value_of(payload, key, path)

    def save(self, key: str, value: Any, description: dict[str, Any] | None = None) -> Path:
        """Write ``value`` under ``key`` atomically and return its path.

        A read-only store writes nothing: it logs that it skipped the entry and returns its path.
        """
        path = self.path_for(key)
        if self.readonly:
            self._skip_write(key)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = _payload(key, value, description)
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
        sharing a local folder) wait for a single computation instead of repeating it. A corrupt entry
        is removed, a :class:`CorruptEntryWarning` is issued, and the value is recomputed. A read-only
        store computes and returns the value without saving it (threads waiting for the same key get
        that value); a remote store treats an entry it cannot read (network error) as absent.
        """
        self.path_for(key)  # a malformed key is the caller's bug: raise it, do not treat it as corruption
        with self._lock(key) as entry:
            if entry[2] is not None:  # read-only: another thread of this process computed it just now
                self.hits += 1
                return entry[2][0]
            found, value = self._try_load(key)
            if found:
                return value
            if self.readonly:
                self.misses += 1
                value = compute()
                entry[2] = (value,)
                log.debug("read-only store %s: computed entry %s, not saved", self.url, key[:12])
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
        """(True, value) on a hit; (False, None) when absent, unreadable for now (a remote store's
        :class:`StoreReadError`, logged) or corrupt (removed, unless the store is read-only)."""
        try:
            value = self.load(key)
        except KeyError:
            return False, None
        except StoreReadError as exc:
            log.warning("%s; treating it as absent and computing it.", exc)
            return False, None
        except ValueError as exc:
            self.corrupt += 1
            message = f"{exc}; recomputing it."
            log.warning(message)
            warnings.warn(message, CorruptEntryWarning, stacklevel=3)
            self.discard(key)
            return False, None
        self.hits += 1
        return True, value

    def discard(self, key: str) -> None:
        """Remove the entry of ``key`` if there is one (nothing on a read-only store)."""
        path = self.path_for(key)
        if self.readonly:
            self._skip_write(key, "removed")
            return
        path.unlink(missing_ok=True)

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
        """Delete every entry; return how many were removed. Raises
        :class:`~core.errors.ConfigurationError` on a read-only store."""
        if self.readonly:
            raise self._readonly_error()
        removed = 0
        for path in self.entries():
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def _check_key(key: str) -> None:
    if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
        raise ValueError(f"Cache keys are sha256 hex digests; got {key!r}.")


def _payload(key: str, value: Any, description: dict[str, Any] | None) -> dict[str, Any]:
    """What an entry holds (the local and remote stores write the same pickle)."""
    return {"magic": _MAGIC, "key": key, "created": time.time(), "description": description or {}, "value": value}


def _value_of(payload: Any, key: str, where: object) -> Any:
    if not (isinstance(payload, dict) and payload.get("magic") == _MAGIC and payload.get("key") == key):
        raise ValueError(f"cache entry {where} does not hold the artifact for key {key[:12]}")
    return payload["value"]


def _describe(document: dict[str, Any]) -> dict[str, Any]:
    # Stored beside the value so `python -m core cache` style tooling can say what a file is.
    return {"op": document["op"], "params": canonical_json(document["params"])[:500]}


_default_store: ArtifactStore | None = None
_default_root: tuple[str, bool] | None = None
_default_guard = threading.Lock()


def default_store() -> ArtifactStore:
    """The process-wide store for the current ``TRUSTLENS_STORE`` (else ``TRUSTLENS_CACHE_DIR``) and
    ``TRUSTLENS_STORE_READONLY`` (re-read on change)."""
    global _default_store, _default_root
    wanted = (store_url(), readonly_from_env())
    with _default_guard:
        if _default_store is None or _default_root != wanted:
            _default_store = ArtifactStore(wanted[0], readonly=wanted[1])
            _default_root = wanted
        return _default_store


_model_stores: dict[tuple[str, bool], ArtifactStore] = {}


def model_store(store: ArtifactStore | None = None) -> ArtifactStore:
    """The store a trained built-in model is read from and written to.

    ``store`` when the caller chose one (a test's own folder keeps training into it); otherwise the
    folder (or URL) named by ``TRUSTLENS_MODEL_CACHE_DIR`` when that is set, else :func:`default_store`.
    The process's default store counts as no choice: code that resolved ``store or default_store()``
    before passing it down still reaches the model folder. ``TRUSTLENS_STORE_READONLY`` applies here too.
    """
    if store is not None and store is not default_store():
        return store
    root = os.environ.get(MODEL_CACHE_ENV_VAR)
    if not root:
        return default_store()
    wanted = (root, readonly_from_env())
    with _default_guard:
        found = _model_stores.get(wanted)
        if found is None:
            try:
                found = _model_stores[wanted] = ArtifactStore(root, readonly=wanted[1])
            except ConfigurationError as exc:
                hint = exc.hint if is_remote_url(root) else f"set {MODEL_CACHE_ENV_VAR} to a writable folder, or unset it."
                raise ConfigurationError(exc.message, hint=hint) from exc
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
