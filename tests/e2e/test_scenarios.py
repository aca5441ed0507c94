"""Every built-in scenario, chosen through the sidebar of a real browser, renders its Home page."""

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


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_renders_its_home_page(name, page, app_url, screenshot_dir):
    spec = SCENARIOS[name]
    require_dataset(spec.dataset)
    helpers.open_app(page, app_url)

    started = time.perf_counter()
    helpers.select_scenario(page, spec)
    helpers.wait_for_scenario(page, spec)
    seconds = time.perf_counter() - started
    page.screenshot(path=str(screenshot_dir / f"{name}.png"))

    helpers.assert_no_errors(page)
    assert helpers.metric_value(page, "Task") == f"{len(spec.class_names)}-class"
    accuracy = helpers.metric_value(page, "Test accuracy")
    assert accuracy.endswith("%") and 0.0 <= float(accuracy[:-1]) <= 100.0, accuracy
    # the dataset browser rendered its first page for this kind of data
    matching, total = helpers.browser_summary(page)
    assert matching == total > 0
    main = helpers.main(page)
    if spec.kind == "image":
        helpers.expect(main.get_by_test_id("stImage")).to_have_count(min(48, total))
    else:
        helpers.expect(main.get_by_test_id("stDataFrame")).to_have_count(1)
    if spec.kind == "text":
        helpers.expect(main.get_by_test_id("stCode")).to_have_count(1)
    print(f"{name}: selected and rendered in {seconds:.1f} s, test accuracy {accuracy}")
