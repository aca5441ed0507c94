"""A built-in model's first use trains as a background job (issue 22): the page answers at once with the job's
progress instead of blocking on the training, and shows the model once the job has stored it.

The training is held on an event, so the test sees the page while the job is still running whatever the
machine's speed; then it lets the training go and the page, run again, shows the model.
"""

from __future__ import annotations

import threading

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from components import cached
from core import jobs, scenarios
from core.jobs import pool
from core.store import MODEL_CACHE_ENV_VAR
from tests.pages.helpers import APP, check, finish_jobs, open_app


@pytest.fixture
def empty_store(monkeypatch, tmp_path):
    """No trained model anywhere this process looks, nothing in memory, a job runner of its own."""
    monkeypatch.setenv("TRUSTLENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(MODEL_CACHE_ENV_VAR, raising=False)
    monkeypatch.setattr(pool, "_runner", pool.JobRunner(records=tmp_path / "jobs"))
    scenarios.forget_loaded_models()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    scenarios.forget_loaded_models()
    st.cache_data.clear()
    st.cache_resource.clear()


def test_first_use_shows_the_training_jobs_progress_then_the_model(empty_store, monkeypatch):
    gate, training = threading.Event(), threading.Event()
    train = scenarios.load_model

    def held(*args, **kwargs):  # the job's call (it reports progress) waits for the test; the page's does not
        if kwargs.get("progress") is not None:
            training.set()
            assert gate.wait(120), "the test never let the training go"
        return train(*args, **kwargs)

    monkeypatch.setattr(scenarios, "load_model", held)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"scenario": "breast-cancer", "model": "logreg"})
    at.run()
    check(at)
    [status] = jobs.runner().jobs(active_only=True)
    assert status.kind == "train_model" and status.id == jobs.job_id(
        "train_model", {"scenario": "breast-cancer", "model": "logreg", "variant": None})
    assert any("runs in the background" in i.value for i in at.info), [i.value for i in at.info]
    assert not scenarios.is_trained("breast-cancer", "logreg", None)  # the page did not train it itself
    # before the training starts, the job has timed a few steps: the page says how long it will take
    assert training.wait(60)
    at.run()
    [bar] = at.get("progress")
    assert "on this machine" in bar.proto.text and "about " in bar.proto.text, bar.proto.text

    gate.set()
    finish_jobs(at)
    check(at, errors=True)
    assert scenarios.is_trained("breast-cancer", "logreg", None)
    assert not any("runs in the background" in i.value for i in at.info)
    assert at.title and "Breast cancer" in at.title[0].value, [t.value for t in at.title]


def test_a_quick_training_is_waited_for_without_a_progress_box(empty_store):
    at = open_app(query={"scenario": "breast-cancer", "model": "logreg"})
    check(at, errors=True)
    assert scenarios.is_trained("breast-cancer", "logreg", None)
    assert not any("runs in the background" in i.value for i in at.info)
    assert cached.FIRST_USE_WAIT_S <= 2  # the bound: the page answers within 2 s
