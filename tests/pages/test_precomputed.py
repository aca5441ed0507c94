"""The pages read what ``python -m core precompute`` published (components/precomputed.py, core/precompute/lookup.py).

Each test opens a page on a store of its own, once before and once after ``core.cli.main(["precompute", ...])``
filled it: the numbers on the page are the same, the page says they were precomputed, and the compute function
is not called for what the precompute holds (counted through monkeypatch).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from components import cached
from core.cli import main as cli
from core.precompute import lookup
from core.store import ENV_VAR, MODEL_CACHE_ENV_VAR, READONLY_ENV_VAR, STORE_ENV_VAR
from tests.conftest import require_dataset
from tests.pages.helpers import open_app
from tests.pages.test_images import array, grid

CAPTION = "precomputed by `python -m core precompute`"


@pytest.fixture
def own_store(tmp_path, monkeypatch):
    """A store folder of this test's own; trained models stay where the session keeps them."""
    store = tmp_path / "store"
    monkeypatch.setenv(MODEL_CACHE_ENV_VAR, os.environ.get(MODEL_CACHE_ENV_VAR) or os.environ[ENV_VAR])
    monkeypatch.setenv(STORE_ENV_VAR, str(store))
    monkeypatch.delenv(READONLY_ENV_VAR, raising=False)
    lookup.clear_cache()
    yield store
    lookup.clear_cache()


def counting(monkeypatch, name: str) -> list:
    """Record each call of ``components.cached.<name>`` (the page's compute path)."""
    calls: list = []
    original = getattr(cached, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(cached, name, wrapper)
    return calls


def captions(at) -> list[str]:
    return [c.value for c in at.caption if CAPTION in c.value]


def grid_values(at) -> list[np.ndarray]:
    return [array(trace["z"]) for trace in grid(at)["data"] if trace.get("type") == "heatmap" and "z" in trace]


def test_image_page_reads_the_precompute_and_shows_the_same_maps(own_store, monkeypatch):
    require_dataset("digits")
    methods = ["gradient", "integrated_gradients"]
    calls = counting(monkeypatch, "image_attributions")
    before = open_app("pages/images.py", page_state={"img_methods": methods}, errors=True)
    assert calls, "without a precompute the page computes its maps"
    assert not captions(before)
    maps_before = grid_values(before)
    table_before = before.dataframe[0].value

    assert cli(["precompute", "digits", "--ops", "attributions", "--method", *methods, "--store", str(own_store),
                "--quiet", "--json"]) == 0
    lookup.clear_cache()
    calls.clear()
    after = open_app("pages/images.py", page_state={"img_methods": methods}, errors=True)
    assert calls == [], "the page computed maps the precompute holds"
    (line,) = captions(after)
    assert "Gradient, Integrated Gradients" in line and "engine local" in line
    maps_after = grid_values(after)
    assert len(maps_after) == len(maps_before) >= 4 * 3  # 4 images x (original + 2 methods), overlays
    for a, b in zip(maps_before, maps_after):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)  # float32 sums in other batch sizes
    # Integrated Gradients' completeness table comes from the precompute's extras
    np.testing.assert_allclose(after.dataframe[0].value.select_dtypes("number").to_numpy(),
                               table_before.select_dtypes("number").to_numpy(), rtol=1e-4, atol=1e-6)

    # a method the precompute does not hold is computed, alone; the others still read
    calls.clear()
    mixed = open_app("pages/images.py", page_state={"img_methods": ["gradient", "guided_backprop"]}, errors=True)
    assert [[m for m, _ in c[5]] for c in calls] == [["guided_backprop"]]
    assert "Gradient:" in captions(mixed)[0]

    # another class than the predicted one is not what the precompute explained: computed
    calls.clear()
    other = open_app("pages/images.py", page_state={"img_methods": ["gradient"], "img_target": "another class"},
                     errors=True)
    assert calls and not captions(other)


def test_shapley_page_reads_the_precomputed_shap_of_the_test_rows(own_store, monkeypatch):
    require_dataset("breast-cancer")
    calls = counting(monkeypatch, "shap_explanation")
    state = {"tl_scenario": "breast-cancer"}
    before = open_app("pages/shapley.py", state=state, errors=True)
    assert calls and not captions(before)
    assert cli(["precompute", "breast-cancer", "--ops", "shap", "--store", str(own_store), "--quiet", "--json"]) == 0
    lookup.clear_cache()
    calls.clear()
    after = open_app("pages/shapley.py", state=state, errors=True)
    assert calls == [], "the page computed SHAP values the precompute holds"
    assert len(captions(after)) == 1

    def numbers(at):
        metrics = {m.label: m.value for m in at.metric if m.label in ("Algorithm", "Mean base value")}
        charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
        bars = [np.asarray(t.get("x"), dtype=object) for t in charts["shap_waterfall"]["data"]]
        return metrics, bars

    m_before, bars_before = numbers(before)
    m_after, bars_after = numbers(after)
    assert m_after == m_before
    assert len(bars_after) == len(bars_before)
    for a, b in zip(bars_before, bars_after):
        if a.dtype.kind in "fi" or all(isinstance(v, (int, float)) for v in a):
            np.testing.assert_allclose(np.asarray(b, dtype=float), np.asarray(a, dtype=float), rtol=1e-9, atol=1e-12)
        else:
            assert list(a) == list(b)


def test_lookup_reads_one_sample_with_the_clis_key(tmp_path):
    """core.precompute.lookup finds a CLI precompute by the key of the params as resolved, one sample at a time."""
    require_dataset("digits")
    from core.precompute.plan import SourceSpec, open_context

    store = str(tmp_path / "store")
    context = open_context(SourceSpec(scenario="digits"))
    adapter, test = context.adapter, context.bundle
    params = lookup.task_params("predictions", adapter, test, {})
    assert lookup.lookup(store, adapter.fingerprint, test.fingerprint, "predictions", params, 3) is None
    assert cli(["precompute", "digits", "--ops", "predictions", "--store", store, "--quiet", "--json"]) == 0
    assert lookup.lookup(store, adapter.fingerprint, test.fingerprint, "predictions", params, 3) is None  # cached miss
    lookup.clear_cache()
    hit = lookup.lookup(store, adapter.fingerprint, test.fingerprint, "predictions", params, 3)
    np.testing.assert_allclose(hit.columns["proba"], adapter.predict_proba(test.x[3:4])[0], rtol=1e-4, atol=1e-9)
    assert hit.engine == "local" and len(hit.date) == 10
    assert lookup.lookup(store, adapter.fingerprint, test.fingerprint, "predictions", params, len(test)) is None
    assert lookup.lookup(store, adapter.fingerprint, test[:10].fingerprint, "predictions", params, 3) is None
    # a shard changed after publication: not read, and forgotten
    lookup.clear_cache()
    shard = next((tmp_path / "store" / "precomputed").glob("*/shard-*.npz"))
    shard.write_bytes(shard.read_bytes()[:-8] + b"\0" * 8)
    assert lookup.lookup(store, adapter.fingerprint, test.fingerprint, "predictions", params, 3) is None
    lookup.clear_cache()


def counting_text(monkeypatch) -> list:
    """Record each (method, params) the text page computes through ``explain_text``."""
    from core.text import text_methods

    calls: list = []
    original = text_methods.explain_text

    def wrapper(adapter, text, method="lime", params=None, *args, **kwargs):
        calls.append((method, params, adapter.fingerprint))
        return original(adapter, text, method, params, *args, **kwargs)

    monkeypatch.setattr(text_methods, "explain_text", wrapper)
    return calls


def text_numbers(at, keys: tuple[str, ...]) -> tuple:
    charts = {c.key: json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart")}
    metrics = {m.label: m.value for m in at.metric}
    return metrics, [charts[k] for k in keys], [h.proto.body for h in at.get("html")]


TEXT_STATE = {"tl_scenario": "newsgroups", "tl_model": "logreg", "lime_samples": 500, "lime_features": 5}


def test_text_page_reads_precomputed_leave_one_word_out(own_store, monkeypatch):
    """The fastest text method on the fastest model: the whole test split (717 posts) in about 15 s."""
    require_dataset("newsgroups")
    page = {"text_methods": ["occlusion"]}
    calls = counting_text(monkeypatch)
    before = open_app("pages/text.py", state=TEXT_STATE, page_state=page, errors=True, timeout=300)
    assert ("occlusion", ) == tuple({c[0] for c in calls} & {"occlusion"}) and not captions(before)
    assert cli(["precompute", "newsgroups", "--model", "logreg", "--ops", "attributions", "--method", "occlusion",
                "--store", str(own_store), "--quiet", "--json"]) == 0
    lookup.clear_cache()
    calls.clear()
    after = open_app("pages/text.py", state=TEXT_STATE, page_state=page, errors=True, timeout=300)
    assert [c for c in calls if c[0] == "occlusion"] == [], "the page computed what the precompute holds"
    (line,) = captions(after)
    assert line.startswith(":material/bolt: Leave one word out: precomputed") and "engine local" in line
    keys = ("method_occlusion_bars", "deletion_curves")
    assert text_numbers(after, keys) == text_numbers(before, keys)


@pytest.mark.slow  # LIME on the 717 test posts: about 35 s with 500 samples and 5 words
def test_text_page_reads_precomputed_lime(own_store, monkeypatch):
    require_dataset("newsgroups")
    page = {"text_methods": []}
    calls = counting_text(monkeypatch)
    before = open_app("pages/text.py", state=TEXT_STATE, page_state=page, errors=True, timeout=300)
    assert not captions(before)
    assert cli(["precompute", "newsgroups", "--model", "logreg", "--ops", "lime", "--lime-samples", "500",
                "--lime-features", "5", "--store", str(own_store), "--quiet", "--json"]) == 0
    lookup.clear_cache()
    calls.clear()
    after = open_app("pages/text.py", state=TEXT_STATE, page_state=page, errors=True, timeout=300)
    from core import scenarios

    main_model = scenarios.load_model("newsgroups", "logreg").adapter.fingerprint
    lime = {fp for m, p, fp in calls if m == "lime" and p.feature_selection != "none"}  # not the deletion curves'
    assert lime and main_model not in lime, "the page computed the LIME the precompute holds"  # the compared model's
    (line,) = captions(after)
    assert line.startswith(":material/bolt: LIME: precomputed")
    keys = ("lime_main_bars", "text_proba", "lime_main_bars")
    m_before, charts_before, html_before = text_numbers(before, keys)
    m_after, charts_after, html_after = text_numbers(after, keys)
    assert m_after == m_before and {"Local fit (weighted R²)", "Intercept"} <= set(m_after)
    assert charts_after == charts_before and html_after == html_before
