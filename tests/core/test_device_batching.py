"""Device resolution (core/device.py) and batching with out-of-memory back-off (core/batching.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from core import batching, device
from core.batching import map_batches
from core.errors import ConfigurationError, ParameterError
from core.progress import Recorder


# -- device ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["cpu", "CPU", " cpu "])
def test_env_cpu_resolves_to_cpu(monkeypatch, value):
    monkeypatch.setenv("TRUSTLENS_DEVICE", value)
    assert device.resolve_device() == "cpu"


# explicit ids: a bare "gpu" id would become a keyword that tests/conftest.py's GPU skip matches
@pytest.mark.parametrize("value", ["tpu", "gpu", "cuda0x"], ids=lambda v: f"value-{v}")
def test_bogus_device_raises_configuration_error_naming_value(monkeypatch, value):
    monkeypatch.setenv("TRUSTLENS_DEVICE", value)
    with pytest.raises(ConfigurationError) as info:
        device.resolve_device()
    assert repr(value) in str(info.value)
    assert "TRUSTLENS_DEVICE" in str(info.value)
    assert info.value.hint and "cpu" in info.value.hint


@pytest.mark.parametrize("value", ["cuda", "cuda:1"])
def test_cuda_unavailable_raises_configuration_error(monkeypatch, value):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.setenv("TRUSTLENS_DEVICE", value)
    with pytest.raises(ConfigurationError, match="CUDA") as info:
        device.resolve_device()
    assert repr(value) in str(info.value)


def test_mps_unavailable_raises_configuration_error(monkeypatch):
    import torch

    if torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    monkeypatch.setenv("TRUSTLENS_DEVICE", "mps")
    with pytest.raises(ConfigurationError, match="MPS"):
        device.resolve_device()


def test_unset_env_picks_best_available(monkeypatch):
    import torch

    monkeypatch.delenv("TRUSTLENS_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else None
    got = device.resolve_device()
    assert got in {"cuda", "mps", "cpu"}
    if expected:
        assert got == expected
    # an empty value means "unset", not an error
    monkeypatch.setenv("TRUSTLENS_DEVICE", "")
    assert device.resolve_device() == got


def test_env_change_is_seen_without_restart(monkeypatch):
    monkeypatch.setenv("TRUSTLENS_DEVICE", "cpu")
    assert device.resolve_device() == "cpu"
    monkeypatch.setenv("TRUSTLENS_DEVICE", "bogus")
    with pytest.raises(ConfigurationError):
        device.resolve_device()


def test_describe_cpu_device():
    assert device.describe_device("cpu").startswith("cpu (")


# -- map_batches -----------------------------------------------------------------------------
def square_rows(chunk):
    return np.asarray(chunk, dtype=np.float64) ** 2


@pytest.mark.parametrize("batch_size", [1, 3, 7, 50, 64, 1000])
def test_map_batches_equals_unbatched(batch_size):
    x = np.arange(150, dtype=np.float64).reshape(50, 3)
    seen = []

    def fn(chunk):
        seen.append(len(chunk))
        return square_rows(chunk)

    out = map_batches(fn, x, batch_size)
    np.testing.assert_array_equal(out, square_rows(x))
    assert max(seen) <= batch_size and sum(seen) == 50


def test_map_batches_on_list_input():
    docs = [f"doc {i}" for i in range(10)]
    out = map_batches(lambda chunk: np.array([len(d) for d in chunk]), docs, 3)
    np.testing.assert_array_equal(out, [len(d) for d in docs])


def test_out_of_memory_halves_and_returns_full_result(caplog):
    x = np.arange(100, dtype=np.float64).reshape(50, 2)
    sizes = []

    def fn(chunk):
        sizes.append(len(chunk))
        if len(chunk) > 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return square_rows(chunk)

    with caplog.at_level(logging.WARNING, logger="core.batching"):
        out = map_batches(fn, x, 64, owner="test_owner")
    np.testing.assert_array_equal(out, square_rows(x))
    assert sizes[:5] == [50, 32, 16, 8, 4]  # 64 -> 32 -> 16 -> 8 -> 4
    assert max(sizes[4:]) <= 4
    assert "out of memory" in caplog.text and "test_owner" in caplog.text


@pytest.mark.parametrize("make_error", [
    lambda: MemoryError(),
    lambda: type("OutOfMemoryError", (RuntimeError,), {})("torch.cuda.OutOfMemoryError"),
    lambda: RuntimeError("MPS backend out of memory"),
])
def test_other_out_of_memory_errors_also_back_off(make_error):
    def fn(chunk):
        if len(chunk) > 2:
            raise make_error()
        return square_rows(chunk)

    x = np.arange(9.0)
    np.testing.assert_array_equal(map_batches(fn, x, 16), x**2)


def test_out_of_memory_at_batch_one_propagates():
    def fn(chunk):
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        map_batches(fn, np.arange(5.0), 4)


def test_other_errors_propagate_without_retry():
    calls = []

    def fn(chunk):
        calls.append(len(chunk))
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        map_batches(fn, np.arange(10.0), 8)
    assert calls == [8]


@pytest.mark.parametrize("bad", [0, -3])
def test_batch_size_below_one_raises_parameter_error(bad):
    with pytest.raises(ParameterError) as info:
        map_batches(square_rows, np.arange(4.0), bad)
    assert str(info.value) == (
        f"The 'batch_size' parameter of map_batches must be an int >= 1. Got {bad} instead."
    )


def test_batch_size_error_names_owner_and_rejects_non_ints():
    with pytest.raises(ParameterError, match=r"^The 'batch_size' parameter of predict_proba must be an int >= 1\. Got 0 instead\.$"):
        map_batches(square_rows, np.arange(4.0), 0, owner="predict_proba")
    for bad in (2.5, "8", True, None):
        with pytest.raises(ParameterError, match="must be an int >= 1"):
            map_batches(square_rows, np.arange(4.0), bad)  # type: ignore[arg-type]


def test_progress_is_reported_monotonically_to_one():
    rec = Recorder()
    map_batches(square_rows, np.arange(10.0), 3, progress=rec, message="squaring")
    fractions = [f for f, _ in rec.calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len(rec.calls) == 4 and rec.calls[-1][1] == "squaring: 10/10"


def test_out_of_memory_empties_device_cache(monkeypatch):
    called = []
    monkeypatch.setattr(batching, "_empty_device_cache", lambda: called.append(True))

    def fn(chunk):
        if len(chunk) > 1:
            raise RuntimeError("out of memory")
        return square_rows(chunk)

    map_batches(fn, np.arange(3.0), 4)
    assert called  # memory freed before each retry
