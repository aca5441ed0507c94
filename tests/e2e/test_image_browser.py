"""The digits image browser: 48 thumbnails, and the "incorrect" filter shows only mistakes."""

from __future__ import annotations

import re

import pytest

from core.scenarios import SCENARIOS
from tests.e2e import helpers

pytestmark = pytest.mark.e2e

PER_PAGE = 48


def test_incorrect_filter_shows_only_the_mistakes(page, app_url):
    spec = SCENARIOS["digits"]
    helpers.open_app(page, app_url)
    helpers.select_scenario(page, spec)
    helpers.wait_for_scenario(page, spec)
    main = helpers.main(page)
    thumbnails = main.get_by_test_id("stImage")
    captions = main.get_by_test_id("stImageCaption")

    matching, total = helpers.browser_summary(page)
    assert matching == total > PER_PAGE
    helpers.expect(thumbnails).to_have_count(PER_PAGE)
    assert all(re.search(r"[✓✗]", c) for c in captions.all_inner_texts())
    accuracy = float(helpers.metric_value(page, "Test accuracy").rstrip("%")) / 100

    helpers.click_radio(page, "Predictions", "incorrect")
    # content only the rerun produces: the summary no longer counts every sample
    helpers.wait_for_browser_summary_change(page)
    helpers.assert_no_errors(page)

    mistakes, total_after = helpers.browser_summary(page)
    assert total_after == total
    assert 0 < mistakes < total
    # the count agrees with the accuracy on the model card (rounded to 0.1%)
    assert abs(mistakes - total * (1 - accuracy)) <= total * 0.0005 + 0.5, (mistakes, total, accuracy)
    helpers.expect(thumbnails).to_have_count(min(mistakes, PER_PAGE))
    texts = captions.all_inner_texts()
    assert texts and all("✗" in t for t in texts), texts
    assert not any("✓" in t for t in texts), texts
