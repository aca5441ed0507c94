"""ArtifactStore and cache keys (core/store.py, core/fingerprint.py)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core import store as store_mod
from core.errors import ConfigurationError
from core.fingerprint import canonical_json, hash_array, hash_json, hash_texts
from core.store import ArtifactStore, CorruptEntryWarning, cache_key, default_store
from tests.conftest import ROOT

BASE = dict(op="explain", model_fingerprint="m" * 64, data_fingerprint="d" * 64,
            params={"method": "occlusion", "window": 4, "stride": 2, "baseline": 0.0, "targets": [1, 2]})


def key_of(**overrides):
    kw = {**BASE, **overrides}
    return cache_key(**kw)


def tmp_files(root: Path) -> list[Path]:
    """Leftovers of a write: neither an entry nor the (empty, kept) lock file of a computed key."""
    return [p for p in root.rglob("*") if p.is_file() and p.suffix not in (".pkl", ".lock")]


# -- cache_key -------------------------------------------------------------------------------
def test_key_is_sha256_hex_and_stable_across_calls():
    k1, k2 = key_of(), key_of()
    assert k1 == k2
    assert len(k1) == 64 and all(c in "0123456789abcdef" for c in k1)


@pytest.mark.parametrize(
    "override",
    [
        {"op": "explain2"},
        {"model_fingerprint": "n" * 64},
        {"model_fingerprint": None},
        {"data_fingerprint": "e" * 64},
        {"data_fingerprint": None},
        {"libraries": ("numpy",)},
    ],
    ids=["op", "model", "model-none", "data", "data-none", "libraries"],
)
def test_key_sensitive_to_each_part(override):
    assert key_of(**override) != key_of()


@pytest.mark.parametrize("param", sorted(BASE["params"]))
def test_key_sensitive_to_each_param(param):
    params = dict(BASE["params"])
    value = params[param]
    if isinstance(value, str):
        params[param] = value + "x"
    elif isinstance(value, list):
        params[param] = value + [3]
    else:
        params[param] = value + 1
    assert key_of(params=params) != key_of()
    # dropping the param also changes the key
    del params[param]
    assert key_of(params=params) != key_of()


def test_key_sensitive_to_int_vs_float_and_nested_values():
    assert key_of(params={"a": 1}) != key_of(params={"a": 1.5})
    assert key_of(params={"a": {"b": [1, 2]}}) != key_of(params={"a": {"b": [2, 1]}})
    assert key_of(params={"a": np.arange(3)}) != key_of(params={"a": np.arange(4)})


def test_key_sensitive_to_library_versions(monkeypatch):
    before = key_of()
    real = store_mod._version
    monkeypatch.setattr(store_mod, "_version", lambda dist: "999.0" if dist == "torch" else real(dist))
    assert store_mod.library_versions()["torch"] == "999.0"
    after_torch = key_of()
    assert after_torch != before
    monkeypatch.setattr(store_mod, "_version", lambda dist: "999.0" if dist == "numpy" else real(dist))
    assert key_of() not in (before, after_torch)
    monkeypatch.undo()
    assert key_of() == before


def test_key_sensitive_to_library_versions_via_library_versions(monkeypatch):
    before = key_of()
    real = store_mod.library_versions
    monkeypatch.setattr(store_mod, "library_versions", lambda libs=store_mod.DEFAULT_LIBRARIES: {**real(libs), "scikit-learn": "0.0"})
    assert key_of() != before


def test_library_versions_reads_installed_versions():
    import numpy
    import sklearn

    versions = store_mod.library_versions(("scikit-learn", "numpy", "no-such-dist-trustlens"))
    assert list(versions) == sorted(versions)
    assert versions["numpy"] == numpy.__version__
    assert versions["scikit-learn"] == sklearn.__version__
    assert versions["no-such-dist-trustlens"] == "absent"


def test_canonical_json_ignores_dict_order_and_numpy_types():
    a = {"b": 1, "a": {"y": [1, 2], "x": np.float64(0.5)}, "c": np.int64(3)}
    b = {"c": 3, "a": {"x": 0.5, "y": [1, 2]}, "b": 1}
    assert list(a) != list(b)
    assert canonical_json(a) == canonical_json(b)
    assert canonical_json(a) == '{"a":{"x":0.5,"y":[1,2]},"b":1,"c":3}'
    assert key_of(params=a) == key_of(params=b)


def test_canonical_json_rejects_unhashable_objects():
    with pytest.raises(TypeError, match="object"):
        canonical_json({"f": object()})


def test_hash_texts_is_length_prefixed_and_hash_array_sees_dtype_and_shape():
    assert hash_texts(["ab", "c"]) != hash_texts(["a", "bc"])
    x = np.arange(6, dtype=np.int32)
    assert hash_array(x) != hash_array(x.reshape(2, 3))
    assert hash_array(x) != hash_array(x.astype(np.int64))
    assert hash_array(x) == hash_array(np.arange(6, dtype=np.int32))
    # non-contiguous views hash by content
    m = np.arange(12.0).reshape(3, 4)
    assert hash_array(m[:, ::2]) == hash_array(np.ascontiguousarray(m[:, ::2]))


@pytest.mark.slow  # 2.5 s: a fresh process
def test_key_stable_across_processes():
    """Another interpreter (with another str-hash seed) computes the same keys and fingerprints."""
    params = {"z": 1, "a": [1.5, None, True], "s": {"gamma", "alpha", "beta"}, "n": {"q": "text", "p": 2}}
    code = (
        "import json, sys\n"
        "from core.store import cache_key\n"
        "from core.fingerprint import hash_json\n"
        "from core import datasets\n"
        "p = {'n': {'p': 2, 'q': 'text'}, 's': {'beta', 'alpha', 'gamma'}, 'a': [1.5, None, True], 'z': 1}\n"
        "print(json.dumps([cache_key(op='explain', model_fingerprint='m', data_fingerprint='d', params=p),\n"
        "                  hash_json(p), datasets.load_digits()['train'].fingerprint]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    from core import datasets

    ours = [cache_key(op="explain", model_fingerprint="m", data_fingerprint="d", params=params), hash_json(params),
            datasets.load_digits()["train"].fingerprint]
    assert theirs == ours


# hypothesis: JSON-like params with string keys; no NaN/inf (covered by their own tests below)
# and lists only (tuples canonicalise to lists by design).
scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
params_strategy = st.dictionaries(st.text(max_size=8), json_values, max_size=6)
HYP = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow  # 2-4 s: hypothesis examples
@HYP
@given(params_strategy, st.randoms(use_true_random=False))
def test_hyp_key_invariant_to_dict_order(params, rnd):
    def shuffled(value):
        if isinstance(value, dict):
            items = list(value.items())
            rnd.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    assert cache_key(op="x", params=shuffled(params)) == cache_key(op="x", params=params)


@pytest.mark.slow  # 4 s: hypothesis examples
@HYP
@given(params_strategy, params_strategy)
def test_hyp_different_params_give_different_keys(p1, p2):
    assume(p1 != p2)
    # Python equality treats 1 == 1.0 == True and 0.0 == -0.0 as equal, so p1 != p2 is the
    # conservative side: whenever the values really differ the keys must too.
    assert cache_key(op="x", params=p1) != cache_key(op="x", params=p2)


@HYP
@given(params_strategy)
def test_hyp_key_equals_hash_of_documented_document(params):
    # The key is sha256 of the canonical JSON of the documented parts; recompute it independently.
    import hashlib

    doc = {"schema": store_mod.SCHEMA_VERSION, "op": "x", "model": "m", "data": None, "params": params,
           "libraries": store_mod.library_versions()}
    text = canonical_json(doc)
    assert json.loads(text)["params"] == json.loads(canonical_json(params))
    assert cache_key(op="x", model_fingerprint="m", params=params) == hashlib.sha256(text.encode()).hexdigest()


def test_nan_float_and_nan_string_get_different_keys():
    assert cache_key(op="x", params={"v": float("nan")}) != cache_key(op="x", params={"v": "NaN"})


def test_int_and_str_dict_keys_get_different_keys():
    assert cache_key(op="x", params={1: "a"}) != cache_key(op="x", params={"1": "a"})


# -- ArtifactStore ---------------------------------------------------------------------------
def make_key(tag: str) -> str:
    return cache_key(op="test", params={"tag": tag})


class Counter:
    def __init__(self, value="computed"):
        self.calls = 0
        self.value = value
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
        return self.value


def test_get_or_compute_computes_once_then_hits(tmp_store):
    key = make_key("a")
    compute = Counter({"arr": np.arange(5)})
    first = tmp_store.get_or_compute(key, compute)
    second = tmp_store.get_or_compute(key, compute)
    assert compute.calls == 1
    np.testing.assert_array_equal(first["arr"], second["arr"])
    assert tmp_store.stats() == store_mod.CacheStats(hits=1, misses=1, corrupt=0)
    assert tmp_store.contains(key)
    assert tmp_store.entries() == [tmp_store.path_for(key)]


def test_store_survives_restart(tmp_path):
    key = make_key("restart")
    ArtifactStore(tmp_path).get_or_compute(key, Counter([1, 2, 3]))
    fresh = ArtifactStore(tmp_path)  # a new process would build a new store on the same folder
    compute = Counter("other")
    assert fresh.get_or_compute(key, compute) == [1, 2, 3]
    assert compute.calls == 0


def test_different_keys_are_different_entries(tmp_store):
    a = tmp_store.get_or_compute(make_key("a"), Counter("A"))
    b = tmp_store.get_or_compute(make_key("b"), Counter("B"))
    assert (a, b) == ("A", "B")
    assert tmp_store.get_or_compute(make_key("a"), Counter("X")) == "A"
    assert len(tmp_store.entries()) == 2


def test_cached_builds_key_from_parts(tmp_store):
    compute = Counter(42)
    kw = dict(op="o", model_fingerprint="m", data_fingerprint="d", params={"p": 1})
    assert tmp_store.cached(compute, **kw) == 42
    assert tmp_store.cached(compute, **kw) == 42
    assert compute.calls == 1
    assert tmp_store.contains(cache_key(**kw))
    assert tmp_store.cached(compute, **{**kw, "params": {"p": 2}}) == 42
    assert compute.calls == 2


def _assert_recomputed_with_warning(store, key, expected_value="fresh"):
    compute = Counter(expected_value)
    with pytest.warns(CorruptEntryWarning, match=key[:12]):
        value = store.get_or_compute(key, compute)
    assert value == expected_value
    assert compute.calls == 1
    assert store.stats().corrupt == 1
    # the entry was rewritten and now hits without warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.get_or_compute(key, Counter("never")) == expected_value


@pytest.mark.parametrize(
    "content",
    [b"\x00garbage\xff not a pickle", b"", pickle.dumps(["a", "list"]), pickle.dumps({"magic": "nope", "value": 1})],
    ids=["garbage", "empty", "other-object", "wrong-magic"],
)
def test_corrupt_entry_is_recomputed_with_warning(tmp_store, content):
    key = make_key("corrupt")
    tmp_store.get_or_compute(key, Counter("stale"))
    tmp_store.path_for(key).write_bytes(content)
    _assert_recomputed_with_warning(tmp_store, key)


def test_truncated_entry_is_recomputed_with_warning(tmp_store):
    key = make_key("truncated")
    tmp_store.get_or_compute(key, Counter(np.arange(1000)))
    path = tmp_store.path_for(key)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _assert_recomputed_with_warning(tmp_store, key)


def test_entry_holding_another_keys_payload_is_recomputed(tmp_store):
    key_a, key_b = make_key("a"), make_key("b")
    tmp_store.save(key_b, "value of B")
    path_a = tmp_store.path_for(key_a)
    path_a.parent.mkdir(parents=True, exist_ok=True)
    path_a.write_bytes(tmp_store.path_for(key_b).read_bytes())  # a valid pickle, for the wrong key
    with pytest.raises(ValueError):
        tmp_store.load(key_a)
    _assert_recomputed_with_warning(tmp_store, key_a, "value of A")
    assert tmp_store.load(key_b) == "value of B"


def test_load_missing_raises_keyerror(tmp_store):
    with pytest.raises(KeyError):
        tmp_store.load(make_key("absent"))


def test_path_for_rejects_non_hex_keys(tmp_store):
    for bad in ("short", "../../etc/passwd", "G" * 64):
        with pytest.raises(ValueError):
            tmp_store.path_for(bad)


def test_atomic_writes_leave_no_temp_files(tmp_store):
    for i in range(5):
        tmp_store.get_or_compute(make_key(f"k{i}"), Counter(np.ones(100) * i))
    tmp_store.save(make_key("k0"), "overwritten")
    assert tmp_files(tmp_store.root) == []
    assert len(tmp_store.entries()) == 5
    assert tmp_store.load(make_key("k0")) == "overwritten"


def test_failed_save_leaves_no_temp_file_and_no_entry(tmp_store):
    key = make_key("unpicklable")
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        tmp_store.save(key, lambda: None)  # lambdas cannot be pickled
    assert tmp_files(tmp_store.root) == []
    assert not tmp_store.contains(key)


def test_failed_replace_keeps_old_entry_and_returns_computed_value(tmp_store, monkeypatch):
    key = make_key("replace-fails")
    tmp_store.save(key, "old")
    other = make_key("other")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_mod.os, "replace", broken_replace)
    with pytest.raises(OSError):
        tmp_store.save(key, "new")
    assert tmp_store.load(key) == "old"  # never half-written
    # get_or_compute must still return what it computed when the write fails
    assert tmp_store.get_or_compute(other, Counter("computed")) == "computed"
    assert tmp_files(tmp_store.root) == []
    assert not tmp_store.contains(other)


def test_compute_exception_propagates_and_leaves_nothing(tmp_store):
    key = make_key("boom")

    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        tmp_store.get_or_compute(key, boom)
    assert not tmp_store.contains(key)
    assert tmp_store.get_or_compute(key, Counter("ok")) == "ok"


def _callers_of(store, key) -> int:
    """Threads holding or waiting for ``key``'s lock (the store's own count)."""
    with store._locks_guard:
        entry = store._locks.get(key)
        return 0 if entry is None else entry[1]


def test_concurrent_get_or_compute_computes_once(tmp_store):
    key = make_key("concurrent")
    release = threading.Event()
    computing = threading.Event()

    def compute():
        with compute._lock:
            compute.calls += 1
        computing.set()
        assert release.wait(30), "the test never released the computation"
        return {"v": 7}

    compute.calls, compute._lock = 0, threading.Lock()
    results, errors = [], []

    def worker():
        try:
            results.append(tmp_store.get_or_compute(key, compute))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    # The order is forced, not timed: one thread computes; the computation goes on only once the seven others
    # are waiting on the key's lock. Without the lock they would all compute (calls == 8) and never wait.
    assert computing.wait(30)
    deadline = time.monotonic() + 30
    while _callers_of(tmp_store, key) < 8 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    waiting = _callers_of(tmp_store, key)
    release.set()
    for t in threads:
        t.join(30)
    assert waiting == 8, f"{waiting} callers held or waited for the key's lock while it was computed"
    assert not errors
    assert compute.calls == 1
    assert results == [{"v": 7}] * 8
    assert tmp_store.stats().misses == 1 and tmp_store.stats().hits == 7
    assert tmp_store._locks == {}  # the key's lock is forgotten once nobody holds or waits for it


@pytest.mark.skipif(store_mod.fcntl is None, reason="file locks need fcntl (POSIX)")
def test_two_stores_on_one_folder_compute_a_key_once(tmp_path, monkeypatch):
    """Two stores on one folder stand for two processes (two app servers, two test workers): their thread locks
    are separate, so only the file lock beside the entry keeps the second from computing the key again."""
    first, second = ArtifactStore(tmp_path), ArtifactStore(tmp_path)
    key = make_key("shared folder")
    computing, release, second_waits = threading.Event(), threading.Event(), threading.Event()
    real_flock = store_mod.fcntl.flock

    class Fcntl:  # the real module, telling the test when the second store asks for the lock
        LOCK_EX = store_mod.fcntl.LOCK_EX

        @staticmethod
        def flock(fd, operation):
            if threading.current_thread().name == "second":
                second_waits.set()
            return real_flock(fd, operation)

    monkeypatch.setattr(store_mod, "fcntl", Fcntl)
    calls = []

    def compute(name):
        def run():
            calls.append(name)
            computing.set()
            assert release.wait(30), "the test never released the computation"
            return name
        return run

    results = {}
    one = threading.Thread(target=lambda: results.update(first=first.get_or_compute(key, compute("first"))))
    one.start()
    assert computing.wait(30)
    two = threading.Thread(name="second",
                           target=lambda: results.update(second=second.get_or_compute(key, compute("second"))))
    two.start()
    # Ordered by events, not sleeps: the second store missed the entry and is at the file lock before the first
    # finishes. Without the lock it would compute as well (calls == ["first", "second"]).
    assert second_waits.wait(30), "the second store never asked for the file lock"
    release.set()
    one.join(30)
    two.join(30)
    assert calls == ["first"]
    assert results == {"first": "first", "second": "first"}
    assert (first.stats().misses, second.stats().misses, second.stats().hits) == (1, 0, 1)
    assert len(first.entries()) == 1  # the lock file is not an entry


def test_per_key_locks_do_not_accumulate(tmp_store):
    """A long-running server asks for a new key with every parameter a user tries: the locks must not pile up."""
    for i in range(200):
        tmp_store.get_or_compute(make_key(f"many-{i}"), lambda i=i: i)
    with pytest.raises(RuntimeError):
        tmp_store.get_or_compute(make_key("fails"), _raise_runtime_error)
    assert tmp_store._locks == {}


def _raise_runtime_error():
    raise RuntimeError("compute failed")


def test_different_keys_compute_in_parallel(tmp_store):
    """The per-key lock must not serialise unrelated keys: B is asked for while A is computing (forced by an
    event), and B's compute is what unblocks A's."""
    a_computing, b_started = threading.Event(), threading.Event()

    def compute_a():
        a_computing.set()
        assert b_started.wait(10), "compute for key B never ran while A was computing"
        return "A"

    def compute_b():
        b_started.set()
        return "B"

    out, errors = {}, []

    def ask_a():
        try:
            out["a"] = tmp_store.get_or_compute(make_key("pa"), compute_a)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ta = threading.Thread(target=ask_a, daemon=True)
    ta.start()
    assert a_computing.wait(15), "A's compute never started"
    # a lock shared by every key would block here until A gave up (its 10 s wait), and A would fail
    out["b"] = tmp_store.get_or_compute(make_key("pb"), compute_b)
    ta.join(15)
    assert not errors, errors
    assert out == {"a": "A", "b": "B"}


def test_clear_removes_every_entry(tmp_store):
    for i in range(3):
        tmp_store.save(make_key(f"c{i}"), i)
    assert tmp_store.clear() == 3
    assert tmp_store.entries() == []


def test_unwritable_root_raises_configuration_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError, match="TRUSTLENS_CACHE_DIR"):
        ArtifactStore(blocker / "cache")


def test_default_store_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUSTLENS_CACHE_DIR", str(tmp_path / "one"))
    one = default_store()
    assert one.root == tmp_path / "one" and one.root.is_dir()
    assert default_store() is one
    monkeypatch.setenv("TRUSTLENS_CACHE_DIR", str(tmp_path / "two"))
    assert default_store().root == tmp_path / "two"


def test_malformed_key_is_not_reported_as_corrupt_entry(tmp_store):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptEntryWarning)
        with pytest.raises(ValueError, match="sha256 hex"):
            tmp_store.get_or_compute("not-a-key", Counter())
    assert tmp_store.stats().corrupt == 0
