"""The `adult` scenario (issue 23): UCI Adult's official files, raw columns, sensitive groups, and `slices adult`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core import datasets, scenarios
from tests.conftest import require_dataset


@pytest.fixture(scope="module")
def splits():
    require_dataset("adult")
    return scenarios.load_data("adult")


def test_the_official_files_make_the_splits(splits):
    assert len(splits["train"]) + len(splits["val"]) == 32_561 and len(splits["test"]) == 16_281
    assert abs(len(splits["val"]) / 32_561 - 0.15) < 0.001
    for bundle in splits.values():
        assert bundle.feature_names == datasets.ADULT_FEATURES and bundle.x.dtype == np.float32
        assert 0.23 < bundle.y.mean() < 0.25  # 24 % earn >50K in both files
        assert {"age band", "sex", "race", "education"} <= set(bundle.display.columns)
        assert "fnlwgt" not in bundle.display.columns


def test_categories_are_codes_and_missing_values_their_own_code(splits):
    train = splits["train"]
    display, x = train.display, train.x
    col = datasets.ADULT_FEATURES.index("workclass")
    missing = display["workclass"].isna().to_numpy()
    assert missing.sum() > 1000  # "?" in the file
    assert (x[missing, col] == len(datasets.ADULT_CATEGORIES["workclass"])).all()
    private = (display["workclass"] == "Private").to_numpy()
    assert (x[private, col] == 0).all()
    sizes = datasets.adult_categorical_sizes()
    for j, k in enumerate(sizes):
        if k:
            assert x[:, j].max() < k and x[:, j].min() >= 0
    assert display["age band"].notna().all()
    assert set(display.loc[display["age"] < 25, "age band"]) == {"under 25"}


def test_the_scenario_declares_its_sensitive_columns():
    spec = scenarios.get_spec("adult")
    assert spec.sensitive == ("sex", "race", "age band") and spec.model_names == ["gboost", "logreg", "mlp"]
    assert scenarios.summary("adult")["sensitive"] == ["sex", "race", "age band"]


def test_an_mlp_on_raw_columns_one_hot_encodes_them_inside():
    import torch

    from core import nets

    module = nets.tabular_mlp(3, 2, mean=[10.0, 0.0, 5.0], std=[2.0, 1.0, 1.0], categories=[0, 3, 0])
    encode = module.normalize
    out = encode(torch.tensor([[12.0, 2.0, 5.0], [10.0, 0.0, 6.0]]))
    assert out.tolist() == [[1.0, 0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0, 0.0]]
    x = torch.tensor([[12.0, 1.5, 5.0]], requires_grad=True)  # between two codes, a gradient reaches the code column
    module(x)[0, 1].backward()
    assert x.grad[0, 1] != 0


@pytest.mark.slow
def test_slices_adult_groups_and_disparities_equal_fairlearns(capsys):
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        selection_rate,
    )

    from core.cli import main

    assert main(["slices", "adult", "--model", "gboost", "--boot", "50", "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["positive"] == ">50K" and doc["n"] == 16_281
    loaded = scenarios.load_model("adult", "gboost")
    test = scenarios.load_data("adult")["test"]
    pred = loaded.adapter.predict(test.x)
    assert doc["overall"]["accuracy"] == pytest.approx(float(np.mean(pred == test.y)), abs=1e-6)
    by_column = {g["column"]: g for g in doc["groups"]}
    assert list(by_column) == ["sex", "race", "age band"]
    for column in ("sex", "race", "age band"):
        groups = test.display[column].astype("string").fillna("(missing)").to_numpy(object)
        frame = MetricFrame(metrics=selection_rate, y_true=test.y, y_pred=pred, sensitive_features=groups)
        ours = {g["slice"].split(" == ", 1)[1]: g for g in by_column[column]["groups"]}
        assert set(ours) == set(frame.by_group.index)
        for name, rate in frame.by_group.items():
            assert ours[name]["selection_rate"] == pytest.approx(rate, abs=1e-6)
        d = by_column[column]["disparities"]
        assert d["demographic_parity_difference"] == pytest.approx(
            demographic_parity_difference(test.y, pred, sensitive_features=groups), abs=1e-6)
        assert d["equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(test.y, pred, sensitive_features=groups), abs=1e-6)
    assert by_column["sex"]["disparities"]["demographic_parity_difference"] > 0.1  # the census's known gap
    weak = doc["weak_slices"]
    assert weak and all(w["error_rate"] > doc["overall"]["error_rate"] for w in weak)
    assert weak[0]["p_value"] < 1e-6
    top = pd.Series([w["score"] for w in weak])
    assert top.is_monotonic_decreasing
