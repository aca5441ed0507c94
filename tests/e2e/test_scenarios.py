"""The first render, and a scenario chosen in the sidebar of a real browser: its Home page."""

from __future__ import annotations

import time

import pytest

from core.scenarios import SCENARIOS
from tests.conftest import require_dataset
from tests.e2e import helpers

pytestmark = pytest.mark.e2e


def test_first_render_shows_the_default_scenario(page, app_url):
    seconds = helpers.open_app(page, app_url)
    helpers.assert_no_errors(page)
    assert helpers.title(page).count() == 1
    helpers.expect(helpers.scenario_box(page)).to_have_value(helpers.title(page).inner_text().strip())
    print(f"first render {seconds:.1f} s")


# Choosing a scenario in the sidebar's box, as a user does on the first page (the other tests reach scenarios by
# links): one that is not the default. Every scenario's Home is checked by the sweep of every page
# (tests/e2e/test_every_page.py, helpers.assert_home_page), which opens it by its deep link.
@pytest.mark.parametrize("name", ["adult"])
def test_scenario_chosen_in_the_sidebar_renders_its_home_page(name, page, app_url, screenshot_dir):
    spec = SCENARIOS[name]
    require_dataset(spec.dataset)
    helpers.open_app(page, app_url)
    assert helpers.title(page).inner_text().strip() != spec.title  # a change of scenario, not the default

    started = time.perf_counter()
    helpers.select_scenario(page, spec)
    helpers.wait_for_scenario(page, spec)
    seconds = time.perf_counter() - started
    page.screenshot(path=str(screenshot_dir / f"{name}.png"))

    helpers.assert_no_errors(page)
    accuracy = helpers.assert_home_page(page, spec)
    assert f"scenario={name}" in page.url  # the choice is in the link, to be copied
    print(f"{name}: selected and rendered in {seconds:.1f} s, test accuracy {accuracy}")
