"""Maskers: what removing a unit means per modality, and the one deletion / insertion implementation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from core import scenarios
from core.errors import InputShapeError
from core.trust.maskers import PixelMasker, WordMasker, deletion_insertion, deletion_orders
from tests.core.test_lime_text import DOC, _adapter, _pipeline


@pytest.fixture(scope="module")
def digits():
    loaded = scenarios.load_model("digits", "logreg")
    x = scenarios.load_data("digits")["test"].x[:3].astype(np.float32)
    return loaded.adapter, x


def test_pixel_masker_is_the_model_on_the_masked_images(digits):
    adapter, x = digits
    fill = np.full_like(x, 0.5)
    keep = np.random.default_rng(0).random((7, 64)) < 0.5
    got = PixelMasker(adapter, x, fill).probabilities(1, keep, 3, batch_size=3)
    masked = np.where(keep.reshape(-1, 1, 8, 8), x[1], fill[1])
    np.testing.assert_allclose(got, adapter.predict_proba(masked)[:, 3], rtol=1e-6)


def test_word_masker_deletes_every_occurrence():
    adapter = _adapter(_pipeline(TfidfVectorizer(lowercase=False)))
    masker = WordMasker(adapter, [DOC])
    doc = masker.docs[0]
    keep = np.ones((2, doc.n_words), dtype=bool)
    keep[1, 0] = False
    got = masker.probabilities(0, keep, 1, batch_size=8)
    expected = adapter.predict_proba(np.array(doc.texts(keep), dtype=object))[:, 1]
    assert doc.words[0] not in doc.texts(keep)[1].split()
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_curves_start_and_end_where_they_must(digits):
    adapter, x = digits
    fill = np.zeros_like(x)
    target = adapter.predict(x)
    values = np.random.default_rng(1).normal(size=(3, 64))
    curves = deletion_insertion(PixelMasker(adapter, x, fill), values, target, steps=8, random_orders=2)
    full = adapter.predict_proba(x)[np.arange(3), target]
    empty = adapter.predict_proba(fill)[np.arange(3), target]
    for name in ("deletion", "deletion_least", "deletion_random"):
        np.testing.assert_allclose(curves.curves[name][:, 0], full, rtol=1e-6)
        np.testing.assert_allclose(curves.curves[name][:, -1], empty, rtol=1e-6)
    for name in ("insertion", "insertion_random"):
        np.testing.assert_allclose(curves.curves[name][:, 0], empty, rtol=1e-6)
        np.testing.assert_allclose(curves.curves[name][:, -1], full, rtol=1e-6)
    assert curves.unit == "pixels" and curves.curves["deletion"].shape == (3, 9)


def test_true_contributions_beat_random_and_their_reverse(digits):
    """For a linear model on one class score, w * x ranks pixels exactly: deletion by it must be fastest."""
    adapter, x = digits
    target = adapter.predict(x)
    logreg = adapter.estimator[-1]
    contributions = logreg.coef_[target] * x.reshape(3, -1)
    curves = deletion_insertion(PixelMasker(adapter, x, np.zeros_like(x)), contributions, target, steps=16,
                                random_orders=5)
    areas = curves.areas()
    assert areas["deletion"] < areas["deletion_random"] < areas["deletion_least"]
    assert curves.verdict().startswith("faithful")
    shuffled = deletion_insertion(PixelMasker(adapter, x, np.zeros_like(x)), -contributions, target, steps=16,
                                  random_orders=5)
    assert shuffled.areas()["deletion"] > areas["deletion"]


def test_the_same_driver_for_words_and_its_deletion_orders():
    adapter = _adapter(_pipeline(TfidfVectorizer(lowercase=False)))
    masker = WordMasker(adapter, [DOC, DOC])
    d = masker.n_units(0)
    weights = [np.linspace(1, -1, d), np.zeros(d)]
    curves = deletion_insertion(masker, weights, np.array([1, 1]), steps=5, random_orders=2, batch_size=64)
    assert curves.unit == "words" and curves.degenerate.tolist() == [False, True]
    order = np.argsort(-weights[0])
    p = deletion_orders(masker, 0, 1, [order], steps=3, batch_size=64)
    doc = masker.docs[0]
    keep = np.ones((4, d), dtype=bool)
    for k in range(1, 4):
        keep[k:, order[k - 1]] = False
    expected = adapter.predict_proba(np.array(doc.texts(keep), dtype=object))[:, 1]
    np.testing.assert_allclose(p[0], expected, rtol=1e-9)


def test_mismatched_values_are_clear_errors(digits):
    adapter, x = digits
    with pytest.raises(InputShapeError, match="one target and one value vector per input"):
        deletion_insertion(PixelMasker(adapter, x, np.zeros_like(x)), np.zeros((2, 64)), np.zeros(3, int))
    with pytest.raises(InputShapeError, match="has 64 pixels"):
        deletion_insertion(PixelMasker(adapter, x, np.zeros_like(x)), np.zeros((3, 10)), np.zeros(3, int))
