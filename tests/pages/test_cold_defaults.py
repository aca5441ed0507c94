"""Cold defaults are fast (issue 19, item 4): every page's default view, with only the scenario's models trained.

For digits and breast-cancer the scenario's models are trained first (outside the timing; reused
from the session's cache folder, see tests/conftest.py). Each page is then opened in AppTest as a
fresh server would open it: an empty ArtifactStore except those models, Streamlit's caches and
core's in-process memos (models, members, datasets) forgotten. The page's run must end without an
exception or error, train nothing (no model, ensemble member, autoencoder or Bayesian network is
written to the store) and take under 20 s on the 2-core CI machines, the budget the issue sets
(timings are printed; bench/ holds the speed benchmarks proper).

UMAP's background compilation (the embeddings page starts it for later use; it is no part of any
default view) is switched off, so it cannot eat the cores during the next page's timing.
"""

from __future__ import annotations

import pickle
import shutil
import time

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core import scenarios
from core import jobs
from core.store import MODEL_CACHE_ENV_VAR, ArtifactStore, default_store, model_store
from tests.conftest import ROOT
from tests.pages.helpers import finish_jobs

LIMIT_S = 20.0  # the budget for a cold default view on 2 cores
TIMEOUT = 600  # AppTest's own limit: a slow view fails on LIMIT_S with its time, not on a timeout
pytestmark = pytest.mark.slow  # 19 page runs on fresh stores and emptied in-memory caches: 20 s cold
PAGES = ("home", "calibration", "images", "text", "trust", "shapley", "uncertainty", "embeddings", "upload")
SCENARIOS = ("digits", "breast-cancer")
TRAINING_OPS = {"train", "train_random_labels", "uncertainty_member", "uncertainty_autoencoder", "uncertainty_bayes"}
TIMES: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module")
def model_keys():
    """scenario -> store keys of its trained models (trained here once, or found in the session's cache)."""
    keys = {}
    for name in SCENARIOS:
        spec = scenarios.get_spec(name)
        keys[name] = [scenarios.load_model(name, model).key for model in spec.model_names]
    yield keys
    if TIMES:
        print("\ncold default view (s): " + "; ".join(f"{s} {p} {t:.1f}" for (s, p), t in sorted(TIMES.items())))


@pytest.fixture(autouse=True)
def no_umap_compilation(monkeypatch):
    import core.embeddings.warm as umap_warm

    monkeypatch.setattr(umap_warm, "warm_in_background", lambda: None)


def fresh_server(monkeypatch, folder, keys: list[str], source: ArtifactStore | None = None) -> ArtifactStore:
    """A new store at ``folder`` holding only the models ``keys`` (copied from ``source``, default: where the
    session keeps its trained models), and nothing in memory. TRUSTLENS_MODEL_CACHE_DIR is unset, so every
    model and training artifact the page needs is read from and written to the new store, where it is seen."""
    source = source or model_store()
    target = ArtifactStore(folder)
    for key in keys:
        target.path_for(key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source.path_for(key), target.path_for(key))
    monkeypatch.setenv("TRUSTLENS_CACHE_DIR", str(folder))
    monkeypatch.delenv(MODEL_CACHE_ENV_VAR, raising=False)
    scenarios.forget_loaded_models()
    scenarios._data_cache.clear()  # a fresh process loads its data too
    from core.uncertainty.members import forget_members

    forget_members()
    st.cache_data.clear()
    st.cache_resource.clear()
    return default_store()


def trained_ops(store: ArtifactStore, models: list[str]) -> list[str]:
    """Descriptions of the training artifacts in ``store`` other than the ``models`` it was given."""
    out = []
    for path in store.entries():
        if path.stem in models:
            continue
        with open(path, "rb") as fh:
            description = pickle.load(fh).get("description", {})
        if description.get("op") in TRAINING_OPS:
            out.append(str(description))
    return out


def open_cold(name: str, page: str, keys: list[str], monkeypatch, tmp_path) -> tuple[AppTest, float]:
    """The page's default view on a fresh server: (the AppTest, seconds of the page's run)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["tl_scenario"] = name
    models = model_store()
    store = fresh_server(monkeypatch, tmp_path / "first", keys, models)
    started = time.perf_counter()
    at.run()  # app.py opens on the home page
    seconds = time.perf_counter() - started
    if page != "home":
        store = fresh_server(monkeypatch, tmp_path / "page", keys, models)  # the home run's results do not count
        started = time.perf_counter()
        at.switch_page(f"pages/{page}.py").run()
        seconds = time.perf_counter() - started
    if jobs.runner().jobs(active_only=True):  # the page answered with a job's progress (the uncertainty report):
        finish_jobs(at)  # what it shows when the job is done, checked below; `seconds` is the time to the answer
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert not trained_ops(store, keys), f"{name}/{page} trained on its default view: {trained_ops(store, keys)}"
    return at, seconds


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("page", PAGES)
def test_cold_default_view_renders_fast(name, page, model_keys, monkeypatch, tmp_path):
    at, seconds = open_cold(name, page, model_keys[name], monkeypatch, tmp_path)
    TIMES[(name, page)] = seconds
    print(f"cold default view: {name} {page} {seconds:.1f} s")
    assert seconds < LIMIT_S, f"{name}/{page}: the cold default view took {seconds:.1f} s (budget {LIMIT_S:g} s)"
    if (name, page) == ("digits", "uncertainty"):
        # the default needs no training (MC dropout on the scenario's own CNN), and it is not degenerate: the
        # dropout passes disagree, so the epistemic score is positive for most inputs
        assert at.session_state["unc_source"] == "mc_dropout"
        published = at.session_state["uncertainty_scores"]
        assert published["source"] == "mc_dropout"
        mi = published["scores"]["mutual information (epistemic)"]
        assert np.mean(mi > 0) > 0.9 and mi.max() > 0.05, (np.mean(mi > 0), mi.max())
        # the deep ensemble is one click away, its time said before it starts
        button = at.button(key="unc_train_ensemble")
        assert button.label.startswith("Train the deep ensemble (about ")
        assert any("on this machine" in c.value and "steps at" in c.value for c in at.caption)


def test_first_use_training_says_how_long_before_it_starts(monkeypatch, tmp_path):
    """A model's first use (MNIST's CNN: about 70 s) runs as a background job whose first progress message is the
    estimate, measured before the training starts (here the breast-cancer MLP, which trains in seconds; the page
    is made to wait for the whole job, so its end is what the test sees). tests/pages/test_first_use.py checks the
    page's progress while such a job runs."""
    from components import cached
    from core import jobs
    from core.jobs import pool

    order = []
    estimate, train = scenarios.estimate_training, scenarios._train
    monkeypatch.setattr(scenarios, "estimate_training", lambda *a, **k: order.append("estimate") or estimate(*a, **k))
    monkeypatch.setattr(scenarios, "_train", lambda *a, **k: order.append("train") or train(*a, **k))
    monkeypatch.setattr(cached, "FIRST_USE_WAIT_S", TIMEOUT)
    monkeypatch.setattr(pool, "_runner", pool.JobRunner(records=tmp_path / "jobs"))
    fresh_server(monkeypatch, tmp_path / "empty", [])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["tl_scenario"] = "breast-cancer"
    at.session_state["tl_model"] = "mlp"
    at.run()
    assert not at.exception, at.exception
    assert order == ["estimate", "train"]
    [job] = jobs.runner().jobs()
    assert job.kind == "train_model" and job.status == "done", job
