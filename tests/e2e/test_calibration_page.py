"""The calibration page in a real browser for the image and text scenarios (issue 6)."""

from __future__ import annotations

import pytest

from core.scenarios import SCENARIOS
from tests.conftest import require_dataset
from tests.e2e import helpers

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", ["digits", "mnist", "newsgroups"])
def test_calibration_page_renders_diagram_metrics_and_bin_samples(name, page, app_url, screenshot_dir):
    spec = SCENARIOS[name]
    require_dataset(spec.dataset)
    helpers.open_app(page, app_url)
    if name != "digits":
        helpers.select_scenario(page, spec)
        helpers.wait_for_scenario(page, spec)
    helpers.sidebar(page).get_by_role("link", name="Calibration").click()
    main = helpers.main(page)
    helpers.expect(main.get_by_role("heading", name="Calibration", level=1)).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(main.get_by_text("Metrics on the test split")).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / f"calibration-{name}.png"))

    helpers.assert_no_errors(page)
    # reliability diagram and risk-coverage curve
    helpers.expect(main.get_by_test_id("stPlotlyChart")).to_have_count(2)
    helpers.expect(main.locator(".js-plotly-plot").first.get_by_text("perfect calibration")).to_be_visible()
    # metrics table and the samples of the default (most over-confident) bin
    assert main.get_by_test_id("stDataFrame").count() >= 1
    helpers.expect(main.get_by_text("mistakes among")).to_be_visible()
    if spec.kind == "image":
        assert main.get_by_test_id("stImage").count() >= 1
    else:
        helpers.expect(main.get_by_test_id("stCode")).to_have_count(1)
