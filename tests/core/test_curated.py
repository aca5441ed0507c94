"""core.lecture.curated: curated example lists per page, checked against plain numpy and across every scenario x page."""

from __future__ import annotations

import numpy as np
import pytest

from core import scenarios

from core.lecture import curated
from core.errors import ParameterError, UnknownNameError
from core.inference import predict_proba_cached
from tests.conftest import require_dataset


def test_confident_mistakes_against_numpy():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=300)
    y = rng.integers(0, 4, 300)
    got = curated.confident_mistakes(y, proba)
    # Independent computation: every wrong row, sorted by its top probability, highest first.
    wrong = [i for i in range(300) if proba[i].argmax() != y[i]]
    expected = sorted(wrong, key=lambda i: (-proba[i].max(), i))
    assert got.tolist() == expected
    assert curated.confident_mistakes(y, proba, 5).tolist() == expected[:5]
    assert curated.confident_mistakes(y, proba, max_index=100).tolist() == [i for i in expected if i < 100]


def test_confident_correct_one_per_class_and_typical_interleaves():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.05, 0.95], [0.7, 0.3]])
    y = np.array([0, 0, 1, 1, 1])  # row 4 is a mistake
    assert curated.confident_correct(y, proba, 5).tolist() == [3, 0]
    assert curated.typical_per_class(y, proba, 2).tolist() == [0, 3, 1, 2]


def test_neighbour_share_counts_the_other_class():
    # Two tight clusters; point 0 (label 0) sits inside cluster 1.
    acts = np.array([[10.0, 10.0], [0.0, 0.0], [0.1, 0.0], [10.1, 10.0], [10.0, 10.1], [9.9, 10.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    share = curated.neighbour_share(acts, labels, np.array([0, 1]), np.array([1, 1]), k=3)
    assert share[0] == 1.0  # its 3 nearest are the three 1s
    assert share[1] == pytest.approx(1 / 3)  # point 2, then the cluster of 1s (point 0 is as far as they are)
    assert curated.neighbour_share(acts, labels, np.array([1]), np.array([1]), k=1).tolist() == [0.0]


def test_bad_input_errors_name_the_value():
    with pytest.raises(UnknownNameError, match="'slides'"):
        curated.examples("digits", "slides")
    with pytest.raises(UnknownNameError, match="'nope'"):
        curated.examples("nope", "images")
    with pytest.raises(ParameterError, match="limit"):
        curated.examples("digits", "images", limit=0)


def test_nothing_to_curate_is_empty():
    assert curated.examples("breast-cancer", "images") == []
    assert curated.examples("breast-cancer", "uncertainty") == []
    assert curated.examples("digits", "text") == []


def _check(scenario: str, page: str, variant: str | None = None, limit: int = 8) -> list[curated.Example]:
    out = curated.examples(scenario, page, variant=variant, limit=limit)
    spec = scenarios.get_spec(scenario)
    n_test = len(scenarios.load_data(scenario, variant)["test"])
    assert len(out) <= limit
    for e in out:
        assert isinstance(e, curated.Example) and e.title and e.why
        if page == "calibration":
            assert e.index is None and e.model in spec.model_names
        else:
            assert e.index is not None and 0 <= e.index < n_test
        if e.model is not None:
            assert e.model in spec.model_names
    indices = [e.index for e in out if e.index is not None]
    assert len(indices) == len(set(indices)), "an example listed twice"
    return out


def test_images_most_confident_mistakes_are_mistakes_sorted_by_confidence():
    out = _check("digits", "images")
    test = scenarios.load_data("digits")["test"]
    proba = predict_proba_cached(scenarios.load_model("digits").adapter, test)
    pred = proba.argmax(axis=1)
    mistakes = [e.index for e in out if e.title.startswith(("Most confident mistake", "Confident mistake"))]
    assert mistakes, "the digits CNN makes mistakes on its test split; none listed"
    assert all(pred[i] != test.y[i] for i in mistakes)
    wrong = np.flatnonzero(pred != test.y)
    top = wrong[np.argsort(-proba[wrong, pred[wrong]], kind="stable")][:len(mistakes)]
    assert mistakes == top.tolist()
    contrast = [e.index for e in out if e.title.startswith("Confidently right")]
    assert contrast and all(pred[i] == test.y[i] for i in contrast)


def test_deterministic_and_read_from_the_store(tmp_path, monkeypatch):
    first = curated.examples("digits", "images")
    store = __import__("core.store", fromlist=["default_store"]).default_store()
    misses = store.misses
    again = curated.examples("digits", "images")
    assert again == first
    assert store.misses == misses, "the second call recomputed something"


@pytest.mark.parametrize("page", curated.PAGES)
def test_every_page_digits(page):
    _check("digits", page)


@pytest.mark.parametrize("page", curated.PAGES)
def test_every_page_breast_cancer(page):
    _check("breast-cancer", page)


def test_shapley_tabular_rows():
    out = _check("breast-cancer", "shapley")
    test = scenarios.load_data("breast-cancer")["test"]
    proba = predict_proba_cached(scenarios.load_model("breast-cancer").adapter, test)
    assert all(e.index < curated.PICKER_ROWS["shapley-tabular"] for e in out)
    typical = [e for e in out if e.title.startswith("Typical")]
    assert {int(test.y[e.index]) for e in typical} == {0, 1}
    assert all(proba[e.index].argmax() == test.y[e.index] for e in typical)
    fence = [e for e in out if e.title.startswith("On the fence")]
    if fence:  # the row with the smallest margin among the rows the page offers
        n = min(150, len(test))
        margin = np.abs(proba[:n, 1] - proba[:n, 0])
        assert margin[fence[0].index] == margin.min()


def test_calibration_one_per_model():
    out = _check("breast-cancer", "calibration")
    assert [e.model for e in out] == scenarios.get_spec("breast-cancer").model_names
    assert all("ECE" in e.title and ("overconfident" in e.title or "underconfident" in e.title) for e in out)


def test_trust_examples_are_offered_by_the_trust_picker():
    assert all(e.index < curated.PICKER_ROWS["trust"] for e in curated.examples("digits", "trust"))


@pytest.mark.parametrize("page", curated.PAGES)
def test_every_page_titanic(page):
    require_dataset("titanic")
    _check("titanic", page)


@pytest.mark.slow  # 18 s cold (MNIST's CNN: 52 s to train), 25 s for the five pages
@pytest.mark.parametrize("page", ["home", "images", "trust", "embeddings", "calibration"])
def test_mnist_pages(page):
    # The uncertainty page's list needs the 5-member MNIST ensemble (minutes to train): warm --all covers it.
    require_dataset("mnist")
    _check("mnist", page)


@pytest.mark.slow  # the newsgroups forest (7 s to train, 500-tree predictions): 6 s for the text page
@pytest.mark.parametrize("page", curated.PAGES)
def test_every_page_newsgroups(page):
    require_dataset("newsgroups")
    _check("newsgroups", page)


@pytest.mark.slow  # 15 s cold: the newsgroups forest and models on both variants
def test_newsgroups_text_disagreements_and_reasons():
    require_dataset("newsgroups")
    out = _check("newsgroups", "text", variant="headers")
    pa = predict_proba_cached(scenarios.load_model("newsgroups", "forest", "headers").adapter,
                              scenarios.load_data("newsgroups", "headers")["test"])
    # The page shows the compared model the selected variant's text: its predictions are taken on that text.
    pb = predict_proba_cached(scenarios.load_model("newsgroups", "logreg", "no-headers").adapter,
                              scenarios.load_data("newsgroups", "headers")["test"])
    disagree = [e.index for e in out if " says " in e.title]
    assert all(pa[i].argmax() != pb[i].argmax() for i in disagree)
    reasons = [e.index for e in out if e.title.startswith("Both say")]
    assert reasons and all(pa[i].argmax() == pb[i].argmax() for i in reasons)
    assert all(e.model == "forest" and e.variant == "headers" for e in out)
