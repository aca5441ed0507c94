"""AppTest of the sidebar's active slice (components/active_slice.py): it filters every page's pick lists,
galleries, metrics and map, rides in the deep link, and a bad slice is refused while the pages stay on the
previous one. The slices page itself: tests/pages/test_slices.py."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import scenarios
from core.slices import parse_slice, slice_frame
from tests.conftest import require_dataset
from tests.pages.helpers import open_app, sidebar_state

DIGITS_SLICE = 'true in ["3", "8"]'
ADULT_SLICE = "sex == Female and age < 30"


def open_page(page, scenario="digits", model="cnn", text=DIGITS_SLICE, query=None, errors=True, **state) -> AppTest:
    require_dataset(scenarios.get_spec(scenario).dataset)
    start = {**sidebar_state(scenario, model), **({"tl_slice": text} if text is not None else {})}
    return open_app(page, state=start, page_state=state, query=query, errors=errors)


def inside(scenario: str, model: str, text: str) -> np.ndarray:
    test = scenarios.load_data(scenario)["test"]
    proba = scenarios.load_model(scenario, model).adapter.predict_proba(test.x)
    return np.flatnonzero(parse_slice(text).mask(slice_frame(test, proba)))


def slice_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith(":material/filter_alt: Slice **"))


def test_home_browser_and_confusion_show_only_the_slice():
    rows = inside("digits", "cnn", DIGITS_SLICE)
    at = open_page(None)
    assert f"{len(rows)} of 450 samples match" in " ".join(c.value for c in at.caption)
    assert f"{len(rows):,} of 450 test samples" in slice_caption(at)
    assert any(f"In force on every page: {len(rows):,} of 450" in c.value for c in at.sidebar.caption)
    test = scenarios.load_data("digits")["test"]
    accuracy = np.mean(scenarios.load_model("digits", "cnn").adapter.predict(test.x[rows]) == test.y[rows])
    metric = next(m for m in at.metric if m.label == "Test accuracy in the slice")
    assert metric.value == f"{accuracy:.1%}"


def test_image_pick_lists_offer_only_the_slice():
    rows = set(inside("digits", "cnn", DIGITS_SLICE).tolist())
    at = open_page("pages/images.py")
    picks = at.multiselect(key="img_picks")
    assert picks.value and set(picks.value) <= rows
    at = open_page("pages/trust.py")
    assert set(at.multiselect(key="trust_picks").value) <= rows
    assert f"{len(rows):,} of 450 test images" in slice_caption(at)


def test_calibration_metrics_are_the_slices():
    from core.calibration import calibration_metrics

    rows = inside("digits", "cnn", DIGITS_SLICE)
    at = open_page("pages/calibration.py", cal_models=["cnn"])
    table = next(d.value for d in at.dataframe if "ECE" in d.value.columns)
    test = scenarios.load_data("digits")["test"]
    proba = scenarios.load_model("digits", "cnn").adapter.predict_proba(test.x)[rows]
    expected = calibration_metrics(proba, test.y[rows])
    first = table.iloc[0]
    assert first["accuracy"] == pytest.approx(expected.accuracy, abs=1e-9)
    assert first["ECE"] == pytest.approx(expected.ece, abs=1e-9)
    assert any(h.value == f"Metrics on the test split slice ({len(rows):,} samples)" for h in at.subheader)


def test_uncertainty_and_embeddings_measure_and_ring_the_slice():
    at = open_page("pages/uncertainty.py")
    labels = [m.label for m in at.metric]
    assert "Accuracy in the slice" in labels and any(m.startswith("AUROC of ") and m.endswith("for the slice's mistakes")
                                                     for m in labels)
    at = open_page("pages/embeddings.py")
    # the map opens on all 1,797 digits: the slice's rows of every split are ringed
    ringed = next(c.value for c in at.caption if c.value.startswith("Ringed on the map"))
    total = sum(len(inside_split) for inside_split in _all_splits("digits", "cnn", DIGITS_SLICE))
    assert ringed.startswith(f"Ringed on the map: the {total:,} of 1,797 mapped points")


def _all_splits(scenario, model, text):
    data = scenarios.load_data(scenario)
    adapter = scenarios.load_model(scenario, model).adapter
    return [np.flatnonzero(parse_slice(text).mask(slice_frame(b, adapter.predict_proba(b.x)), allow_empty=True))
            for b in data.values()]


def test_shapley_explains_the_slices_rows():
    rows = inside("adult", "logreg", ADULT_SLICE)
    at = open_page("pages/shapley.py", "adult", "logreg", ADULT_SLICE)
    explained = next(d.value for d in at.dataframe if "row" in d.value.columns)["row"].to_numpy()
    assert len(explained) == min(150, len(rows)) and set(explained.tolist()) <= set(rows.tolist())
    assert np.array_equal(np.sort(explained), rows[:len(explained)])  # the slice's first rows, in order


def test_a_bad_slice_keeps_the_previous_one_on_every_page():
    rows = inside("digits", "cnn", DIGITS_SLICE)
    at = open_page("pages/images.py")
    at.session_state["tl_slice"] = "colour == red"
    at.run()
    assert not at.exception
    assert any("colour" in e.value for e in at.sidebar.error)
    assert any(f"Still in force: **{parse_slice(DIGITS_SLICE).text}**" in c.value for c in at.sidebar.caption)
    assert set(at.multiselect(key="img_picks").value) <= set(rows.tolist())  # still filtered by the previous one


def test_a_slice_of_another_scenario_is_not_applied():
    at = open_page(None, "digits", "cnn", ADULT_SLICE, errors=False)  # digits has no 'sex' column
    assert not at.exception
    assert any("sex" in e.value for e in at.sidebar.error)
    assert any(c.value == "No slice in force: every sample is shown." for c in at.sidebar.caption)
    assert "450 of 450 samples match" in " ".join(c.value for c in at.caption)


def test_the_slice_rides_in_the_deep_link():
    text = parse_slice(DIGITS_SLICE).text
    at = open_page("pages/images.py", text=None, query={"view": "images", "slice": text})
    assert at.session_state["tl_slice"] == text and at.session_state["tl_slice_applied"] == text
    assert at.query_params["slice"] == [text] or at.query_params["slice"] == text
    rows = set(inside("digits", "cnn", DIGITS_SLICE).tolist())
    assert set(at.multiselect(key="img_picks").value) <= rows


EVERY_PAGE = (None, "pages/calibration.py", "pages/images.py", "pages/text.py", "pages/trust.py", "pages/shapley.py",
              "pages/uncertainty.py", "pages/embeddings.py", "pages/slices.py", "pages/data.py", "pages/upload.py")


@pytest.mark.parametrize("page", EVERY_PAGE)
def test_every_page_opens_with_a_slice_in_force(page):
    at = open_page(page)
    assert at.session_state["tl_slice_applied"] == parse_slice(DIGITS_SLICE).text
    if page != "pages/upload.py":  # (AppTest's tree of that page's run holds no sidebar elements)
        assert any(c.value.startswith("In force on every page: ") for c in at.sidebar.caption)


@pytest.mark.slow
def test_the_text_pages_pick_lists_offer_only_the_slice():
    text = "`has header` == true and `length (words)` < 120"
    rows = set(inside("newsgroups", "bag", text).tolist())
    at = open_page("pages/text.py", "newsgroups", "bag", text)
    assert at.selectbox(key="text_doc").value in rows
    assert at.selectbox(key="text_doc").label.startswith(f"Test document ({len(rows)} match)")


@pytest.mark.parametrize("text", ['true in ["3", "8"]', "confidence < 0.9", "`confidence band` != \"95% and over\"",
                                  'correct == false', "`mean intensity` >= 0.3"])
def test_every_kind_of_slice_round_trips_through_a_link(text):
    from urllib.parse import parse_qs, urlencode

    canonical = parse_slice(text).text
    query = parse_qs(urlencode({"view": "images", "slice": canonical}))  # what the address bar carries
    at = open_page("pages/images.py", text=None, query={k: v[0] for k, v in query.items()})
    assert at.session_state["tl_slice_applied"] == canonical
    assert parse_slice(at.session_state["tl_slice_applied"]).text == canonical


def test_an_uploaded_models_uncertainty_is_measured_on_the_slice():
    from core.upload import byom
    from core.upload.byom import DataSource
    from tests.hostile import models

    model, table = models.raw_columns_skops()
    name = byom.open_upload(model, "raw.skops", DataSource("table", table, "holdout.csv")).name
    at = open_app("pages/uncertainty.py", state={"tl_uploads": [name], "tl_scenario": name,
                                                "tl_slice": "colour == red and size == L"}, errors=True)
    metrics = {m.label: m for m in at.metric}
    assert "Accuracy in the slice" in metrics
    test = byom.get(name).splits["test"]
    frame = slice_frame(test, byom.get(name).trained.adapter.predict_proba(test.x))
    rows = np.flatnonzero(parse_slice("colour == red and size == L").mask(frame))
    pred = byom.get(name).trained.adapter.predict(test.x[rows])
    assert metrics["Accuracy in the slice"].value == f"{np.mean(pred == test.y[rows]):.1%}"


def test_picks_outside_the_slice_give_way_to_the_slices_first_samples():
    rows = inside("digits", "cnn", DIGITS_SLICE)
    outside = [i for i in range(10) if i not in set(rows.tolist())][:2]
    at = open_page("pages/trust.py", trust_picks=outside)
    assert at.multiselect(key="trust_picks").value == rows[:4].tolist()
