"""The artifact store as a URL (core/store.py, core/store_remote.py): s3:// against a real S3-compatible
server (moto's server mode, started here on 127.0.0.1; not a mocked client), memory://, read-only stores,
TRUSTLENS_STORE / TRUSTLENS_STORE_READONLY, and the errors an operator gets for a wrong URL."""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings

import numpy as np
import pytest

from core import store as store_mod
from core.errors import ConfigurationError
from core.store import ArtifactStore, CorruptEntryWarning, cache_key, default_store, model_store
from tests.conftest import ROOT
from tests.moto_support import CREDENTIALS, moto_server

STORE_VARS = ("TRUSTLENS_STORE", "TRUSTLENS_STORE_READONLY", "TRUSTLENS_MODEL_CACHE_DIR")


def make_key(tag: str) -> str:
    return cache_key(op="test-url", params={"tag": tag})


class Counter:
    def __init__(self, value="computed"):
        self.calls = 0
        self.value = value

    def __call__(self):
        self.calls += 1
        return self.value


# -- the S3-compatible server -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint():
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(moto_endpoint, monkeypatch, tmp_path):
    """Credentials and endpoint in the variables botocore and the store read; nothing from ~/.aws or EC2."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", *STORE_VARS):
        monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return moto_endpoint


@pytest.fixture(scope="module")
def s3_client(moto_endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def shared_bucket(s3_client):
    s3_client.create_bucket(Bucket="trustlens-tests")
    return "trustlens-tests"


def bucket_keys(client, name) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", []))


def empty(client, name) -> None:
    for key in bucket_keys(client, name):
        client.delete_object(Bucket=name, Key=key)


@pytest.fixture
def bucket(s3_env, s3_client, shared_bucket):
    """One bucket for the module (a store checks a bucket once per process), empty at each test's start."""
    empty(s3_client, shared_bucket)
    yield shared_bucket
    empty(s3_client, shared_bucket)


@pytest.fixture(params=["s3", "memory"])
def remote(request, monkeypatch):
    """(URL of a fresh remote store, function listing every object under it)."""
    if request.param == "s3":
        client, name = request.getfixturevalue("s3_client"), request.getfixturevalue("bucket")
        yield f"s3://{name}/trust/lens", lambda: [f"{name}/{k}" for k in bucket_keys(client, name)]
        return
    import fsspec

    for name in STORE_VARS:
        monkeypatch.delenv(name, raising=False)
    top = f"/trustlens-{uuid.uuid4().hex[:12]}"
    memory = fsspec.filesystem("memory")
    yield f"memory://{top}/cache", lambda: sorted(memory.find(f"{top}/cache"))
    if memory.exists(top):
        memory.rm(top, recursive=True)


# -- round trips -------------------------------------------------------------------------------------
def test_s3_save_load_round_trip_in_the_local_format(s3_client, bucket, tmp_path):
    from core.store_remote import RemoteArtifactStore

    store = ArtifactStore(f"s3://{bucket}/pre/fix")
    assert isinstance(store, RemoteArtifactStore) and not store.readonly
    key, value = make_key("round trip"), {"a": np.arange(1000, dtype=np.float32), "b": "text"}
    with pytest.raises(KeyError):
        store.load(key)
    assert not store.contains(key)
    store.save(key, value, {"op": "test"})
    assert store.contains(key)
    loaded = store.load(key)
    assert loaded["b"] == "text" and np.array_equal(loaded["a"], value["a"])
    assert bucket_keys(s3_client, bucket) == [f"pre/fix/{key[:2]}/{key}.pkl"]
    assert store.entries() == [f"{bucket}/pre/fix/{key[:2]}/{key}.pkl"]
    # the same bytes as a local entry: a local store reads the object copied into its folder
    body = s3_client.get_object(Bucket=bucket, Key=f"pre/fix/{key[:2]}/{key}.pkl")["Body"].read()
    local = ArtifactStore(tmp_path / "local")
    local.path_for(key).parent.mkdir(parents=True)
    local.path_for(key).write_bytes(body)
    assert local.load(key)["b"] == "text"
    assert store.clear() == 1 and bucket_keys(s3_client, bucket) == []


def test_remote_get_or_compute_round_trip(remote):
    url, listing = remote
    store = ArtifactStore(url)
    key = make_key("memory")
    assert store.get_or_compute(key, Counter([1, 2])) == [1, 2]
    assert store.get_or_compute(key, Counter("never")) == [1, 2]
    assert store.stats().hits == 1 and store.stats().misses == 1
    assert [p.rsplit("/", 2)[-2:] for p in listing()] == [[key[:2], f"{key}.pkl"]]


def test_a_second_server_hits_what_the_first_computed(remote):
    url, _ = remote
    first, second = ArtifactStore(url), ArtifactStore(url)
    assert first is not second
    kw = dict(op="o", model_fingerprint="m", data_fingerprint="d", params={"p": 1})
    compute = Counter({"v": 7})
    assert first.cached(compute, **kw) == {"v": 7}
    assert second.cached(compute, **kw) == {"v": 7}
    assert compute.calls == 1
    assert (second.stats().hits, second.stats().misses) == (1, 0)


def test_another_process_fills_the_store_and_a_read_only_server_hits(s3_env, s3_client, bucket, monkeypatch):
    """The contract by its environment variables: a precompute job (another process) writes through
    TRUSTLENS_STORE; a server with TRUSTLENS_STORE_READONLY=1 reads it and writes nothing."""
    url = f"s3://{bucket}/shared"
    code = ("from core.store import default_store\n"
            "s = default_store()\n"
            "print(s.cached(lambda: {'answer': 42}, op='precompute', params={'n': 1}), type(s).__name__)\n")
    env = {**os.environ, "TRUSTLENS_STORE": url}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["{'answer':", "42}", "RemoteArtifactStore"]
    before = bucket_keys(s3_client, bucket)
    assert len(before) == 1
    monkeypatch.setenv("TRUSTLENS_STORE", url)
    monkeypatch.setenv("TRUSTLENS_STORE_READONLY", "1")
    server = default_store()
    assert server.readonly and server.url == url
    assert server.cached(Counter("never"), op="precompute", params={"n": 1}) == {"answer": 42}
    assert server.cached(Counter("fresh"), op="precompute", params={"n": 2}) == "fresh"
    assert bucket_keys(s3_client, bucket) == before


# -- readers never see a partial entry -----------------------------------------------------------
class PauseWhilePickled:
    """Pickling it stops the writer half way through the entry until the test has looked at the store."""

    def __init__(self, reached: threading.Event, resume: threading.Event):
        self.reached, self.resume = reached, resume

    def __reduce__(self):
        self.reached.set()
        assert self.resume.wait(30), "the test never let the writer go on"
        return (str, ("paused",))


def test_a_reader_sees_no_entry_or_the_whole_entry(remote):
    """A writer stops half way through pickling a large entry (forced by events, not timed): a reader
    then finds no entry; another reader polls the store while the write goes on and sees only "absent"
    or the whole value, never a partial one (ValueError). An entry streamed to its final name (e.g.
    through fs.open) would be visible, empty or short, on memory://."""
    url, _ = remote
    writer, reader = ArtifactStore(url), ArtifactStore(url)
    key = make_key("partial")
    big = np.random.default_rng(0).integers(0, 255, size=4 * 2**20, dtype=np.uint8)
    reached, resume, written = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def write():
        try:
            writer.save(key, {"head": PauseWhilePickled(reached, resume), "big": big})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            written.set()

    seen: list[str] = []

    def poll():
        while True:
            done = written.is_set()  # read before loading: the last load starts after the write ended
            try:
                value = reader.load(key)
            except KeyError:
                seen.append("absent")
            except BaseException as exc:  # noqa: BLE001 - a partial entry shows up here
                seen.append(f"{type(exc).__name__}: {exc}")
            else:
                seen.append("whole" if value["head"] == "paused" and np.array_equal(value["big"], big) else "wrong")
            if done:
                return

    thread = threading.Thread(target=write)
    thread.start()
    assert reached.wait(30), "the writer never started pickling"
    with pytest.raises(KeyError):  # half pickled: nothing is visible yet
        reader.load(key)
    poller = threading.Thread(target=poll)
    poller.start()
    resume.set()
    thread.join(60)
    poller.join(60)
    assert not errors, errors
    assert set(seen) <= {"absent", "whole"}, sorted(set(seen))
    assert seen[-1] == "whole"


def test_rename_last_on_a_filesystem_without_atomic_writes():
    """On protocols where a write is visible while it happens (sftp, hdfs, ...) the entry is written under a
    temporary name and renamed onto its own last: a reader looking half way through the write finds nothing."""
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem, MemoryFile

    half, resume = threading.Event(), threading.Event()

    class InPlaceFS(MemoryFileSystem):
        """A memory filesystem whose writes are visible as they happen, like a file written in place."""

        protocol = "tlinplace"
        store: dict = {}
        pseudo_dirs = [""]

        @classmethod
        def _strip_protocol(cls, path):
            return super()._strip_protocol(str(path).removeprefix("tlinplace://"))

        def pipe_file(self, path, value, mode="overwrite", **kwargs):
            path = self._strip_protocol(path)
            target = self.store[path] = MemoryFile(self, path)
            target.write(value[: len(value) // 2])
            half.set()
            assert resume.wait(30), "the test never let the write go on"
            target.write(value[len(value) // 2:])

    fsspec.register_implementation("tlinplace", InPlaceFS, clobber=True)
    store = ArtifactStore("tlinplace://trustlens/cache")
    key = make_key("in place")
    failures: list[BaseException] = []

    def write():
        try:
            store.save(key, list(range(10_000)))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    assert half.wait(30)
    try:
        with pytest.raises(KeyError):  # the half-written bytes are not under the entry's name
            store.load(key)
    finally:
        resume.set()
        thread.join(30)
    assert not failures, failures
    assert store.load(key) == list(range(10_000))
    assert sorted(InPlaceFS.store) == [f"/trustlens/cache/{key[:2]}/{key}.pkl"]  # the temporary name is gone


# -- read-only ------------------------------------------------------------------------------------------
def test_read_only_remote_store_computes_but_writes_nothing(remote, caplog):
    url, listing = remote
    readonly = ArtifactStore(url, readonly=True)
    key = make_key("read only")
    compute = Counter("value")
    assert readonly.get_or_compute(key, compute) == "value"
    assert readonly.get_or_compute(key, compute) == "value"
    assert compute.calls == 2 and listing() == []  # computed each time, never saved
    with caplog.at_level(logging.INFO, logger="core.store"):
        readonly.save(key, "value")  # a caller saving directly keeps working: the write is skipped, logged
    assert f"read-only artifact store {url} (TRUSTLENS_STORE_READONLY=1): entry {key[:12]} not written" in caplog.text
    with pytest.raises(ConfigurationError, match="read-only"):
        readonly.clear()
    assert listing() == []
    ArtifactStore(url).save(key, "precomputed")  # the precompute job
    assert readonly.get_or_compute(key, Counter("never")) == "precomputed"
    readonly.discard(key)
    assert readonly.load(key) == "precomputed"


def test_read_only_local_store_creates_no_folder_no_lock_and_keeps_a_corrupt_entry(tmp_path, monkeypatch):
    monkeypatch.delenv("TRUSTLENS_STORE_READONLY", raising=False)
    missing = tmp_path / "never-created"
    readonly = ArtifactStore(missing, readonly=True)
    assert readonly.get_or_compute(make_key("a"), Counter("A")) == "A"
    readonly.save(make_key("a"), "A")
    with pytest.raises(ConfigurationError, match="read-only"):
        readonly.clear()
    assert not missing.exists()

    folder = tmp_path / "filled"
    ArtifactStore(folder).save(make_key("b"), "B")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    monkeypatch.setenv("TRUSTLENS_STORE_READONLY", "1")
    server = ArtifactStore(folder)
    assert server.readonly
    assert server.get_or_compute(make_key("b"), Counter("never")) == "B"
    assert server.get_or_compute(make_key("c"), Counter("C")) == "C"
    server_corrupt = make_key("b")
    server.path_for(server_corrupt).write_bytes(b"garbage")
    with pytest.warns(CorruptEntryWarning):
        assert server.get_or_compute(server_corrupt, Counter("again")) == "again"
    assert server.path_for(server_corrupt).read_bytes() == b"garbage"  # not removed: the store is not ours to change
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before  # no entry, no lock file


def test_read_only_threads_asking_for_one_key_compute_it_once(tmp_path):
    """Nothing is saved, so threads waiting for a key get the value the first computed (forced order: the
    computation goes on only once every other caller waits for the key)."""
    store = ArtifactStore(tmp_path / "ro", readonly=True)
    key = make_key("shared")
    computing, release = threading.Event(), threading.Event()
    calls, results = [], []

    def compute():
        calls.append(1)
        computing.set()
        assert release.wait(30)
        return {"v": 1}

    threads = [threading.Thread(target=lambda: results.append(store.get_or_compute(key, compute))) for _ in range(4)]
    for t in threads:
        t.start()
    assert computing.wait(30)
    deadline = time.monotonic() + 30
    while store._locks.get(key, [None, 0])[1] < 4 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    release.set()
    for t in threads:
        t.join(30)
    assert len(calls) == 1 and results == [{"v": 1}] * 4
    assert store._locks == {}  # the shared value is dropped with the key's lock


# -- corrupt and unreadable entries ---------------------------------------------------------------------
def test_corrupt_remote_entry_is_recomputed_with_a_warning(remote):
    url, _ = remote
    store = ArtifactStore(url)
    key = make_key("corrupt")
    store.save(key, "stale")
    store.fs.pipe_file(store.path_for(key), b"\x00 not a pickle")
    compute = Counter("fresh")
    with pytest.warns(CorruptEntryWarning, match=key[:12]):
        assert store.get_or_compute(key, compute) == "fresh"
    assert compute.calls == 1 and store.stats().corrupt == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ArtifactStore(url).load(key) == "fresh"  # rewritten


def test_a_transient_read_error_counts_as_absent(s3_env, bucket, monkeypatch, caplog):
    from botocore.exceptions import EndpointConnectionError

    store = ArtifactStore(f"s3://{bucket}/flaky")
    key = make_key("flaky")
    store.save(key, "stored")

    def unreachable(path, *args, **kwargs):
        raise EndpointConnectionError(endpoint_url=s3_env)

    with monkeypatch.context() as patch, warnings.catch_warnings():
        patch.setattr(store.fs, "cat_file", unreachable)
        warnings.simplefilter("error", CorruptEntryWarning)  # not corruption: nothing is removed
        with caplog.at_level(logging.WARNING, logger="core.store"):
            assert store.get_or_compute(key, Counter("recomputed")) == "recomputed"
    assert "could not be read" in caplog.text and "treating it as absent" in caplog.text
    assert store.stats().corrupt == 0
    assert ArtifactStore(f"s3://{bucket}/flaky").load(key) == "recomputed"


# -- configuration errors ----------------------------------------------------------------------------------
def test_missing_bucket_names_the_url_and_what_to_do(s3_env):
    url = "s3://no-such-bucket-trustlens/prefix"
    with pytest.raises(ConfigurationError) as info:
        ArtifactStore(url)
    text = str(info.value)
    assert url in text and "bucket 'no-such-bucket-trustlens' does not exist" in text and "create the bucket" in text


def test_unreachable_endpoint_names_it(s3_env, monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        ArtifactStore("s3://any-bucket/prefix")
    text = str(info.value)
    assert "s3://any-bucket/prefix" in text and endpoint in text and "cannot be reached" in text
    assert "AWS_ENDPOINT_URL" in text
    assert time.monotonic() - started < 15


def test_no_credentials_says_which_variables_to_set(s3_env, s3_client, monkeypatch):
    fresh = f"trustlens-{uuid.uuid4().hex[:12]}"  # a bucket no store of this process has opened yet
    s3_client.create_bucket(Bucket=fresh)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigurationError, match="(?s)no usable credentials.*AWS_ACCESS_KEY_ID"):
        ArtifactStore(f"s3://{fresh}/prefix")


def test_unknown_protocol_and_bad_readonly_value_are_configuration_errors(monkeypatch, tmp_path):
    with pytest.raises(ConfigurationError, match="unknown protocol"):
        ArtifactStore("nosuchproto-trustlens://x/y")
    monkeypatch.setenv("TRUSTLENS_STORE_READONLY", "maybe")
    with pytest.raises(ConfigurationError, match="TRUSTLENS_STORE_READONLY must be 1 or 0; got 'maybe'"):
        ArtifactStore(tmp_path / "x")


def test_missing_s3fs_is_a_configuration_error_and_core_store_imports_no_fsspec():
    code = (
        "import sys, json\n"
        "import core.store\n"
        "lazy = [m for m in ('fsspec', 's3fs', 'botocore') if m in sys.modules]\n"
        "sys.modules['s3fs'] = None  # as if it were not installed\n"
        "from core.errors import ConfigurationError\n"
        "try:\n"
        "    core.store.ArtifactStore('s3://bucket/prefix')\n"
        "except ConfigurationError as exc:\n"
        "    print(json.dumps([lazy, str(exc)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lazy, message = json.loads(out.stdout.strip().splitlines()[-1])
    assert lazy == []
    assert "s3://bucket/prefix" in message and "s3fs" in message and "pip install -r requirements-scale.txt" in message


# -- TRUSTLENS_STORE ------------------------------------------------------------------------------------------
def test_trustlens_store_wins_over_the_cache_dir(s3_env, bucket, tmp_path, monkeypatch):
    from core.store_remote import RemoteArtifactStore

    local = tmp_path / "local"
    monkeypatch.setenv("TRUSTLENS_CACHE_DIR", str(local))
    monkeypatch.setenv("TRUSTLENS_STORE", f"s3://{bucket}/chosen")
    store = default_store()
    assert isinstance(store, RemoteArtifactStore) and store.url == f"s3://{bucket}/chosen" and not store.readonly
    assert isinstance(ArtifactStore(), RemoteArtifactStore)
    assert default_store() is store
    assert store.local_dir == local and not local.exists()
    monkeypatch.setenv("TRUSTLENS_STORE_READONLY", "1")
    assert default_store() is not store and default_store().readonly
    monkeypatch.setenv("TRUSTLENS_MODEL_CACHE_DIR", str(tmp_path / "models"))
    assert model_store().readonly and not (tmp_path / "models").exists()
    monkeypatch.delenv("TRUSTLENS_STORE")
    monkeypatch.delenv("TRUSTLENS_STORE_READONLY")
    assert type(default_store()) is ArtifactStore and default_store().root == local and local.is_dir()


def test_file_url_and_generic_endpoint_variable(s3_env, bucket, tmp_path, monkeypatch):
    store = ArtifactStore(f"file://{tmp_path}/viaurl")
    assert type(store) is ArtifactStore and store.root == tmp_path / "viaurl" and store.root.is_dir()
    assert store_mod.is_remote_url("memory://x") and not store_mod.is_remote_url(str(tmp_path / "a:b"))
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_env)  # the generic variable serves as well
    remote = ArtifactStore(f"s3://{bucket}/generic")
    remote.save(make_key("generic"), 1)
    assert remote.load(make_key("generic")) == 1
    assert pickle.loads(remote.fs.cat_file(remote.path_for(make_key("generic"))))["magic"] == "trustlens-artifact"


# -- callers that wrote to the store directly, on a read-only server -----------------------------------------------

def test_read_only_server_places_points_with_a_map_it_could_not_save(tmp_path):
    """fitted_map used to re-read the fitted model from the store: on a read-only store nothing was saved."""
    from core.embeddings.projection import EmbeddingParams, embed_activations, fitted_map

    ro = ArtifactStore(tmp_path / "ro", readonly=True)
    x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    labels = np.arange(60) % 3
    params = EmbeddingParams(method="pca")
    where = {"layer": "fc", "model_fingerprint": "m" * 16, "data_fingerprint": "d" * 16}
    emb = embed_activations(x, labels, params, store=ro, **where)
    fitted = fitted_map(x, labels, params, store=ro, **where)
    np.testing.assert_allclose(fitted.coords, emb.coords)
    assert not (tmp_path / "ro").exists()


def test_read_only_server_trains_a_missing_ensemble_once(tmp_path, monkeypatch):
    """ensemble_members saved each member, then read them back: on a read-only store it trained them twice."""
    from core.uncertainty import members

    calls = []
    train = members._train_members

    def counting(spec, mspec, kind, group, *args, **kwargs):
        calls.append(list(group))
        return train(spec, mspec, kind, group, *args, **kwargs)

    monkeypatch.setattr(members, "_train_members", counting)
    monkeypatch.setattr(members, "_memo", {})
    ro = ArtifactStore(tmp_path / "ro", readonly=True)
    got = members.ensemble_members("breast-cancer", "logreg", kind="bootstrap", k=2, store=ro)
    assert len(got) == 2 and sorted(i for group in calls for i in group) == [0, 1]
    assert not (tmp_path / "ro").exists()
