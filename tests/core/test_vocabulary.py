"""One explanation vocabulary: one registry, one target resolver, one result family for every modality."""

from __future__ import annotations

import numpy as np
import pytest

from core import scenarios
from core.attribution import explain_images, resolve_targets as image_targets
from core.errors import InputShapeError, ParameterError, UnknownNameError
from core.explanation import (
    Attribution,
    FeatureAttribution,
    Method,
    get_method,
    method_names,
    resolve_targets,
    supported_methods,
)
from core.tabular.shap_tabular import ShapParams, explain_rows
from core.text.lime_text import TextExplanation, resolve_target
from core.text.text_methods import explain_text

NAMES = ("cat", "dog", "eel")


def test_one_registry_for_every_modality():
    image, text, table = method_names("image"), method_names("text"), method_names("table")
    assert {"occlusion", "gradient", "grad_cam"} <= set(image)
    assert text == ["lime", "occlusion", "gradient_x_embedding", "shap_partition", "integrated_gradients", "attention",
                    "attention_rollout"]
    assert table == ["shap"]
    for modality, names in (("image", image), ("text", text), ("table", table)):
        for name in names:
            method = get_method(name, modality)
            assert isinstance(method, Method) and method.modality == modality
            method.params_type()  # every method has defaults
    with pytest.raises(UnknownNameError, match="text explanation method 'saliency'"):
        get_method("saliency", "text")
    with pytest.raises(UnknownNameError, match="modality"):
        method_names("audio")


def test_unsupported_is_a_reason_or_none_everywhere():
    cancer = scenarios.load_model("breast-cancer", "logreg").adapter
    for modality in ("image", "text", "table"):
        reasons = supported_methods(cancer, modality)
        assert all(r is None or (isinstance(r, str) and r) for r in reasons.values())
    image = supported_methods(cancer, "image")
    assert image["occlusion"] is None and "gradient" in image and image["gradient"]


@pytest.mark.parametrize("target, expected", [
    ("predicted", [2, 0, 1]), ("true", [1, 1, 0]), ("dog", [1, 1, 1]), (2, [2, 2, 2]),
    (np.array([0, 2, 1]), [0, 2, 1]),
])
def test_one_target_resolver(target, expected):
    out = resolve_targets(target, NAMES, 3, predicted=lambda: np.array([2, 0, 1]), y=np.array([1, 1, 0]))
    assert out.dtype == np.int64 and out.tolist() == expected


@pytest.mark.parametrize("target, error", [
    ("horse", ParameterError), (3, ParameterError), (-1, ParameterError), (True, ParameterError),
    (np.array([0, 1]), InputShapeError), (1.5, InputShapeError),
])
def test_bad_targets_are_clear_errors(target, error):
    with pytest.raises(error):
        resolve_targets(target, NAMES, 3, predicted=np.array([0, 0, 0]), y=np.array([0, 0, 0]))


def test_true_needs_labels_and_predicted_is_lazy():
    with pytest.raises(ParameterError, match="true labels"):
        resolve_targets("true", NAMES, 2, predicted=np.array([0, 0]))
    calls = []
    resolve_targets(1, NAMES, 2, predicted=lambda: calls.append(1))
    assert calls == []


def test_the_modalities_resolve_targets_the_same_way():
    proba = np.array([0.2, 0.7, 0.1])
    for target in ("predicted", 0, 2, "eel"):
        one = resolve_target(proba, target, 3, NAMES)
        assert one == resolve_targets(target, NAMES, 1, predicted=np.array([1]))[0]
    with pytest.raises(ParameterError):
        resolve_target(proba, "true", 3, NAMES)  # a pasted document has no label


@pytest.fixture(scope="module")
def three_results():
    """One result of each modality on the built-in scenarios (cheap models)."""
    digits = scenarios.load_model("digits", "cnn")
    x = scenarios.load_data("digits")["test"].x[:2]
    image = explain_images(digits.adapter, x, image_targets(digits.adapter, x, "predicted"), "gradient")
    cancer = scenarios.load_model("breast-cancer", "logreg")
    splits = scenarios.load_data("breast-cancer")
    table = explain_rows(cancer.adapter, splits["test"][np.arange(3)], "predicted",
                         ShapParams(background_size=20), train=splits["train"])
    from sklearn.feature_extraction.text import TfidfVectorizer

    from tests.core.test_lime_text import DOC, _adapter, _pipeline

    text = explain_text(_adapter(_pipeline(TfidfVectorizer(lowercase=False))), DOC, "occlusion")
    return image, text, table


def test_one_result_family(three_results):
    image, text, table = three_results
    for result, units, n in ((image, "pixels", 2), (text, "words", 1), (table, "features", 3)):
        assert isinstance(result, Attribution) and result.units == units
        values = result.unit_values()
        assert values.ndim == 2 and len(values) == n == len(result.targets) == len(result.degenerate)
        assert len(result.unit_names(0)) == values.shape[1]
        records = result.records(0)
        magnitudes = [abs(r["value"]) for r in records]
        assert magnitudes == sorted(magnitudes, reverse=True) and len(records) == values.shape[1]
        assert {r["feature"] for r in records} == set(result.unit_names(0))
    assert isinstance(text, TextExplanation) and isinstance(table, FeatureAttribution)
    assert text.records(0, 1)[0]["value"] == np.abs(text.weights).max() or text.records(0, 1)[0]["value"] == -np.abs(text.weights).max()
    assert image.unit_values().shape == (2, 64)
    np.testing.assert_array_equal(image.unit_values()[1], image.heatmap()[1].ravel())
    assert table[1:].records(0) == table.records(1)
