"""Tables as people keep them: a skops pipeline fitted on raw columns (text categories, missing values) with a
CSV of raw columns. The pipeline itself is the oracle for every prediction; the slices CLI finds the weak slice
planted in the holdout (issue 23's done-when); unseen categories and missing values without an imputer are said,
naming the column."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from core.errors import InputShapeError
from core.upload.byom import DataSource, open_upload
from core.upload.data_upload import raw_matrix
from tests.hostile import models


@pytest.fixture(scope="module")
def pipeline_files():
    return models.raw_columns_skops()


def test_raw_matrix_codes_text_and_keeps_missing_values():
    frame = pd.DataFrame({"colour": ["red", None, "blue", " red"], "n": [1.0, np.nan, 3.0, 4.0]})
    x, categories = raw_matrix(frame, ["colour", "n"])
    assert categories == {"colour": ("blue", "red")}
    assert x[:, 0].tolist()[0] == 1.0 and np.isnan(x[1, 0]) and x[2, 0] == 0.0 and x[3, 0] == 1.0
    assert np.isnan(x[1, 1]) and x[2, 1] == 3.0
    with pytest.raises(InputShapeError, match="Column 'n' holds an infinite value in row 2"):
        raw_matrix(pd.DataFrame({"n": [1.0, np.inf]}), ["n"])


def test_an_uploaded_raw_column_pipeline_predicts_what_it_predicts_on_the_raw_frame(pipeline_files):
    import skops.io as sio

    model, table = pipeline_files
    scenario = open_upload(model, "raw.skops", DataSource("table", table, "holdout.csv"))
    frame = pd.read_csv(io.BytesIO(table))
    estimator = sio.loads(model, trusted=list(sio.get_untrusted_types(data=model)))
    expected = estimator.predict_proba(frame[["colour", "size", "x1", "x2"]])
    adapter = scenario.trained.adapter
    # the splits are rows of the file (core.upload.byom.split_positions): compare row by row
    from core.upload.byom import split_positions

    positions = split_positions(len(frame))
    assert sum(len(p) for p in positions.values()) == len(frame)
    for split in ("train", "val", "test"):
        # rows are float32, as every table in TrustLens: the numbers differ from the CSV's in the 8th digit
        np.testing.assert_allclose(adapter.predict_proba(scenario.splits[split].x), expected[positions[split]],
                                   atol=1e-6)
    assert any("Text columns given to the model as text: colour, size" in n for n in scenario.notes)
    assert any("Missing values given to the model as they are, in x2" in n for n in scenario.notes)
    assert scenario.splits["test"].display["colour"].isin(["red", "green", "blue"]).all()  # raw values to slice on


def test_slices_upload_finds_the_planted_two_condition_slice_first(pipeline_files, tmp_path, capsys):
    from core.cli import main

    model, table = pipeline_files
    (tmp_path / "raw.skops").write_bytes(model)
    (tmp_path / "holdout.csv").write_bytes(table)
    code = main(["slices", "--upload", str(tmp_path / "raw.skops"), "--data", str(tmp_path / "holdout.csv"),
                 "--boot", "0", "--sensitive", "colour", "--json", "--quiet"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(capsys.readouterr().out)
    best = doc["weak_slices"][0]
    assert {c["column"]: c["value"] for c in best["conditions"]} == {"colour": "red", "size": "L"}, best["slice"]
    assert best["error_rate"] > 2 * best["rest_error_rate"]
    groups = {g["slice"]: g for g in doc["groups"][0]["groups"]}
    assert set(groups) == {"colour == blue", "colour == green", "colour == red"}


def test_a_category_never_seen_in_training_is_said_or_refused_as_the_pipeline_decides():
    ignore_model, table = models.raw_columns_skops(handle_unknown="ignore")
    error_model, _ = models.raw_columns_skops(handle_unknown="error")
    frame = pd.read_csv(io.BytesIO(table))
    frame.loc[3, "colour"] = "purple"
    changed = frame.to_csv(index=False).encode()
    scenario = open_upload(ignore_model, "raw.skops", DataSource("table", changed, "holdout.csv"))
    assert any("Column 'colour' holds 1 category never seen in training ('purple')" in n and "all zeros" in n
               for n in scenario.notes), scenario.notes
    with pytest.raises(InputShapeError, match=r"'holdout.csv': column 'colour' holds 1 category never seen in training "
                                              r"\('purple'\): handle_unknown='error'"):
        open_upload(error_model, "raw.skops", DataSource("table", changed, "holdout.csv"))


def test_missing_values_without_an_imputer_name_the_column():
    model, table = models.raw_columns_skops(imputer=False)
    with pytest.raises(InputShapeError) as caught:
        open_upload(model, "raw.skops", DataSource("table", table, "holdout.csv"))
    assert "x2" in (caught.value.hint or "") + caught.value.message
