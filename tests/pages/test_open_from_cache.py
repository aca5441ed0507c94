"""After ``warm --all``, every warmed page opens from the disk cache: nothing is trained or computed.

The warm-up runs for digits (embedded, so always available) into the session's cache folder
(a temporary one unless TRUSTLENS_CACHE_DIR is set, see tests/conftest.py). Then the process
forgets everything it holds in memory (loaded models, Streamlit's caches), as a fresh server
would, training is patched to raise, and each page is opened in AppTest, both in its default view
and on its first curated example as presentation mode shows it; the ArtifactStore's miss counter
must not move.
"""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core import scenarios

from core.lecture import curated

from core.lecture import warmup
from core.store import default_store
from tests.pages.helpers import open_app, sidebar_state

TIMEOUT = 600  # a cache miss would compute inside the run; the assertion below reports it
pytestmark = pytest.mark.slow  # warm --all digits first: 248 s cold (every page's results, maps, ensembles)


@pytest.fixture(scope="module")
def warmed():
    items = warmup.warm_scenario("digits")
    assert all(i.status != "failed" for i in items), [i for i in items if i.status == "failed"]
    return items


@pytest.fixture
def fresh_process(monkeypatch, warmed):
    """Drop in-memory state and make training impossible, as in a fresh server on a warm disk cache."""
    scenarios.forget_loaded_models()
    from core.uncertainty.members import forget_members

    forget_members()
    st.cache_data.clear()
    st.cache_resource.clear()

    def no_training(*args, **kwargs):
        raise AssertionError("a page trained a model after warm --all")

    monkeypatch.setattr(scenarios, "_train", no_training)
    import core.embeddings.warm as umap_warm

    monkeypatch.setattr(umap_warm, "warm_in_background", lambda: None)  # compiling UMAP is not a cache miss
    return default_store()


def open_page(page: str, **state) -> AppTest:
    return open_app(f"pages/{page}.py", state=sidebar_state("digits"), page_state=state, timeout=TIMEOUT, errors=True)


def first(page: str) -> curated.Example:
    return curated.examples("digits", page)[0]


# (page, session state that shows its first curated example, as components/present.py sets it)
CURATED_STATE = {
    "images": lambda e: {"img_source": "Test images", "img_classes": [], "img_correctness": "all", "img_sort": "index",
                         "img_picks": [e.index]},
    "trust": lambda e: {"trust_picks": [e.index]},
    "uncertainty": lambda e: {"unc_pick": ("clean", e.index)},
    "embeddings": lambda e: {"emb_split": "test"},
    "calibration": lambda e: {"cal_models": [e.model]},
}


@pytest.mark.parametrize("page", ["home", "calibration", "images", "trust", "shapley", "uncertainty", "embeddings"])
def test_default_view_opens_from_cache(fresh_process, page):
    store = fresh_process
    before = store.misses
    open_page(page)
    assert store.misses == before, f"{page} computed {store.misses - before} result(s) missing from the warm cache"


@pytest.mark.parametrize("page", sorted(CURATED_STATE))
def test_first_curated_example_opens_from_cache(fresh_process, page):
    store = fresh_process
    example = first(page)
    before = store.misses
    open_page(page, **CURATED_STATE[page](example))
    assert store.misses == before, f"{page} on {example.title!r} computed {store.misses - before} result(s)"


def test_warm_again_finds_everything_cached(warmed):
    again = warmup.warm_scenario("digits")
    assert [i.item for i in again] == [i.item for i in warmed]
    assert all(i.status == "cached" and i.misses == 0 for i in again), [(i.item, i.misses) for i in again]


def test_the_miss_counter_sees_a_page_computing(fresh_process):
    # The checks above can fail: images the warm-up never explained (a random trio, new on every run) are computed.
    import random

    store = fresh_process
    picks = random.Random().sample(range(450), 3)  # digits has 450 test images; C(450, 3) ~ 15 million trios
    before = store.misses
    open_page("images", img_source="Test images", img_classes=[], img_correctness="all", img_sort="index",
              img_picks=picks, img_methods=["gradient"])
    assert store.misses > before
