"""LIME on images: lime_image as the oracle, a model that cannot see half the image, any model."""

from __future__ import annotations

import numpy as np
import pytest

from core.attribution import explain_images
from core.attribution.lime_image import LimeImageParams, cosine_kernel, grid_segments, sample_on
from core.errors import ParameterError
from tests.core.attribution_support import half_blind_model, images, tiny_cnn


def test_grid_segments_are_row_major_squares_clipped_at_the_border():
    seg = grid_segments(5, 5, 2)
    assert seg.max() == 8  # 3 x 3 squares, the last row and column 1 px wide
    np.testing.assert_array_equal(seg[0], [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(seg[4], [6, 6, 7, 7, 8])


def test_kernel_is_lime_images_cosine_kernel():
    from sklearn.metrics import pairwise_distances

    on = sample_on(9, 50, seed=3)
    assert (on[0] == 1).all() and set(np.unique(on)) == {0, 1}
    distances = pairwise_distances(on, on[0].reshape(1, -1), metric="cosine").ravel()
    np.testing.assert_allclose(cosine_kernel(on, 0.25), np.sqrt(np.exp(-(distances ** 2) / 0.25 ** 2)), atol=1e-12)


@pytest.mark.parametrize("fill", ["zero", "blur"])
def test_equals_lime_image_with_the_same_grid_and_seed(fill, tmp_store):
    from lime.lime_image import LimeImageExplainer

    adapter = tiny_cnn(seed=1, size=8, sharpen=30)
    x = images(3, seed=2)
    target = adapter.predict(x)
    params = LimeImageParams(segment=2, num_samples=300, fill=fill, seed=5)
    ours = explain_images(adapter, x, target, "lime", params, store=tmp_store)
    from core.attribution.occlusion import OcclusionParams, fill_images

    hidden = fill_images(x, OcclusionParams(fill=fill), None)
    segments = grid_segments(8, 8, 2)
    for i in range(len(x)):
        def classify(batch: np.ndarray) -> np.ndarray:
            return adapter.predict_proba(np.ascontiguousarray(batch[..., 0], dtype=np.float32)[:, None])

        explainer = LimeImageExplainer(random_state=params.seed)
        # hide_color must be a scalar or None in lime_image: for the blurred fill, pass an image
        # whose "hidden" copy is the blurred one by explaining (x - blur) on top of blur instead.
        if fill == "zero":
            theirs = explainer.explain_instance(x[i, 0].astype(np.float64), classify, labels=(int(target[i]),),
                                                hide_color=0, top_labels=None, num_samples=300,
                                                segmentation_fn=lambda _image: segments, random_seed=1)
        else:
            base = hidden[i, 0].astype(np.float64)

            def shifted(batch: np.ndarray) -> np.ndarray:
                return classify(batch + base[None, :, :, None])

            theirs = explainer.explain_instance(x[i, 0].astype(np.float64) - base, shifted,
                                                labels=(int(target[i]),), hide_color=0, top_labels=None,
                                                num_samples=300, segmentation_fn=lambda _image: segments,
                                                random_seed=1)
        weights = np.zeros(segments.max() + 1)
        for feature, weight in theirs.local_exp[int(target[i])]:
            weights[feature] = weight
        scale = np.abs(weights).max()
        np.testing.assert_allclose(ours.extras["segment_weights"][i], weights, atol=1e-5 * scale)
        assert ours.extras["local_r2"][i] == pytest.approx(theirs.score, abs=1e-5)
        assert ours.extras["intercept"][i] == pytest.approx(theirs.intercept[int(target[i])], abs=1e-5)
        np.testing.assert_allclose(ours.maps[i, 0], weights[segments], atol=1e-5 * scale)


def test_squares_the_model_cannot_see_get_almost_nothing(tmp_store):
    adapter, ignored = half_blind_model(seed=2)
    x = images(4, seed=3)
    result = explain_images(adapter, x, adapter.predict(x), "lime", LimeImageParams(segment=2, num_samples=2000),
                            store=tmp_store)
    heat = np.abs(result.heatmap())
    # Ridge on random on/off draws: unseen squares get sampling noise, seen ones the effect.
    assert heat[:, ignored].max() < 0.15 * heat[:, ~ignored].max()
    assert heat[:, ~ignored].max() > 1e-3


def test_any_model_and_bad_parameters(tmp_store):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from core.adapters.sklearn_adapter import SklearnAdapter
    from core.scenarios import flatten_images

    x = images(40, seed=4)
    y = (x[:, 0, :, 4:].mean(axis=(1, 2)) > x[:, 0, :, :4].mean(axis=(1, 2))).astype(int)
    estimator = make_pipeline(FunctionTransformer(flatten_images), LogisticRegression(max_iter=500)).fit(x, y)
    adapter = SklearnAdapter(estimator, name="logreg", class_names=("left", "right"), input_kind="image")
    result = explain_images(adapter, x[:2], np.array([1, 1]), "lime", LimeImageParams(num_samples=200),
                            store=tmp_store)
    assert result.maps.shape == (2, 1, 8, 8) and result.signed
    # Evidence for "right": on average the right half's squares push P(right) up, the left half's down.
    assert result.maps[:, 0, :, 4:].mean() > 0 > result.maps[:, 0, :, :4].mean()
    for make, name in [(lambda: LimeImageParams(num_samples=1), "num_samples"),
                       (lambda: LimeImageParams(fill="grey"), "fill"),
                       (lambda: LimeImageParams(kernel_width=0), "kernel_width"),
                       (lambda: LimeImageParams(segment=0), "segment")]:
        with pytest.raises(ParameterError, match=f"The '{name}' parameter"):
            make()
    with pytest.raises(ParameterError, match="larger than the image"):
        explain_images(adapter, x[:1], np.array([1]), "lime", LimeImageParams(segment=9), store=tmp_store)
