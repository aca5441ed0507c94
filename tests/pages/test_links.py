"""Deep links: the URL's query string opens a view, and every run writes the view back to it."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from components import links
from core.scenarios import DEFAULT_SCENARIO, SCENARIOS
from tests.conftest import ROOT, require_dataset
from tests.pages.helpers import APP, open_app

PAGE_FILES = {"": "pages/home.py", "calibration": "pages/calibration.py", "images": "pages/images.py",
              "text": "pages/text.py", "trust": "pages/trust.py", "shapley": "pages/shapley.py",
              "uncertainty": "pages/uncertainty.py", "embeddings": "pages/embeddings.py", "upload": "pages/upload.py"}


def open_link(path: str, **query: str) -> AppTest:
    """A session opened on ``/path?query``.

    AppTest reaches a page only by switch_page after a first run, and that first run (on Home) writes
    Home's view to the URL; so the link's query string is put back before the page's own run.
    """
    return open_app(PAGE_FILES[path] if path else None, query=query)


# -- encoding ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "value"), [
    ("str", "integrated_gradients"), ("int", 42), ("int", -3), ("float", 0.15), ("float", 1e-6), ("bool", True),
    ("bool", False), ("ints", [0, 17, 3]), ("ints", []), ("strs", ["gradient", "lrp"]), ("auto", "top-label"),
    ("auto", 3), ("pair", ("logreg", "no-headers")), ("pair", ("cnn", None)), ("pick", ("fgsm 0.1", 12)),
])
def test_every_kind_round_trips(kind, value):
    assert links.decode(kind, links.encode(kind, value)) == value


@pytest.mark.parametrize(("kind", "text"), [("int", "3.5"), ("int", "x"), ("float", "nan"), ("float", "inf"),
                                            ("bool", "maybe"), ("ints", "1,a"), ("pick", "12")])
def test_mangled_values_are_rejected(kind, text):
    with pytest.raises(ValueError):
        links.decode(kind, text)


def test_url_names_are_unique_per_page():
    shared = {p.name for p in links.SHARED}
    for page, params in links.PAGE_PARAMS.items():
        names = [p.name for p in params]
        assert len(names) == len(set(names)), page
        assert not shared & set(names), page
        assert links.VIEW not in names, page


def test_every_page_of_the_navigation_has_a_parameter_table():
    app = (ROOT / "app.py").read_text()
    for path, file in PAGE_FILES.items():
        assert f'"{file}"' in app
        assert path in links.PAGE_PARAMS


# -- restore ----------------------------------------------------------------------------------------

def test_link_opens_its_scenario_model_and_page_settings():
    at = open_link("calibration", scenario="breast-cancer", model="logreg", bins="20", binning="quantile")
    assert at.selectbox(key="tl_scenario").value == "breast-cancer"
    assert at.selectbox(key="tl_model").value == "logreg"
    assert at.slider(key="cal_bins").value == 20
    assert at.radio(key="cal_strategy").value == "quantile"
    assert at.title[0].value == "Calibration" or any(t.value == "Calibration" for t in at.title)


def test_a_change_after_opening_the_link_is_kept_and_written_back():
    at = open_link("calibration", scenario="breast-cancer", bins="20")
    at.slider(key="cal_bins").set_value(10).run()
    assert at.slider(key="cal_bins").value == 10, "the stale URL value overwrote the user's change"
    assert at.query_params["bins"] in ("10", ["10"])
    at.run()  # another rerun with the URL now saying 10
    assert at.slider(key="cal_bins").value == 10


@pytest.mark.slow  # 6.5 s
def test_the_written_link_reopens_the_same_image_view():
    at = open_link("images", scenario="digits")
    at.multiselect(key="img_picks").set_value([5, 9]).run()
    at.multiselect(key="img_methods").set_value(["integrated_gradients", "occlusion"]).run()
    at.slider(key="ig_steps").set_value(80).run()
    at.slider(key="img_opacity").set_value(0.4).run()
    assert not at.exception
    query = {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert query["images"] == "5,9" and query["ig_steps"] == "80" and query["scenario"] == "digits"

    other = open_link("images", **query)  # a colleague opens the copied link in a new session
    assert other.multiselect(key="img_picks").value == [5, 9]
    assert other.multiselect(key="img_methods").value == ["integrated_gradients", "occlusion"]
    assert other.slider(key="ig_steps").value == 80
    assert other.slider(key="img_opacity").value == pytest.approx(0.4)
    assert other.session_state["occ_window"] == at.session_state["occ_window"]


@pytest.mark.slow  # MNIST's CNN (52 s to train)
def test_linked_image_beyond_the_first_500_matches_is_offered():
    require_dataset("mnist")
    at = open_link("images", scenario="mnist", images="9876", methods="gradient")
    assert at.multiselect(key="img_picks").value == [9876]
    assert "#9876" in at.get("plotly_chart")[0].proto.spec  # the grid's row label names the linked image


def test_unknown_scenario_falls_back_to_the_default_with_a_warning():
    at = open_link("", scenario="no-such-scenario")
    assert at.selectbox(key="tl_scenario").value == DEFAULT_SCENARIO
    assert any("no-such-scenario" in w.value for w in at.sidebar.warning)


def test_mangled_page_values_leave_the_widgets_on_their_defaults():
    at = open_link("calibration", scenario="digits", bins="many", binning="sideways", of="???")
    assert not at.exception
    assert at.slider(key="cal_bins").value == 15
    assert at.radio(key="cal_strategy").value in ("uniform", "quantile")


def test_another_sessions_upload_cannot_be_opened_by_name():
    from core.upload import byom

    name = byom.PREFIX + "0123456789abcdef"
    at = open_link("", scenario=name)
    assert at.selectbox(key="tl_scenario").value == DEFAULT_SCENARIO


def test_presentation_flag_is_linked_and_omitted_when_off():
    at = open_link("", scenario="digits", present="1")
    assert at.toggle(key=links.PRESENT_KEY).value is True
    assert at.query_params["present"] in ("1", ["1"])
    at.toggle(key=links.PRESENT_KEY).set_value(False).run()
    assert "present" not in at.query_params


def test_copy_link_names_the_page_and_its_settings():
    at = open_link("calibration", scenario="titanic" if "titanic" in SCENARIOS else "digits", bins="12")
    code = [c.value for c in at.sidebar.code]
    assert code and "calibration?" in code[0] and "bins=12" in code[0], code


def test_a_page_that_stops_early_still_links_its_scenario():
    at = open_link("uncertainty", scenario="breast-cancer")  # not an image model: the page stops after an info
    assert at.info, "the page explains why it stops"
    assert at.query_params["scenario"] in ("breast-cancer", ["breast-cancer"])
    code = [c.value for c in at.sidebar.code]
    assert code and "uncertainty?" in code[0] and "scenario=breast-cancer" in code[0], code


def test_a_stale_url_in_a_later_run_never_undoes_a_choice():
    """A rerun request can carry the query string from before the previous run rewrote it (a quick
    second click): only a session's first run reads the URL."""
    at = open_link("", scenario="digits")
    at.selectbox(key="tl_scenario").set_value("breast-cancer").run()
    at.query_params.clear()
    at.query_params.update({"scenario": "digits", "model": "cnn"})  # what the browser still showed
    at.selectbox(key="tl_model").set_value("logreg").run()
    assert at.selectbox(key="tl_scenario").value == "breast-cancer"
    assert at.selectbox(key="tl_model").value == "logreg"


def test_values_written_for_another_page_are_not_applied():
    """Home writes classes / correct / sort too: they must not leak into the image page's filters."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["img_correctness"] = "incorrect"
    at.query_params.update({"scenario": "digits", "view": "home", "correct": "all", "sort": "index"})
    at.run()
    at.switch_page(PAGE_FILES["images"]).run()
    assert at.radio(key="img_correctness").value == "incorrect"
    assert at.query_params["view"] in ("images", ["images"])
