"""DataBundle (core/bundle.py): validation, slicing, fingerprints."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from core.bundle import DataBundle
from core.errors import InputShapeError

CLASSES = ("a", "b", "c")


def image_bundle(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return DataBundle("image", rng.random((n, 1, 4, 4), dtype=np.float32), rng.integers(0, 3, n), CLASSES, name="img")


def tabular_bundle(n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n) % 3
    display = pd.DataFrame({"row": [f"r{i}" for i in range(n)]})
    return DataBundle("tabular", x, y, CLASSES, ("f0", "f1", "f2"), name="tab", display=display)


def text_bundle():
    x = np.array(["one doc", "two docs", "three", "four more", "five"], dtype=object)
    return DataBundle("text", x, np.array([0, 1, 2, 0, 1]), CLASSES, display=pd.DataFrame({"subject": list(x)}))


# -- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 4, 4), (5, 16), (5, 1, 4, 4, 1)])
def test_image_with_wrong_ndim_names_received_shape(shape):
    with pytest.raises(InputShapeError, match=re.escape(str(shape))):
        DataBundle("image", np.zeros(shape, np.float32), None, CLASSES)


@pytest.mark.parametrize("shape", [(5,), (5, 2, 2)])
def test_tabular_with_wrong_ndim_names_received_shape(shape):
    with pytest.raises(InputShapeError, match=re.escape(str(shape))):
        DataBundle("tabular", np.zeros(shape, np.float32), None, CLASSES)


@pytest.mark.parametrize("y", [np.array([0, 1, 3, 0]), np.array([0, -1, 2, 0])])
def test_labels_out_of_range(y):
    with pytest.raises(InputShapeError, match=r"3 class names") as info:
        DataBundle("tabular", np.zeros((4, 2), np.float32), y, CLASSES)
    assert f"[{y.min()}, {y.max()}]" in str(info.value)
    assert info.value.hint  # says what to try


def test_labels_with_wrong_length_name_shape():
    with pytest.raises(InputShapeError, match=re.escape("(3,)")):
        DataBundle("tabular", np.zeros((4, 2), np.float32), np.array([0, 1, 2]), CLASSES)


def test_mismatched_feature_names():
    with pytest.raises(InputShapeError, match="2 feature names for 3 columns"):
        DataBundle("tabular", np.zeros((4, 3), np.float32), None, CLASSES, ("f0", "f1"))


def test_display_with_wrong_length():
    with pytest.raises(InputShapeError, match="display has 2 rows for 4 samples"):
        DataBundle("tabular", np.zeros((4, 3), np.float32), None, CLASSES, display=pd.DataFrame({"a": [1, 2]}))


def test_unknown_kind():
    with pytest.raises(InputShapeError, match="'video'"):
        DataBundle("video", np.zeros((4, 3)), None, CLASSES)  # type: ignore[arg-type]


def test_valid_bundle_basics():
    b = tabular_bundle(6)
    assert len(b) == 6 and b.n_classes == 3
    np.testing.assert_array_equal(b.index, np.arange(6))
    d = b.describe()
    assert d == {"name": "tab", "kind": "tabular", "n": 6, "shape": [3], "class_counts": {"a": 2, "b": 2, "c": 2}}


# -- slicing ---------------------------------------------------------------------------------
def assert_aligned(sub: DataBundle, parent: DataBundle, rows: np.ndarray):
    np.testing.assert_array_equal(sub.x, parent.x[rows])
    np.testing.assert_array_equal(sub.y, parent.y[rows])
    np.testing.assert_array_equal(sub.index, parent.index[rows])
    assert len(sub) == len(rows)
    if parent.display is not None:
        assert len(sub.display) == len(rows)
        assert list(sub.display.iloc[:, 0]) == list(parent.display.iloc[rows, 0])
    assert sub.kind == parent.kind and sub.class_names == parent.class_names
    assert sub.feature_names == parent.feature_names


@pytest.mark.parametrize("make", [tabular_bundle, image_bundle, text_bundle], ids=["tabular", "image", "text"])
@pytest.mark.parametrize(
    "key, rows",
    [
        (2, [2]),
        (np.int64(3), [3]),
        (-1, [4]),
        (slice(1, 4), [1, 2, 3]),
        (slice(None, None, 2), [0, 2, 4]),
        (np.array([4, 0, 2]), [4, 0, 2]),
        ([3, 1], [3, 1]),
        (np.array([True, False, True, False, True]), [0, 2, 4]),
    ],
    ids=["int", "np-int", "neg-int", "slice", "step-slice", "int-array", "list", "bool-mask"],
)
def test_slicing_returns_aligned_bundle(make, key, rows):
    parent = make() if make is text_bundle else make(5)
    sub = parent[key]
    assert isinstance(sub, DataBundle)
    assert_aligned(sub, parent, np.asarray(rows))


def test_nested_slicing_tracks_index_and_fingerprint_follows_content():
    parent = tabular_bundle(10)
    sub = parent[np.array([9, 7, 5, 3])][1:3]
    np.testing.assert_array_equal(sub.index, [7, 5])
    np.testing.assert_array_equal(sub.x, parent.x[[7, 5]])
    assert sub.fingerprint == parent[[7, 5]].fingerprint
    assert sub.fingerprint != parent.fingerprint


def test_slice_of_bundle_without_labels_or_display():
    b = DataBundle("image", np.zeros((3, 1, 2, 2), np.float32), None, CLASSES)
    sub = b[1:]
    assert sub.y is None and sub.display is None and len(sub) == 2


def test_list_of_bools_is_a_mask():
    parent = tabular_bundle(5)
    mask = [True, False, True, False, True]
    np.testing.assert_array_equal(parent[mask].x, parent.x[np.array(mask)])


# -- fingerprint -----------------------------------------------------------------------------
def test_fingerprint_stable_and_content_based():
    a, b = image_bundle(seed=1), image_bundle(seed=1)
    assert a is not b and a.fingerprint == b.fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", a.fingerprint)
    # name and display are not content
    renamed = DataBundle(a.kind, a.x.copy(), a.y.copy(), a.class_names, name="other")
    assert renamed.fingerprint == a.fingerprint


def test_fingerprint_sensitive_to_x_y_and_names():
    base = tabular_bundle(6)
    fp = base.fingerprint
    x2 = base.x.copy()
    x2[3, 1] += 1e-3
    y2 = base.y.copy()
    y2[0] = (y2[0] + 1) % 3
    variants = {
        "x": DataBundle("tabular", x2, base.y, CLASSES, base.feature_names),
        "x-dtype": DataBundle("tabular", base.x.astype(np.float64), base.y, CLASSES, base.feature_names),
        "y": DataBundle("tabular", base.x, y2, CLASSES, base.feature_names),
        "no-y": DataBundle("tabular", base.x, None, CLASSES, base.feature_names),
        "classes": DataBundle("tabular", base.x, base.y, ("a", "b", "z"), base.feature_names),
        "class-order": DataBundle("tabular", base.x, base.y, ("b", "a", "c"), base.feature_names),
        "features": DataBundle("tabular", base.x, base.y, CLASSES, ("f0", "f1", "g2")),
        "kind": DataBundle("image", base.x.reshape(6, 1, 1, 3), base.y, CLASSES),
    }
    fps = {name: v.fingerprint for name, v in variants.items()}
    assert fp not in fps.values(), fps
    assert len(set(fps.values())) == len(fps)


def test_text_fingerprint_sensitive_to_document_boundaries():
    a = DataBundle("text", np.array(["ab", "c"], dtype=object), None, CLASSES)
    b = DataBundle("text", np.array(["a", "bc"], dtype=object), None, CLASSES)
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == DataBundle("text", np.array(["ab", "c"], dtype=object), None, CLASSES).fingerprint
