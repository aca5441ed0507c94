"""AppTest: the embeddings page over every precomputed point (components/precomputed_map.py).

The store (``TRUSTLENS_STORE``, a folder of this test) holds the layer's activations of the mapped rows, as
``python -m core precompute`` publishes them; the page then offers them, draws the density image under a
sampled overlay, and a box selection (given to the map's key as the event dict) lists every point inside it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import scenarios
from core.embeddings import combine_splits
from core.precompute.maps import find_activations, pca_map, publish_arrays, select_box
from core.store import ArtifactStore
from tests.pages.helpers import check, open_app, sidebar_state

PAGE = "pages/embeddings.py"


@pytest.fixture
def store(tmp_path, monkeypatch):
    url = str(tmp_path / "store")
    monkeypatch.setenv("TRUSTLENS_STORE", url)
    return url


def open_page(**state):
    return open_app(PAGE, state=sidebar_state("digits", "cnn"), page_state=state, timeout=300, errors=True,
                    title="Embeddings")


def figure(at, word: str) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(s for s in specs if word in s["layout"].get("title", {}).get("text", ""))


def box_event(x, y) -> dict:
    return {"selection": {"points": [], "point_indices": [], "box": [{"xref": "x", "yref": "y", "x": x, "y": y}],
                          "lasso": []}}


def test_without_a_precompute_the_page_is_unchanged(store):
    at = open_page()
    assert not [t for t in at.toggle if t.key == "emb_precomputed"]
    assert figure(at, "PCA of relu3")["layout"]["title"]["text"].startswith("PCA of relu3 (1,797")


def test_precomputed_rows_of_the_split_are_mapped_and_a_box_lists_their_samples(store):
    loaded = scenarios.load_model("digits", "cnn")
    bundle = combine_splits(scenarios.load_data("digits"))[0]  # the page's "all splits" rows
    acts = loaded.adapter.activations(bundle.x, "relu3")
    publish_arrays(store, "activations", {"layer": "relu3"}, loaded.adapter.fingerprint, bundle.fingerprint,
                   {"activations": acts}, shard_rows=500)
    at = open_page()
    assert [t.value for t in at.toggle if t.key == "emb_precomputed"] == [True]
    spec = figure(at, "precomputed points")
    assert "all 1,797 precomputed points" in spec["layout"]["title"]["text"]
    assert spec["data"][0]["type"] == "image" and spec["data"][0]["source"].startswith("data:image/png;base64,")
    overlay = [t for t in spec["data"] if t["type"] == "scattergl"]
    assert sum(len(t["customdata"]) for t in overlay) == 1797  # below 5,000: every point is drawn
    coords = pca_map(find_activations(store, loaded.adapter.fingerprint, bundle.fingerprint, "relu3"), "relu3",
                     store=ArtifactStore(store)).coords
    x, y = np.quantile(coords[:, 0], [0.2, 0.6]), np.quantile(coords[:, 1], [0.3, 0.9])
    inside = select_box(coords, x, y)
    at.session_state["emb_pmap"] = box_event(list(x), list(y))
    at.run()
    check(at)
    assert any(h.value == f"Selection: {len(inside):,} of 1,797 points" for h in at.subheader)
    captions = " ".join(c.value for c in at.caption)
    assert f"Samples 1-32 of the {len(inside):,} selected" in captions
    assert "True class of the selected points" in json.dumps([json.loads(c.proto.spec) for c in at.get("plotly_chart")])
    assert len(at.get("image")) == 32  # the first page of selected digits, as images
    at.session_state["emb_pmap_page"] = 2
    at.run()
    assert f"Samples 33-64 of the {len(inside):,} selected" in " ".join(c.value for c in at.caption)


def test_rows_beyond_the_split_are_listed_by_index_and_prediction(store):
    loaded = scenarios.load_model("digits", "cnn")
    bundle = combine_splits(scenarios.load_data("digits"))[0]
    rng = np.random.default_rng(0)
    n = 5000
    labels = rng.integers(0, 10, n)
    acts = (rng.normal(scale=5, size=(10, 16))[labels] + rng.normal(size=(n, 16))).astype(np.float32)
    proba = np.eye(10)[labels] * 0.9 + 0.01
    fp = loaded.adapter.fingerprint
    publish_arrays(store, "activations", {"layer": "relu3"}, fp, bundle.fingerprint, {"activations": acts})
    publish_arrays(store, "predictions", {}, fp, bundle.fingerprint, {"proba": proba, "predicted": labels})
    at = open_page()
    assert "all 5,000 precomputed points" in figure(at, "precomputed points")["layout"]["title"]["text"]
    coords = pca_map(find_activations(store, fp, bundle.fingerprint, "relu3"), "relu3", store=ArtifactStore(store)).coords
    box = (list(np.quantile(coords[:, 0], [0.0, 0.5])), list(np.quantile(coords[:, 1], [0.0, 1.0])))
    inside = select_box(coords, *box)
    at.session_state["emb_pmap"] = box_event(*box)
    at.run()
    check(at)
    assert any(h.value == f"Selection: {len(inside):,} of 5,000 points" for h in at.subheader)
    table = at.dataframe[0].value
    assert table["row"].tolist() == inside[:32].tolist()
    assert table["predicted"].tolist() == [str(k) for k in labels[inside[:32]]]
