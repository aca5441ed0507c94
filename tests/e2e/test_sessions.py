"""Two browser sessions at once: each keeps its own scenario (no leak through shared state)."""

from __future__ import annotations

import pytest

from core.scenarios import DEFAULT_SCENARIO, SCENARIOS
from tests.conftest import require_dataset
from tests.e2e import helpers

pytestmark = pytest.mark.e2e


def test_concurrent_sessions_keep_their_own_selection(new_page, app_url):
    a_spec, b_spec = SCENARIOS["breast-cancer"], SCENARIOS["titanic"]
    require_dataset(b_spec.dataset)
    assert DEFAULT_SCENARIO not in (a_spec.name, b_spec.name)
    a, b = new_page(), new_page()
    helpers.open_app(a, app_url)
    helpers.open_app(b, app_url)

    # both selections are sent before either page is waited on, so the two reruns overlap
    helpers.select_scenario(a, a_spec)
    helpers.select_scenario(b, b_spec)
    helpers.wait_for_scenario(a, a_spec)
    helpers.wait_for_scenario(b, b_spec)
    for page, mine, other in ((a, a_spec, b_spec), (b, b_spec, a_spec)):
        helpers.assert_no_errors(page)
        helpers.expect(helpers.scenario_box(page)).to_have_value(mine.title)
        assert other.title not in helpers.main(page).inner_text()

    # a rerun in one session (a widget change) leaves the other one as it was
    helpers.click_radio(a, "Predictions", "incorrect")
    helpers.wait_for_browser_summary_change(a)
    helpers.wait_settled(b)
    helpers.expect(helpers.scenario_box(a)).to_have_value(a_spec.title)
    helpers.expect(helpers.scenario_box(b)).to_have_value(b_spec.title)
    matching_b, total_b = helpers.browser_summary(b)
    assert matching_b == total_b, "the other session's filter leaked into this one"

    # a third, fresh session starts from the default, not from either selection
    c = new_page()
    helpers.open_app(c, app_url)
    helpers.expect(helpers.scenario_box(c)).to_have_value(SCENARIOS[DEFAULT_SCENARIO].title)
    assert [t.strip() for t in helpers.title(c).all_inner_texts()] == [SCENARIOS[DEFAULT_SCENARIO].title]
