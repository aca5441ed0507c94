"""The Shapley page's bill-splitting game in a real browser."""

from __future__ import annotations

import pytest

from tests.e2e import helpers

pytestmark = pytest.mark.e2e


def test_restaurant_game_shows_the_lecture_answer(page, app_url, screenshot_dir):
    helpers.open_app(page, app_url)
    helpers.sidebar(page).get_by_role("link", name="Shapley values").click()
    main = helpers.main(page)
    helpers.expect(main.get_by_role("heading", name="Shapley values", level=1)).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
    helpers.expect(main.get_by_text("Efficiency holds")).to_be_visible(timeout=helpers.UI_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "shapley-game.png"))
    helpers.assert_no_errors(page)
    for player, value in (("Alice", "180.00"), ("Bob", "360.00"), ("Carol", "460.00")):
        helpers.expect(helpers.metric(page, player)).to_contain_text(value)
