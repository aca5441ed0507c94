"""AppTest of pages/data.py: every check drawn, numbers equal to core's, the samples behind them listed."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core import scenarios
from core.inference import predict_proba_cached
from core.slices.data_checks import data_report
from tests.conftest import require_dataset
from tests.pages.helpers import open_app, sidebar_state

PAGE = "pages/data.py"


def open_page(scenario, model, variant=None) -> AppTest:
    require_dataset(scenarios.get_spec(scenario).dataset)
    return open_app(PAGE, state=sidebar_state(scenario, model, variant), errors=True, title="Data checks")


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("scenario, model", [("digits", "cnn"), ("titanic", "logreg")])
def test_the_page_shows_cores_numbers(scenario, model):
    at = open_page(scenario, model)
    splits = scenarios.load_data(scenario)
    proba = predict_proba_cached(scenarios.load_model(scenario, model).adapter, splits["test"])
    expected = data_report(splits, proba)
    assert metric(at, "test samples") == f"{len(splits['test']):,}"
    assert metric(at, "Test samples also in train (exact)") == f"{expected.duplicates['exact']['test_in_train']['count']:,}"
    assert any(f"**{expected.label_issues['count']:,}** samples" in c.value for c in at.caption)
    assert [json_title(c) for c in at.get("plotly_chart")] == ["Class balance per split"]
    if scenario == "titanic":  # Age and Cabin are missing for many passengers
        table = next(d.value for d in at.dataframe if "train" in d.value.columns)
        assert {"Age", "Cabin"} <= set(table.index)
        drift = next(d.value for d in at.dataframe if "feature" in d.value.columns)
        assert len(drift) == len(expected.drift)


def test_newsgroups_label_suspects_are_listed_with_their_text():
    at = open_page("newsgroups", "logreg", "headers")
    listed = next(d.value for d in at.dataframe if "correct" in d.value.columns)
    assert len(listed) >= 1 and not listed["correct"].all()


def json_title(chart) -> str:
    import json

    return json.loads(chart.proto.spec)["layout"]["title"]["text"]
