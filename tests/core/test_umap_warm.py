"""The UMAP warm-up (a background thread in the server) draws from numpy's global generator only under core.rng's numpy lock."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from core import rng
from core.embeddings import warm


class _RecordingUMAP:
    calls: list[tuple[object, bool]] = []

    def __init__(self, random_state=None, **_: object) -> None:
        self.random_state = random_state

    def _record(self) -> None:
        if self.random_state is None:
            np.random.rand()  # umap-learn's unseeded path draws from numpy's global generator
        type(self).calls.append((self.random_state, rng.holds("numpy")))

    def fit(self, x):
        self._record()
        return self

    def transform(self, x):
        self._record()
        return x[:, :2]


@pytest.fixture
def fake_umap(monkeypatch):
    _RecordingUMAP.calls = []
    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=_RecordingUMAP))
    monkeypatch.setattr(warm, "_state", {"status": "cold", "seconds": None, "error": None})
    return _RecordingUMAP


def test_the_unseeded_warm_up_fit_holds_the_global_generator_lock(fake_umap):
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    warm.warm_umap(n_points=200)
    assert warm.warm_status()["status"] == "warm"
    unseeded = [owned for state, owned in fake_umap.calls if state is None]
    assert unseeded == [True, True]  # fit and transform, both under the lock
    assert np.random.rand() == expected  # and the generator's state was put back afterwards


def test_warmup_can_be_switched_off_by_the_environment(fake_umap, monkeypatch):
    monkeypatch.setenv(warm.WARMUP_ENV_VAR, "0")
    assert warm.warm_in_background() is None
    assert fake_umap.calls == [] and warm.warm_status()["status"] == "cold"
    monkeypatch.setenv(warm.WARMUP_ENV_VAR, "1")
    thread = warm.warm_in_background()
    thread.join(timeout=30)
    assert fake_umap.calls and warm.warm_status()["status"] == "warm"
