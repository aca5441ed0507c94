"""core.embeddings: activations, quality measures (scikit-learn as oracle), maps, placement, cache, FGSM, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core import scenarios
from core.embeddings import (
    EmbeddingParams,
    collect_activations,
    combine_splits,
    default_layer,
    embed,
    embed_activations,
    fitted_map,
    is_computed,
    knn_accuracy,
    map_quality,
    nearest,
    neighbours_in_activations,
    place,
    transform_points,
    trustworthiness,
)
from core.embeddings.export import map_table, to_bytes
from core.trust.adversarial import fgsm
from core.errors import InputShapeError, ParameterError, UnknownNameError
from core.progress import Recorder


@pytest.fixture(scope="module")
def digits():
    model = scenarios.load_model("digits", "cnn")
    bundle, split_of, position = combine_splits(scenarios.load_data("digits"))
    return model.adapter, bundle, split_of, position


@pytest.fixture(scope="module")
def digits_subset(digits, tmp_path_factory):
    """700 digits and their relu3 activations (a fixed subset keeps t-SNE / UMAP tests fast)."""
    from core.store import ArtifactStore

    adapter, bundle, _, _ = digits
    rows = np.sort(np.random.default_rng(0).choice(len(bundle), 700, replace=False))
    sub = bundle[rows]
    store = ArtifactStore(tmp_path_factory.mktemp("emb-cache"))
    return adapter, sub, collect_activations(adapter, sub, "relu3", store=store), store


# -- activations ----------------------------------------------------------------------------------
def test_activations_from_the_hook_equal_a_manual_forward_to_that_layer(digits, tmp_store):
    import torch

    adapter, bundle, _, _ = digits
    module = adapter.torch_module()
    names = [n for n, _ in module.named_children()]
    for layer in ("conv2", "relu3", "fc2"):
        acts = collect_activations(adapter, bundle[:100], layer, batch_size=7, store=tmp_store)
        upto = torch.nn.Sequential(*list(module.children())[: names.index(layer) + 1]).eval()
        with torch.inference_mode():
            manual = upto(torch.as_tensor(bundle.x[:100])).reshape(100, -1).numpy()
        np.testing.assert_allclose(acts, manual, rtol=1e-5, atol=1e-5)
    assert not any(m._forward_hooks for m in module.modules()), "hooks left behind"


def test_default_layer_is_the_last_hidden_layer_and_unknown_layers_are_named(digits, tmp_store):
    adapter, bundle, _, _ = digits
    assert default_layer(adapter) == "relu3"
    with pytest.raises(UnknownNameError, match="relu9"):
        collect_activations(adapter, bundle[:5], "relu9", store=tmp_store)


def test_combine_splits_keeps_every_point_with_its_split_and_position():
    splits = scenarios.load_data("digits")
    bundle, split_of, position = combine_splits(splits, "all")
    assert len(bundle) == sum(len(b) for b in splits.values()) == 1797
    test_rows = np.flatnonzero(split_of == "test")
    np.testing.assert_array_equal(bundle.x[test_rows], splits["test"].x[position[test_rows]])
    np.testing.assert_array_equal(bundle.y[test_rows], splits["test"].y)
    only, split_only, _ = combine_splits(splits, "val")
    assert len(only) == len(splits["val"]) and set(split_only) == {"val"}
    with pytest.raises(ParameterError, match="'everything'"):
        combine_splits(splits, "everything")


# -- quality: scikit-learn as oracle -----------------------------------------------------------------
def test_trustworthiness_equals_scikit_learn_with_every_point_as_query():
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    rng = np.random.default_rng(1)
    high = rng.normal(size=(300, 12))
    for low in (high[:, :2], rng.normal(size=(300, 2)), high[:, :2] + 0.3 * rng.normal(size=(300, 2))):
        for k in (5, 10):
            assert trustworthiness(high, low, k) == pytest.approx(sk_trustworthiness(high, low, n_neighbors=k), abs=1e-12)


def test_sampled_trustworthiness_is_close_to_the_exact_value():
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    rng = np.random.default_rng(2)
    high = rng.normal(size=(1500, 10))
    low = high[:, :2] + 0.5 * rng.normal(size=(1500, 2))
    exact = sk_trustworthiness(high, low, n_neighbors=10)
    sampled = trustworthiness(high, low, 10, max_queries=400)
    assert abs(sampled - exact) < 0.01
    assert sampled != exact  # it really sampled


def test_knn_accuracy_equals_a_leave_one_out_neighbours_vote_by_scikit_learn():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 400)
    data = rng.normal(size=(400, 3)) + labels[:, None] * 0.8
    nn = NearestNeighbors(n_neighbors=7).fit(data).kneighbors(return_distance=False)  # excludes self
    votes = np.array([np.bincount(labels[row], minlength=4).argmax() for row in nn])
    assert knn_accuracy(data, labels, 7) == pytest.approx(np.mean(votes == labels))
    np.testing.assert_array_equal(np.sort(nearest(data, np.arange(400), 7), axis=1), np.sort(nn, axis=1))


@pytest.mark.parametrize("dims", [2, 40])  # a k-d tree on maps, brute force on activations
def test_nearest_equals_a_full_sort_of_the_distances_for_sampled_queries(dims):
    """Oracle: every distance to every row, sorted; the query row itself left out, its copies not."""
    rng = np.random.default_rng(5)
    data = rng.normal(size=(600, dims))
    data[10] = data[11] = data[12]  # three copies of one point
    queries = np.r_[10, 11, rng.choice(600, 50, replace=False)]
    found = nearest(data, queries, 6)
    d = np.linalg.norm(data[queries][:, None, :] - data[None, :, :], axis=2)
    d[np.arange(len(queries)), queries] = np.inf
    np.testing.assert_array_equal(np.take_along_axis(d, found, axis=1), np.sort(d, axis=1)[:, :6])
    assert not (found == queries[:, None]).any()
    assert set(found[0, :2]) == {11, 12} and set(found[1, :2]) == {10, 12}
    with pytest.raises(InputShapeError, match="k < n"):
        nearest(data[:5], np.arange(5), 5)


def test_nearest_drops_one_copy_when_more_than_k_rows_coincide():
    data = np.r_[np.zeros((5, 3)), np.ones((3, 3))]
    found = nearest(data, np.arange(5), 2)
    assert found.shape == (5, 2) and (found < 5).all()
    assert not (found == np.arange(5)[:, None]).any()


def test_quality_rejects_mismatched_or_tiny_inputs():
    with pytest.raises(InputShapeError, match=r"\(10, 3\) and \(9, 2\)"):
        map_quality(np.zeros((10, 3)), np.zeros((9, 2)), None)
    with pytest.raises(InputShapeError, match="k < n / 2"):
        trustworthiness(np.random.rand(10, 3), np.random.rand(10, 2), k=5)


# -- maps --------------------------------------------------------------------------------------------
@pytest.mark.slow  # 10 s (t-SNE), 20 s (UMAP, with numba's compilation)
@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_maps_of_digits_separate_the_classes(digits_subset, method):
    adapter, sub, acts, store = digits_subset
    recorder, layouts = Recorder(), []
    params = EmbeddingParams(method=method, early_iter=100, n_iter=250)
    emb = embed_activations(acts, sub.y, params, layer="relu3", model_fingerprint=adapter.fingerprint,
                            data_fingerprint=sub.fingerprint, store=store, progress=recorder,
                            on_layout=lambda it, coords: layouts.append((it, coords.shape)))
    assert emb.coords.shape == (len(sub), 2)
    assert emb.quality.knn_accuracy_map > 0.9
    assert emb.quality.trustworthiness > 0.9
    assert emb.quality.n_queries == len(sub)
    fractions = [f for f, _ in recorder.calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    if method == "tsne":  # intermediate layouts while it converges, with increasing iteration numbers
        iterations = [it for it, _ in layouts]
        assert len(layouts) >= 10 and iterations == sorted(iterations) and layouts[0][1] == (len(sub), 2)


def test_pca_map_is_the_projection_on_the_top_two_principal_components(digits_subset):
    from sklearn.decomposition import PCA

    adapter, sub, acts, store = digits_subset
    emb = embed_activations(acts, sub.y, EmbeddingParams(method="pca", pca_dims=0), layer="relu3",
                            model_fingerprint=adapter.fingerprint, data_fingerprint=sub.fingerprint, store=store)
    reference = PCA(2, svd_solver="full").fit_transform(acts.astype(np.float64))
    for c in range(2):  # equal up to each component's sign
        corr = np.corrcoef(emb.coords[:, c], reference[:, c])[0, 1]
        assert abs(corr) > 0.9999


@pytest.mark.slow  # 5-7 s: fits and places into t-SNE / UMAP maps
@pytest.mark.parametrize("method", ["tsne", "umap", "pca"])
def test_placing_training_points_lands_near_their_fitted_positions(digits_subset, method):
    adapter, sub, acts, store = digits_subset
    params = EmbeddingParams(method=method, early_iter=100, n_iter=250)
    keys = {"layer": "relu3", "model_fingerprint": adapter.fingerprint, "data_fingerprint": sub.fingerprint}
    emb = embed_activations(acts, sub.y, params, store=store, **keys)
    fitted = fitted_map(acts, sub.y, params, store=store, **keys)
    rows = np.arange(0, len(sub), 7)
    placed = transform_points(fitted, acts[rows])
    extent = np.ptp(emb.coords, axis=0).max()
    distance = np.linalg.norm(placed - emb.coords[rows], axis=1)
    # openTSNE starts new points at the median of their 25 neighbours' positions and optimises them
    # against the fixed map: they land within a few units (a cluster's radius), not on the spot.
    assert np.median(distance) < (1e-3 if method == "pca" else 0.1) * extent
    # and each placed point's nearest fitted neighbours share its label
    d = np.linalg.norm(emb.coords[None, :, :] - placed[:, None, :], axis=2)
    nearest_labels = sub.y[np.argsort(d, axis=1)[:, :5]]
    majority = np.array([np.bincount(row).argmax() for row in nearest_labels])
    if method != "pca":  # PCA does not separate the classes; its placement is exact (checked above)
        assert np.mean(majority == sub.y[rows]) > 0.9


@pytest.mark.slow  # 9 s: fits t-SNE / UMAP maps
def test_a_map_is_computed_once_then_read_from_the_store(digits, tmp_store):
    adapter, bundle, _, _ = digits
    sub = bundle[:300]
    params = EmbeddingParams(method="tsne", early_iter=50, n_iter=100)
    assert not is_computed(params, layer="relu3", model_fingerprint=adapter.fingerprint,
                           data_fingerprint=sub.fingerprint, store=tmp_store)
    first = embed(adapter, sub, "relu3", params, batch_size=32, store=tmp_store)
    misses = tmp_store.stats().misses
    layouts = []
    again = embed(adapter, sub, "relu3", params, batch_size=128, store=tmp_store,
                  on_layout=lambda *a: layouts.append(a))
    assert tmp_store.stats().misses == misses and not layouts  # batch size is not in the key
    np.testing.assert_array_equal(first.coords, again.coords)
    assert is_computed(params, layer="relu3", model_fingerprint=adapter.fingerprint,
                       data_fingerprint=sub.fingerprint, store=tmp_store)
    # UMAP's parameters do not change a t-SNE map's key; t-SNE's do.
    embed(adapter, sub, "relu3", EmbeddingParams(method="tsne", early_iter=50, n_iter=100, n_neighbors=40),
          store=tmp_store)
    assert tmp_store.stats().misses == misses
    embed(adapter, sub, "relu3", EmbeddingParams(method="tsne", early_iter=50, n_iter=100, perplexity=10),
          store=tmp_store)
    assert tmp_store.stats().misses == misses + 1


def test_place_puts_new_inputs_into_the_map(digits, tmp_store):
    adapter, bundle, _, _ = digits
    sub = bundle[:200]
    params = EmbeddingParams(method="pca")
    emb = embed(adapter, sub, "relu3", params, store=tmp_store)
    coords = place(adapter, sub, "relu3", params, sub.x[:10], store=tmp_store)
    np.testing.assert_allclose(coords, emb.coords[:10], atol=1e-4)


@pytest.mark.parametrize("bad, match", [
    ({"method": "lle"}, "'lle'"), ({"perplexity": 0.0}, "'perplexity'"), ({"n_iter": 0}, "'n_iter'"),
    ({"min_dist": 2.0}, "'min_dist'"), ({"metric": "hamming"}, "'hamming'"), ({"n_components": 4}, "'n_components'"),
    ({"n_neighbors": 1}, "'n_neighbors'"),
])
def test_bad_parameters_are_named(bad, match):
    with pytest.raises(ParameterError, match=match):
        EmbeddingParams(**bad).validated()


def test_neighbours_in_activation_space_are_the_closest_rows(digits_subset):
    _, _, acts, _ = digits_subset
    found = neighbours_in_activations(acts, 3, 5)
    distance = np.linalg.norm(acts - acts[3], axis=1)
    distance[3] = np.inf
    np.testing.assert_array_equal(found, np.argsort(distance, kind="stable")[:5])


# -- FGSM ------------------------------------------------------------------------------------------
def test_fgsm_equals_captum_and_lowers_accuracy(digits, tmp_store):
    from captum.robust import FGSM

    adapter, bundle, _, _ = digits
    x, y = bundle.x[:64], bundle.y[:64]
    ours = fgsm(adapter, x, y, 0.2, batch_size=10, store=tmp_store)
    import torch

    # captum's default loss is -log(output), for models returning probabilities; ours return logits.
    loss = lambda out, target: torch.nn.functional.cross_entropy(out, target, reduction="none")  # noqa: E731
    attack = FGSM(adapter.torch_module(), loss_func=loss, lower_bound=0.0, upper_bound=1.0)
    attack.zero_thresh = 0.0  # captum leaves pixels with |gradient| <= 1e-6 alone; textbook FGSM does not
    reference = attack.perturb(torch.as_tensor(x), 0.2, torch.as_tensor(y)).detach().numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert np.abs(ours - x).max() <= 0.2 + 1e-6
    clean = np.mean(adapter.predict(x) == y)
    assert np.mean(adapter.predict(ours) == y) < clean - 0.2
    np.testing.assert_array_equal(fgsm(adapter, x, y, 0.0, store=tmp_store), x)
    again = fgsm(adapter, x, y, 0.2, batch_size=64, store=tmp_store)
    assert tmp_store.stats().hits == 1  # cached by content: the batch size is not in the key
    np.testing.assert_array_equal(again, ours)


def test_fgsm_refuses_models_without_input_gradients_and_bad_epsilon(digits):
    adapter, bundle, _, _ = digits
    with pytest.raises(ParameterError, match="-0.1"):
        fgsm(adapter, bundle.x[:2], bundle.y[:2], -0.1)
    logreg = scenarios.load_model("digits", "logreg").adapter
    with pytest.raises(ParameterError, match="FGSM needs the input gradients"):
        fgsm(logreg, bundle.x[:2], bundle.y[:2], 0.1)


# -- export and CLI -----------------------------------------------------------------------------------
def test_export_round_trips_through_csv_and_parquet():
    coords = np.array([[0.5, 1.0], [2.0, -1.0], [3.0, 0.0]], dtype=np.float32)
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    table = map_table(coords, np.array([0, 0, 1]), proba, ("cat", "dog"), np.array(["train", "test", "test"], dtype=object),
                      np.array([4, 0, 1]), extra={"entropy": np.array([0.1, 0.2, 0.3])})
    assert list(table["prediction_name"]) == ["cat", "dog", "cat"]
    assert list(table["correct"]) == [True, False, False]
    np.testing.assert_allclose(table["confidence"], [0.9, 0.7, 0.6])
    import io

    for fmt, read in (("csv", pd.read_csv), ("parquet", pd.read_parquet)):
        back = read(io.BytesIO(to_bytes(table, fmt)))
        pd.testing.assert_frame_equal(back, table, check_dtype=False)
    with pytest.raises(ParameterError, match="'xlsx'"):
        to_bytes(table, "xlsx")


def test_cli_embed_writes_coordinates_and_prints_quality(tmp_path, capsys):
    from core.cli import main

    out = tmp_path / "map.csv"
    assert main(["embed", "digits", "--layer", "relu3", "--method", "pca", "--n", "400", "--out", str(out),
                 "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    table = pd.read_csv(out)
    assert report["n"] == len(table) == 400 and report["layer"] == "relu3"
    assert {"x", "y", "label", "prediction", "confidence", "split", "position"} <= set(table.columns)
    assert 0.8 < report["trustworthiness"] <= 1.0 and report["knn_accuracy_original"] > 0.9
    assert main(["embed", "digits", "--layer", "nope", "--method", "pca", "--out", str(out), "--quiet"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["embed", "digits", "--method", "pca", "--out", str(tmp_path / "map.txt"), "--quiet"]) == 1


@pytest.mark.parametrize("shape", [(300, 40), (60, 5000)])
def test_principal_axes_match_scikit_learn_for_tall_and_wide_activations(shape):
    """Wide layers (a tf-idf layer: 21,665 words for 1,800 posts) go through the n x n Gram matrix."""
    from sklearn.decomposition import PCA

    from core.embeddings.projection import Preprocessor, pca_coords, principal_axes

    rng = np.random.default_rng(0)
    x = rng.normal(size=shape) @ np.diag(np.linspace(3.0, 0.1, shape[1]))  # distinct variances: a unique basis
    centred = x - x.mean(axis=0)
    axes = principal_axes(centred, 5)
    reference = PCA(5, svd_solver="full").fit(x).components_
    assert axes.shape == (5, shape[1])
    np.testing.assert_allclose(np.abs(np.sum(axes * reference, axis=1)), 1.0, atol=1e-8)  # same axes up to sign
    np.testing.assert_allclose(axes @ axes.T, np.eye(5), atol=1e-8)
    coords, _ = pca_coords(x)
    np.testing.assert_allclose(np.abs(coords), np.abs(PCA(2, svd_solver="full").fit_transform(x)), rtol=1e-4, atol=1e-4)
    pre = Preprocessor.fit(x, standardize=False, pca_dims=3)
    assert pre.transform(x).shape == (shape[0], 3)
    largest = np.abs(axes).argmax(axis=1)
    assert (axes[np.arange(5), largest] > 0).all()  # signed: the largest loading is positive


@pytest.mark.parametrize("shape", [(300, 40), (20, 500)])
def test_principal_axes_drop_directions_without_variance(shape):
    """Rank 3 data asked for 5 axes: 3 orthonormal axes spanning the data (oracle: numpy's SVD)."""
    from core.embeddings.projection import pca_coords, principal_axes

    rng = np.random.default_rng(1)
    x = rng.normal(size=(shape[0], 3)) @ rng.normal(size=(3, shape[1]))
    centred = x - x.mean(axis=0)
    axes = principal_axes(centred, 5)
    assert axes.shape == (3, shape[1])
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(np.abs(axes @ vt[:3].T), np.eye(3), atol=1e-8)
    coords, _ = pca_coords(x, 5)
    assert coords.shape == (shape[0], 5) and not coords[:, 3:].any()


def test_a_wide_mostly_zero_layer_takes_the_sparse_path_with_the_dense_path_s_numbers():
    """A tf-idf-like layer (wide, ~1 % non-zero) goes through sparse products; scikit-learn's PCA and the dense
    path (forced by a density threshold of 0) are the oracles for the axes, the reduced points and the quality."""
    from sklearn.decomposition import PCA

    from core.embeddings import projection, quality

    rng = np.random.default_rng(3)
    n, d = 120, 3000
    x = np.where(rng.random((n, d)) < 0.01, rng.random((n, d)) * np.linspace(2.0, 0.5, d), 0.0).astype(np.float32)
    labels = rng.integers(0, 3, n)
    assert projection.wide_sparse(x) is not None and projection.wide_sparse(x.T.copy()) is None  # tall: dense

    sparse_pre = projection.Preprocessor.fit(x, standardize=True, pca_dims=10)
    sparse_high = sparse_pre.scaled(x)
    assert quality._is_sparse(sparse_high)
    original = projection.SPARSE_DENSITY
    try:
        projection.SPARSE_DENSITY = 0.0  # the dense path on the same points
        dense_pre = projection.Preprocessor.fit(x, standardize=True, pca_dims=10)
        dense_high = dense_pre.scaled(x)
    finally:
        projection.SPARSE_DENSITY = original
    assert not quality._is_sparse(dense_high)
    np.testing.assert_allclose(sparse_pre.components, dense_pre.components, atol=1e-8)
    standardised = (x - x.mean(axis=0)) / dense_pre.scale
    reference = PCA(10, svd_solver="full").fit(standardised).components_
    np.testing.assert_allclose(np.abs(np.sum(sparse_pre.components * reference, axis=1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(sparse_pre.transform(x), dense_pre.transform(x), atol=1e-4)

    low = sparse_pre.transform(x)[:, :2]
    assert quality.map_quality(sparse_high, low, labels).as_dict() == quality.map_quality(dense_high, low, labels).as_dict()
    from sklearn.manifold import trustworthiness

    assert quality.trustworthiness(sparse_high, low, k=5) == pytest.approx(trustworthiness(standardised, low, n_neighbors=5))
