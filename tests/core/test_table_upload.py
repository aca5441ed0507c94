"""Uploaded CSV tables: parsed into a bundle the tabular explainers take, with errors that name the fix."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputShapeError
from core.scenarios import load_data
from core.tabular.shap_tabular import ShapParams, background_data, explain_tabular
from core.upload.table_upload import load_table, template_csv
from tests.core.models_support import load

FEATURES = ("a", "b", "c")
CLASSES = ("no", "yes")


def test_template_round_trips_to_the_same_rows_and_labels():
    test = load_data("breast-cancer")["test"]
    bundle = load_table(template_csv(test), test.feature_names, test.class_names)
    np.testing.assert_allclose(bundle.x, test.x[:20], rtol=1e-6)
    np.testing.assert_array_equal(bundle.y, test.y[:20])
    assert bundle.feature_names == test.feature_names and len(bundle.display) == 20


def test_columns_in_any_order_extra_columns_kept_for_display_label_optional():
    csv = b"note,c,a,b\nfirst,3,1,2\nsecond,6,4,5\n"
    bundle = load_table(csv, FEATURES, CLASSES)
    np.testing.assert_array_equal(bundle.x, [[1, 2, 3], [4, 5, 6]])
    assert bundle.y is None and list(bundle.display["note"]) == ["first", "second"]
    labelled = load_table(b"a,b,c,label\n1,2,3,yes\n4,5,6,0\n", FEATURES, CLASSES)
    np.testing.assert_array_equal(labelled.y, [1, 0])


@pytest.mark.parametrize("csv, message", [
    (b"", "empty"),
    (b"a,b\n1,2\n", "lacks 1 of the model's 3 feature columns: 'c'"),
    (b"a,b,c\n1,2,x\n", "Column 'c' must be numeric; row 1 holds 'x'"),
    (b"a,b,c\n1,2,3\n4,,6\n", "Column 'b' has 1 missing (NaN) value(s), the first in row 2"),
    (b"a,b,c\n", "no rows"),
    (b"a,b,c,label\n1,2,3,maybe\n", "label 'maybe', which is not a class"),
    (b"a,b,c\n1,2,inf\n", "infinite"),
    (b"\xff\xfe\x00\x01garbage", "not a CSV table"),
])
def test_bad_tables_are_refused_with_the_column_and_row_named(csv, message):
    with pytest.raises(InputShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_table(csv, FEATURES, CLASSES)


def test_too_many_rows_are_refused():
    csv = "a,b,c\n" + "1,2,3\n" * 11
    with pytest.raises(InputShapeError, match="more than 10 rows"):
        load_table(csv.encode(), FEATURES, CLASSES, max_rows=10)


def test_uploaded_rows_get_the_same_shap_values_as_the_same_test_rows(tmp_store):
    splits = load_data("titanic")
    test = splits["test"]
    adapter = load("titanic", "gboost").adapter
    uploaded = load_table(template_csv(test, rows=5), test.feature_names, test.class_names)
    params = ShapParams()
    bg = background_data(splits["train"], params)
    ours = explain_tabular(adapter, uploaded, None, bg, params, store=tmp_store)
    reference = explain_tabular(adapter, test, list(range(5)), bg, params, store=tmp_store)
    np.testing.assert_allclose(ours.values, reference.values, atol=1e-6)
    assert np.abs(ours.additivity_error).max() < 1e-6
