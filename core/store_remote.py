"""The artifact store on a shared object store: ``s3://bucket/prefix`` and other fsspec protocols.

:class:`core.store.ArtifactStore` opens a :class:`RemoteArtifactStore` when given a URL whose
protocol is not ``file`` (``TRUSTLENS_STORE=s3://bucket/prefix``), so a precompute job can fill one
store and many app servers read it. Entries are the same pickles, at the same relative paths
(``<key[:2]>/<key>.pkl``), as in a local folder.

Atomic for readers: the entry is pickled to bytes first and written in one call. On S3 (and GCS,
Azure, ``memory://``) that is one object PUT (or, above 100 MB, one multipart upload), and an
object appears whole or not at all, so a reader never sees a partial entry. On other protocols
(sftp, hdfs, ...) the bytes go to a temporary name beside the entry, then are renamed onto it.

No cross-process lock: threads of one process still wait for a single computation of a key, but
two servers missing the same entry at once may both compute it (harmless: same key, same content;
the last PUT wins). An entry that cannot be read for a reason other than its absence (network,
throttling) is logged and treated as absent (computed again); a corrupt entry is recomputed with a
:class:`~core.store.CorruptEntryWarning`, as in a local folder.

Security: entries are unpickled, so the URL is operator configuration: point it only at a bucket
(prefix) that nothing but trusted TrustLens processes can write to, never at anything users upload to.

S3 settings come from the variables botocore reads (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ...);
the endpoint of an S3-compatible server (MinIO, Ceph, moto) from ``AWS_ENDPOINT_URL_S3``, else
``AWS_ENDPOINT_URL``, passed to s3fs explicitly (botocore >= 1.31 reads them too; older ones do not).
fsspec and s3fs are imported only here, when a remote URL is used (``requirements-scale.txt``).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError
from core.store import (
    DEFAULT_DIR,
    ENV_VAR,
    STORE_ENV_VAR,
    ArtifactStore,
    StoreReadError,
    _check_key,
    _local_path,
    _payload,
    _value_of,
    readonly_from_env,
    store_url,
)

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -r requirements-scale.txt"
# Protocols where one write makes an object appear whole or not at all.
ATOMIC_PUT = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})
_BUCKETED = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
_S3 = frozenset({"s3", "s3a"})
_ENTRY = re.compile(r"(?:^|/)([0-9a-f]{2})/(\1[0-9a-f]{6,})\.pkl$")
# Opening a store asks the server once, with few retries, so a wrong endpoint fails in seconds, not minutes.
_PROBE_CONFIG = {"retries": {"max_attempts": 2, "mode": "standard"}, "connect_timeout": 5, "read_timeout": 15}
_CREDENTIAL_ERRORS = ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
                      "InvalidAccessKeyId", "SignatureDoesNotMatch")
_CONNECTION_ERRORS = ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionError", "ReadTimeoutError",
                      "ClientConnectorError", "ServerDisconnectedError", "TimeoutError", "gaierror")


_checked: set[tuple[str, str]] = set()  # (filesystem token, bucket) pairs opened successfully in this process
_checked_guard = threading.Lock()


def s3_endpoint() -> str | None:
    """The S3 endpoint the environment names (``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def storage_options(protocol: str) -> dict[str, Any]:
    """fsspec options for ``protocol``: for S3 the endpoint from the environment, and no listing cache
    (another server's new entries must be seen at once)."""
    if protocol not in _S3:
        return {}
    options: dict[str, Any] = {"use_listings_cache": False}
    endpoint = s3_endpoint()
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return options


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _configuration_error(url: str, protocol: str, bucket: str, exc: BaseException) -> ConfigurationError:
    """What went wrong opening ``url``, and what to do, as a :class:`ConfigurationError`."""
    names = _names(exc)
    endpoint = s3_endpoint() if protocol in _S3 else None
    where = f"the endpoint {endpoint!r}" if endpoint else "the storage service"
    if names & set(_CREDENTIAL_ERRORS):
        what = "no usable credentials were found"
        hint = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for this process."
                if protocol in _S3 else "configure the credentials of this storage service for this process.")
    elif isinstance(exc, FileNotFoundError):
        what = f"the bucket {bucket!r} does not exist" if protocol in _BUCKETED else "the location does not exist"
        hint = f"create the bucket, or set {STORE_ENV_VAR} to an existing one ({protocol}://bucket/prefix)."
    elif isinstance(exc, PermissionError):
        what = f"access was denied by {where}"
        hint = ("check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy."
                if protocol in _S3 else "check this process's credentials and permissions.")
    elif names & set(_CONNECTION_ERRORS) or isinstance(exc, (ConnectionError, TimeoutError)):
        what = f"{where} cannot be reached"
        hint = ("check AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and that the server is running."
                if protocol in _S3 else "check the URL and that the server is reachable.")
    else:
        what = "it could not be opened"
        hint = f"check {STORE_ENV_VAR} and the storage service's settings."
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = f"The artifact store {url!r} cannot be used: {what} ({type(exc).__name__}{': ' + detail if detail else ''})."
    return ConfigurationError(message, hint=hint)


def open_filesystem(url: str) -> tuple[Any, str, str]:
    """``(filesystem, root path inside it, protocol)`` for ``url``, checked to be usable.

    Raises
    ------
    ConfigurationError
        fsspec or the protocol's package (s3fs) is missing, the protocol is unknown, or the server
        cannot be reached, the bucket does not exist, or there are no credentials.
    """
    try:
        from fsspec.core import url_to_fs
        from fsspec.registry import known_implementations
    except ImportError as exc:
        raise ConfigurationError(f"The artifact store {url!r} is a URL, which needs the fsspec package.",
                                 hint=INSTALL_HINT) from exc
    outer = url.split("::", 1)[0].split("://", 1)[0].lower()
    try:
        fs, root = url_to_fs(url, **storage_options(outer))
    except ImportError as exc:
        package = known_implementations.get(outer, {}).get("class", "").split(".")[0] or "its fsspec package"
        raise ConfigurationError(f"The artifact store {url!r} needs the package {package!r}, which is not installed.",
                                 hint=INSTALL_HINT) from exc
    except ValueError as exc:
        raise ConfigurationError(f"The artifact store {url!r} uses an unknown protocol: {exc}.",
                                 hint=f"set {STORE_ENV_VAR} to a folder or an s3://bucket/prefix URL.") from exc
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    root = root.rstrip("/") if root not in ("", "/") else root
    bucket = root.split("/", 1)[0]
    if protocol in _BUCKETED and not bucket:
        raise ConfigurationError(f"The artifact store {url!r} names no bucket.",
                                 hint=f"set {STORE_ENV_VAR} to {protocol}://bucket/prefix.")
    checked = (getattr(fs, "_fs_token", None) or str(id(fs)), bucket if protocol in _BUCKETED else root)
    with _checked_guard:
        if checked in _checked:
            return fs, root, protocol  # this filesystem object reached this bucket before: no second probe
    try:
        if protocol in _S3:  # a client of its own with few retries (s3fs's cached one keeps botocore's defaults)
            probe = type(fs)(**{**fs.storage_options, "config_kwargs": _PROBE_CONFIG, "skip_instance_cache": True})
            probe.info(bucket)  # HeadBucket: the endpoint answers, the credentials sign, the bucket exists
        elif protocol in _BUCKETED:
            fs.info(bucket)
        else:
            try:
                fs.info(root)
            except FileNotFoundError:
                pass  # an empty store: entries appear as they are written
    except Exception as exc:  # noqa: BLE001 - every failure here is the operator's to fix, named below
        raise _configuration_error(url, protocol, bucket, exc) from exc
    with _checked_guard:
        _checked.add(checked)
    return fs, root, protocol


class RemoteArtifactStore(ArtifactStore):
    """An :class:`~core.store.ArtifactStore` on an fsspec filesystem (``s3://bucket/prefix``, ``memory://...``).

    Built by ``ArtifactStore(url)``; see the module's docstring for atomicity (one PUT), the missing
    cross-process lock (two servers may compute the same missing entry once each: harmless, same
    content) and the trust rule (only trusted TrustLens processes may write to the bucket).

    ``root`` is the URL (a string; there is no local folder), ``fs`` the filesystem and ``path`` the
    store's root inside it.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, readonly: bool | None = None) -> None:
        url = store_url() if root is None else os.fspath(root)
        self.url = url if url.endswith("://") else url.rstrip("/")
        self.root = self.url  # type: ignore[assignment]  # memo keys use str(store.root)
        self.readonly = readonly_from_env() if readonly is None else bool(readonly)
        self.fs, self.path, self.protocol = open_filesystem(self.url)
        self._init_state()

    @property
    def local_dir(self) -> Path:
        return _local_path(os.environ.get(ENV_VAR) or DEFAULT_DIR)

    def _join(self, *parts: str) -> str:
        base = self.path.rstrip("/")
        return "/".join([base, *parts]) if base else "/".join(parts)

    def path_for(self, key: str) -> str:  # type: ignore[override]
        _check_key(key)
        return self._join(key[:2], f"{key}.pkl")

    def _where(self, key: str) -> str:
        return f"{self.url}/{key[:2]}/{key}.pkl"

    @contextmanager
    def _process_lock(self, key: str) -> Iterator[None]:
        yield  # no lock across servers: a key missed by two at once is computed twice (same content)

    def contains(self, key: str) -> bool:
        try:
            return bool(self.fs.exists(self.path_for(key)))
        except Exception as exc:  # noqa: BLE001 - a network error: say absent, as load() would
            log.warning("could not check cache entry %s: %s: %s", self._where(key), type(exc).__name__, exc)
            return False

    def load(self, key: str) -> Any:
        """Return the stored value; raise ``KeyError`` if absent, ``ValueError`` if corrupt,
        :class:`~core.store.StoreReadError` if it could not be read (network)."""
        path = self.path_for(key)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            raise KeyError(key) from None
        except Exception as exc:  # noqa: BLE001 - anything else is this read failing, not the entry
            raise StoreReadError(f"cache entry {self._where(key)} could not be read: {type(exc).__name__}: {exc}") from exc
        try:
            payload = pickle.loads(data)
        except Exception as exc:  # any unpickling failure means the object is unusable
            raise ValueError(f"cache entry {self._where(key)} is unreadable: {type(exc).__name__}: {exc}") from exc
        return _value_of(payload, key, self._where(key))

    def save(self, key: str, value: Any, description: dict[str, Any] | None = None) -> str:  # type: ignore[override]
        """Write ``value`` under ``key`` in one PUT (or temporary name, then rename) and return its path.

        A read-only store writes nothing (logged); ``OSError`` when the write fails.
        """
        path = self.path_for(key)
        if self.readonly:
            self._skip_write(key)
            return path
        data = pickle.dumps(_payload(key, value, description), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            if self.protocol in ATOMIC_PUT:
                self.fs.pipe_file(path, data)  # one PUT: the object appears whole or not at all
            else:
                parent = path.rsplit("/", 1)[0]
                self.fs.makedirs(parent, exist_ok=True)
                tmp = f"{parent}/.{key[:12]}.{uuid.uuid4().hex}.tmp"
                try:
                    self.fs.pipe_file(tmp, data)
                    self.fs.mv(tmp, path)  # published last
                except BaseException:
                    try:
                        self.fs.rm_file(tmp)
                    except Exception:  # noqa: BLE001 - already gone, or the store is unreachable
                        pass
                    raise
        except OSError:
            raise
        except Exception as exc:  # botocore's errors are not OSErrors: get_or_compute logs OSErrors and goes on
            raise OSError(f"could not write cache entry {self._where(key)}: {type(exc).__name__}: {exc}") from exc
        return path

    def discard(self, key: str) -> None:
        path = self.path_for(key)
        if self.readonly:
            self._skip_write(key, "removed")
            return
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001 - it is rewritten after the recomputation anyway
            log.warning("could not remove corrupt cache entry %s: %s", self._where(key), exc)

    def entries(self) -> list[str]:  # type: ignore[override]
        try:
            found = self.fs.find(self.path)
        except FileNotFoundError:
            return []
        return sorted(p for p in found if _ENTRY.search(p))

    def clear(self) -> int:
        if self.readonly:
            raise self._readonly_error()
        removed = 0
        for path in self.entries():
            try:
                self.fs.rm_file(path)
            except FileNotFoundError:
                continue
            removed += 1
        return removed
