"""AppTest of pages/embeddings.py, and the selection logic behind it.

Plotly selections cannot be made in AppTest: the map's key (``emb_map``) is given the event dict
for one run, which is what st.plotly_chart returns after a click or a box selection in the browser.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from components.embedding_jump import image_page_filters
from components.embedding_selection import selected_rows, summarise
from core import browse, scenarios
from core.embeddings import combine_splits
from tests.pages.helpers import check, open_app, sidebar_state

TIMEOUT = 300  # first use trains the model and fits maps inside the run
PAGE = "pages/embeddings.py"


def open_page(scenario: str | None = None, model: str | None = None, **state) -> AppTest:
    return open_app(PAGE, state=sidebar_state(scenario, model), page_state=state, timeout=TIMEOUT, errors=True,
                    title="Embeddings")


def rerun(at: AppTest, **state) -> AppTest:
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    check(at)
    return at


def map_spec(at: AppTest) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(s for s in specs if s["layout"].get("title", {}).get("text", "").split(" ")[0] in ("PCA", "t-SNE", "UMAP"))


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def arr(value) -> np.ndarray:
    """A Plotly array from a figure's JSON: a list, or plotly 6+'s typed-array {"dtype", "bdata"} form."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return out.reshape(value["shape"]) if "shape" in value else out
    return np.asarray(value)


def points(rows) -> dict:
    return {"selection": {"points": [{"customdata": [int(r), "x"]} for r in rows], "point_indices": list(rows),
                          "box": [], "lasso": []}}


@pytest.fixture(scope="module")
def digits():
    bundle, split_of, position = combine_splits(scenarios.load_data("digits"))
    return bundle, split_of, position


def test_pca_map_of_every_digit_with_hover_data_and_quality(digits):
    bundle, split_of, position = digits
    at = open_page("digits", "cnn")
    spec = map_spec(at)
    assert spec["layout"]["title"]["text"].startswith("PCA of relu3 (1,797")
    traces = [t for t in spec["data"] if t["type"] == "scattergl"]
    rows = np.concatenate([[c[0] for c in t["customdata"]] for t in traces])
    assert sorted(rows) == list(range(len(bundle)))  # every point, each once
    assert {t["name"] for t in traces} == {str(c) for c in range(10)}  # coloured by true label
    first = traces[0]["customdata"][0]
    assert first[1] == f"{split_of[first[0]]} {position[first[0]]}" and first[2] == str(bundle.y[first[0]])
    m = metrics(at)
    assert 0.5 < float(m["Trustworthiness"]) <= 1.0 and float(m["10-NN accuracy in the original space"]) > 0.9
    assert [b.label for b in at.get("download_button")] == ["Coordinates as CSV", "Coordinates as Parquet"]


def test_a_clicked_point_shows_its_sample_and_neighbours_in_activation_space(digits):
    bundle, split_of, position = digits
    at = open_page("digits", "cnn")
    row = int(np.flatnonzero(split_of == "test")[3])
    rerun(at, emb_map=points([row]))
    assert at.subheader[0].value == f"Point #{row}: test sample {position[row]}"
    spec = map_spec(at)
    names = [t["name"] for t in spec["data"]]
    assert f"selected #{row}" in names and "nearest neighbours (activations)" in names
    neighbours = next(t for t in spec["data"] if t["name"] == "nearest neighbours (activations)")
    assert len(neighbours["customdata"]) == 8 and row not in [c[0] for c in neighbours["customdata"]]
    assert at.button(key="emb_explain").label == "Explain this prediction"
    # the selection sticks after the one-run event is gone, and k is adjustable
    rerun(at, emb_k=3)
    neighbours = next(t for t in map_spec(at)["data"] if t["name"] == "nearest neighbours (activations)")
    assert len(neighbours["customdata"]) == 3


def test_explain_button_opens_the_image_page_on_that_test_image(digits):
    bundle, split_of, position = digits
    at = open_page("digits", "cnn")
    row = int(np.flatnonzero(split_of == "test")[10])
    rerun(at, emb_map=points([row]))
    at.button(key="emb_explain").click().run()
    check(at)
    assert at.title[0].value == "Image explanations"
    assert at.session_state["img_picks"] == [int(position[row])]


def test_box_selection_shows_the_class_histogram_accuracy_and_gallery(digits):
    bundle, _, _ = digits
    at = open_page("digits", "cnn")
    rows = np.flatnonzero(bundle.y == 3)[:40].tolist() + np.flatnonzero(bundle.y == 5)[:10].tolist()
    rerun(at, emb_map=points(rows))
    assert at.subheader[0].value == "Selection: 50 points"
    m = metrics(at)
    assert m["Most frequent true class"] == "3"
    hist = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["layout"]["title"]["text"] == "True class of the selected points")
    totals = arr(hist["data"][0]["y"]) + arr(hist["data"][1]["y"])
    assert totals[3] == 40 and totals[5] == 10 and totals.sum() == 50
    assert len(at.get("image")) == 32  # the gallery's images
    assert "Gallery: 32 of 50 selected" in " ".join(c.value for c in at.caption)


@pytest.mark.slow  # 28 s cold: fits the t-SNE map
def test_tsne_map_opens_from_the_cache_and_colours_by_confidence(digits):
    at = open_page("digits", "cnn", emb_split="test", emb_method="tsne", emb_iter=150)
    spec = map_spec(at)
    assert spec["layout"]["title"]["text"].startswith("t-SNE of relu3 (450 points, test)")
    assert float(metrics(at)["10-NN accuracy in the map"]) > 0.9
    rerun(at, emb_colour="confidence")
    trace = map_spec(at)["data"][0]
    assert trace["marker"]["colorbar"]["title"]["text"] == "confidence" and len(arr(trace["x"])) == 450


@pytest.mark.slow  # 2 s cold: MC dropout scores of the digits test split
def test_uncertainty_scores_from_another_page_are_offered_as_colours(digits):
    scores = np.linspace(0, 1, 450)
    shared = {"scenario": "digits", "model": "cnn", "variant": None, "split": "test", "scores": {"mutual info": scores}}
    at = open_page("digits", "cnn", emb_split="test", uncertainty_scores=shared)
    assert "uncertainty: mutual info" in at.selectbox(key="emb_colour").options
    rerun(at, emb_colour="uncertainty: mutual info")
    trace = map_spec(at)["data"][0]
    np.testing.assert_allclose(arr(trace["marker"]["color"]), scores)
    rerun(at, emb_split="all")  # scores of another split are not offered
    assert "uncertainty: mutual info" not in at.selectbox(key="emb_colour").options
    # the uncertainty page publishes the test split's scores without a "split" key
    published = {k: v for k, v in shared.items() if k != "split"}
    rerun(at, emb_split="test", uncertainty_scores=published)
    assert "uncertainty: mutual info" in at.selectbox(key="emb_colour").options


def test_fgsm_overlay_places_adversarial_points_into_the_map():
    at = open_page("digits", "cnn", emb_split="test", emb_adv=True, emb_eps=0.3, emb_adv_n=40)
    overlay = next(t for t in map_spec(at)["data"] if t["name"].startswith("FGSM"))
    assert len(arr(overlay["x"])) == 40 and all(c[0] < 0 for c in overlay["customdata"])
    assert any("the prediction changed for" in c.value for c in at.caption)


@pytest.mark.slow  # the newsgroups bag model (20 s to train)
def test_text_scenario_maps_the_bag_model():
    at = open_page("newsgroups", "bag", emb_split="test")
    assert map_spec(at)["layout"]["title"]["text"].startswith("PCA of")


# -- the logic behind the page --------------------------------------------------------------------------
def test_selected_rows_ignores_overlay_points_and_keeps_order():
    event = {"selection": {"points": [{"customdata": [5, "a"]}, {"customdata": [-3, "adv"]}, {"customdata": [2]},
                                      {"customdata": [5, "a"]}, {"x": 1}], "box": [], "lasso": []}}
    assert selected_rows(event).tolist() == [5, 2]
    assert selected_rows(None).size == 0 and selected_rows({"selection": {}}).size == 0


def test_summary_counts_right_and_wrong_per_true_class():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    s = summarise(np.array([0, 1, 2, 4]), y, pred, 3)
    assert s.n == 4 and s.accuracy == 0.5 and s.correct.tolist() == [1, 1, 0] and s.wrong.tolist() == [1, 0, 1]
    assert s.majority == 0


def test_image_page_filters_list_the_picked_image():
    test = scenarios.load_data("digits")["test"]
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(10), len(test))
    for index in (0, 17, len(test) - 1):
        f = image_page_filters(index, test.y, proba, limit=20)
        shown = browse.select_samples(test.y, proba, f["img_classes"], f["img_correctness"], f["img_sort"])[:20]
        assert index in shown


def test_uploaded_images_are_placed_into_the_map_with_escaped_names(digits):
    import io

    from PIL import Image

    bundle, split_of, position = digits  # position: each row's index within its split (the map's row id)
    at = open_page("digits", "cnn", emb_split="test")
    # a test digit as a PNG: it should land where that same digit lies on the map
    row = int(np.flatnonzero(split_of == "test")[0])
    png = io.BytesIO()
    Image.fromarray((bundle.x[row, 0] * 255).astype(np.uint8)).save(png, format="PNG")
    at.file_uploader(key="emb_upload").set_value(("<b>seven</b>.png", png.getvalue(), "image/png")).run()
    check(at)
    spec = map_spec(at)
    placed = next(t for t in spec["data"] if t["name"] == "your images")
    assert len(arr(placed["x"])) == 1 and placed["customdata"][0][1].startswith("&lt;b&gt;seven&lt;/b&gt;.png")
    assert "<b>seven</b>.png: predicted" in at.text[0].value
    xy = np.array([arr(placed["x"])[0], arr(placed["y"])[0]])
    rows, coords = [], []
    for t in spec["data"]:
        if t["type"] == "scattergl" and t["name"] in {str(c) for c in range(10)}:
            coords.append(np.column_stack([arr(t["x"]), arr(t["y"])]))
            rows += [int(c[0]) for c in t["customdata"]]
    coords, rows = np.concatenate(coords), np.asarray(rows)
    # The PNG differs from the test digit only by 8-bit rounding, so it lands on that digit's own point
    # (a majority vote of its neighbours' classes depended on how the CNN's training rounded on this
    # machine: digits of class 0 lie next to this 1 on the 2-D map when torch trains on two threads).
    distance = np.linalg.norm(coords - xy, axis=1)
    extent = np.linalg.norm(coords.max(axis=0) - coords.min(axis=0))
    own = int(position[row])
    assert own in rows[np.argsort(distance)[:3]]
    assert distance[rows == own][0] < 0.01 * extent


def test_a_map_selection_becomes_the_slice_of_every_page(digits):
    _, split_of, position = digits
    at = open_page("digits", "cnn")
    test_rows = np.flatnonzero(split_of == "test")[:30]
    rows = test_rows.tolist() + [int(np.flatnonzero(split_of == "train")[0])]  # a train point too: ringed, not listed
    rerun(at, emb_map=points(rows))
    at.button(key="emb_save_slice").click().run()
    check(at)
    assert at.session_state["tl_slice"] == "`map selection` == true"
    assert at.session_state["tl_slice_applied"] == "`map selection` == true"
    assert any(c.value.startswith("In force on every page: 30 of 450 test samples") for c in at.sidebar.caption)
    assert any(c.value.startswith("Ringed on the map: the 31 of 1,797 mapped points") for c in at.caption)
    at.switch_page("pages/images.py").run()
    check(at)
    picks = at.multiselect(key="img_picks")
    assert picks.label.startswith("Test images (30 match")
    assert set(picks.value) <= {int(p) for p in position[test_rows]}
