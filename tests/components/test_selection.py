"""components.selection.clicked_index: Plotly selection events (as Streamlit returns them, or as
plain dicts in tests) mapped to the integer a figure put first in ``customdata``."""

from __future__ import annotations

import pytest

from components.selection import clicked_index


def event(*points, **extra):
    return {"selection": {"points": list(points), "point_indices": list(range(len(points))), "box": [], "lasso": [],
                          **extra}}


@pytest.mark.parametrize("ev,expected", [
    (event({"customdata": [4, 17, 0.93]}), 4),                      # list customdata: the first item
    (event({"customdata": (2, 5)}), 2),                             # tuple
    (event({"customdata": [6.0, 4.0, 0.65]}), 6),                  # floats as Plotly sends numpy columns
    (event({"customdata": 9}), 9),                                  # scalar customdata (histogram trace)
    (event({"customdata": "3"}), 3),                                # numeric string
    (event({"x": 0.5, "y": 0.5, "curve_number": 0}, {"customdata": [7, 1]}), 7),  # diagonal has none: skipped
    (event({"customdata": None}, {"customdata": [1]}), 1),
    (event({"customdata": ["bin"]}, {"customdata": [5]}), 5),       # not a number: next point
    (event({"customdata": [None, 3]}), None),
    (event({"customdata": {"a": 1}}), None),
    (event({"customdata": float("nan")}), None),
    (event({"customdata": [8]}, {"customdata": [2]}), 8),          # the first selected point wins
])
def test_clicked_index(ev, expected):
    assert clicked_index(ev) == expected


@pytest.mark.parametrize("ev", [
    None,
    {},
    {"selection": None},
    {"selection": {}},
    {"selection": {"points": []}},
    {"selection": {"points": None}},
    {"other": 1},
    "not an event",
    42,
    event({"x": 0.1}, {"y": 0.2}),       # points without customdata
    event("not a point", 3),            # points that are not mappings
])
def test_no_selection_or_malformed_events_give_none(ev):
    assert clicked_index(ev) is None


def test_works_with_the_event_object_streamlit_returns():
    # st.plotly_chart(on_select="rerun") returns a read-only PlotlyState deserialized from the
    # browser's JSON (nested dicts wrapped on item access); build it the same way.
    import json

    serde = pytest.importorskip("streamlit.elements.plotly_chart").PlotlyChartSelectionSerde()
    ui = json.dumps({"selection": {"points": [{"curve_number": 0, "x": 0.0, "y": 0.0},
                                              {"curve_number": 1, "customdata": [11, 3, 0.97]}],
                                   "point_indices": [0, 0], "box": [], "lasso": []}})
    assert clicked_index(serde.deserialize(ui)) == 11
    assert clicked_index(serde.deserialize(None)) is None  # nothing selected yet


@pytest.mark.parametrize("ev", [event({"customdata": []}), {"selection": {"points": 5}}], ids=["empty-customdata", "points-int"])
def test_malformed_points_do_not_raise(ev):
    assert clicked_index(ev) is None
