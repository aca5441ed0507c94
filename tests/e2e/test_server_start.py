"""The first session of a freshly started server (each test here runs a server of its own).

Regression tests for Streamlit 1.67's legacy ``pages/`` mode, which a server process starts in
because the project has a ``pages/`` folder beside app.py:

- In the first script run of a fresh process the sidebar widgets (defined in app.py) got IDs
  computed with the hash of "app" instead of app.py's, and every later run used app.py's. The
  browser sent the user's first change under the old ID, the server did not recognise it, and the
  Scenario selectbox snapped back: the first pick after a server start was lost. (Seen here before
  components/state.py's ``_ensure_app_shell`` switched the legacy flag off and reran.)
- A first request to a deep link (``/calibration``) ran that page without app.py: no sidebar.
"""

from __future__ import annotations

import pytest

from core.scenarios import DEFAULT_SCENARIO, SCENARIOS
from tests.e2e import helpers
from tests.e2e.conftest import _page_factory, streamlit_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def fresh_page(request, e2e_available, browser_context, tmp_path):
    """(url, page): a new server process and one browser page; the server has served nobody yet."""
    with streamlit_server(tmp_path) as url:
        factory = _page_factory(request, browser_context)
        yield url, next(factory)()
        next(factory, None)


def test_first_sidebar_change_after_server_start_is_kept(fresh_page):
    url, page = fresh_page
    spec = SCENARIOS["breast-cancer"]
    helpers.open_app(page, url)
    helpers.select_scenario(page, spec)
    # the title is the first thing the rerun draws: when the pick is dropped it never comes
    helpers.wait_for_scenario(page, spec, timeout=60_000)
    helpers.assert_no_errors(page)


def test_deep_link_as_first_request_runs_inside_the_app_shell(fresh_page):
    url, page = fresh_page
    page.goto(f"{url}/calibration")
    helpers.expect(page.locator('[data-testid="stApp"][data-test-connection-state="CONNECTED"]')).to_be_attached(
        timeout=helpers.UI_TIMEOUT_MS)
    helpers.expect(helpers.title(page).filter(has_text="Calibration")).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.assert_no_errors(page)
    # app.py ran: its sidebar (scenario picker, navigation) is there
    helpers.expect(helpers.scenario_box(page)).to_have_value(SCENARIOS[DEFAULT_SCENARIO].title)
    helpers.expect(helpers.sidebar(page).get_by_test_id("stSidebarNav")).to_be_visible()
