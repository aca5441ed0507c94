"""AppTest of pages/slices.py: the slice against the rest, groups with Fairlearn's disparities, weak slices
one click from becoming the (sidebar's) slice, a bad slice refused while the page stays on the previous one,
deep links. The slice on every other page: tests/pages/test_active_slice.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core import scenarios
from core.slices import parse_slice, slice_frame
from tests.conftest import require_dataset
from tests.pages.helpers import open_app, sidebar_state

PAGE = "pages/slices.py"


def open_page(scenario="titanic", model="logreg", query=None, **state) -> AppTest:
    require_dataset(scenarios.get_spec(scenario).dataset)
    return open_app(PAGE, state=sidebar_state(scenario, model), page_state=state, query=query, errors=False,
                    title="Slices and groups")


def table(at: AppTest):
    return next(d.value for d in at.dataframe if "slice" in d.value.columns and "n" in d.value.columns)


def group_titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_titanic_defaults_show_every_sample_and_per_class_groups():
    at = open_page()
    assert not at.error, [e.value for e in at.error]
    rows = table(at)
    assert rows["slice"].tolist() == ["all samples"]
    test = scenarios.load_data("titanic")["test"]
    assert int(rows["n"][0]) == len(test)
    loaded = scenarios.load_model("titanic", "logreg")
    error = float(np.mean(loaded.adapter.predict(test.x) != test.y))
    assert rows["error rate"][0].startswith(f"{error:.3f} [")
    assert any(t.startswith("Groups of true") for t in group_titles(at))  # no sensitive column declared: per class
    assert not [m for m in at.metric if "parity" in m.label]  # classes are not groups to be fair to
    # 223 test passengers: no slice is significantly weaker after the correction for the many slices tried
    assert any("No slice has an error rate significantly above" in i.value for i in at.info)


def test_a_weak_slice_applies_with_one_click_and_lists_its_samples():
    at = open_page("adult", "logreg")
    button = next(b for b in at.button if b.key == "slice_apply_0")
    button.click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    text = at.session_state["tl_slice"]  # the sidebar's slice: it filters every page
    assert text and at.session_state["tl_slice_applied"] == parse_slice(text).text
    rows = table(at)
    assert rows["slice"].tolist() == ["all samples", parse_slice(text).text, "the rest"]
    test = scenarios.load_data("adult")["test"]
    proba = scenarios.load_model("adult", "logreg").adapter.predict_proba(test.x)
    inside = int(parse_slice(text).mask(slice_frame(test, proba)).sum())
    assert int(rows["n"][1]) == inside and int(rows["n"][1]) + int(rows["n"][2]) == len(test)
    samples = next(d.value for d in at.dataframe if "correct" in d.value.columns)
    assert len(samples) == min(48, inside)
    assert not samples["correct"].iloc[0]  # mistakes first


def test_a_bad_slice_is_said_and_the_page_stays_on_the_previous_one():
    at = open_page(tl_slice="Sex == female")
    assert not at.error and table(at)["slice"].tolist()[1] == "Sex == female"
    for bad, said in (("Sexx == female", "did you mean 'Sex'"), ("Age < old", "holds numbers"),
                      ("Sex == martian", "matches no sample"), ("Sex ==", "Cannot read")):
        at.session_state["tl_slice"] = bad
        at.run()
        assert not at.exception
        shown = " ".join(e.value for e in at.error) + " ".join(i.value for i in at.info)
        assert said in shown, (bad, shown)
        assert table(at)["slice"].tolist()[1] == "Sex == female"  # still the previous slice
        assert any("Still in force: **Sex == female**" in c.value for c in at.caption)


@pytest.mark.slow
def test_adult_groups_sex_race_and_age_with_fairlearns_disparities():
    from fairlearn.metrics import demographic_parity_difference

    at = open_page("adult", "gboost")
    assert not at.error, [e.value for e in at.error]
    titles = group_titles(at)
    for column in ("sex", "race", "age band"):
        assert any(t.startswith(f"Groups of {column}:") for t in titles), titles
    test = scenarios.load_data("adult")["test"]
    pred = scenarios.load_model("adult", "gboost").adapter.predict(test.x)
    expected = demographic_parity_difference(test.y, pred, sensitive_features=test.display["sex"].to_numpy(object))
    shown = [m.value for m in at.metric if m.label == "Demographic parity difference"]
    assert shown[0] == f"{expected:.3f}"


def test_a_deep_link_opens_the_slice():
    at = open_page(query={"view": "slices", "slice": "Pclass == 3 and Sex == male", "sensitive": "Sex,Pclass"})
    assert not at.error, [e.value for e in at.error]
    assert table(at)["slice"].tolist()[1] == "Pclass == 3 and Sex == male"
    assert at.session_state["slice_sensitive"] == ["Sex", "Pclass"]
    assert {"Groups of Sex: metrics with 95 % bootstrap intervals (dotted: all samples)"} <= set(group_titles(at))


def test_two_models_side_by_side_on_the_same_slices():
    at = open_page("adult", "gboost", slice_compare="logreg")
    assert not at.error, [e.value for e in at.error]
    table = next(d.value for d in at.dataframe if "logreg error" in d.value.columns)
    assert table["slice"].iloc[0] == "all samples" and {"sex == Female", "sex == Male"} <= set(table["slice"])
    test = scenarios.load_data("adult")["test"]
    a = scenarios.load_model("adult", "gboost").adapter.predict(test.x)
    b = scenarios.load_model("adult", "logreg").adapter.predict(test.x)
    first = table.iloc[0]
    assert first["gboost error"].startswith(f"{np.mean(a != test.y):.3f} [")
    assert first["logreg error"].startswith(f"{np.mean(b != test.y):.3f} [")
    assert first["difference"] == pytest.approx(np.mean(b != test.y) - np.mean(a != test.y), abs=1e-6)
    assert first["disagree"] == pytest.approx(np.mean(a != b), abs=1e-6)
    assert any(b.key == "slice_apply_disagree_0" for b in at.button)  # where they disagree, one click away
