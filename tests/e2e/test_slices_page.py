"""The slices page in a real browser (issue 23): Adult's groups, a weak slice applied with one click (it becomes the
sidebar's active slice), a bad slice refused while the pages stay on the previous one, and the slice following the
user to another page and into the link."""

from __future__ import annotations

import re

import pytest

from tests.conftest import require_dataset
from tests.e2e import helpers

pytestmark = pytest.mark.e2e


def slice_rows(page) -> str:
    """The text of the first table (the slice against the rest)."""
    return helpers.main(page).get_by_test_id("stDataFrame").first.inner_text()


def test_adult_groups_weak_slice_and_a_bad_slice(page, app_url, screenshot_dir):
    require_dataset("adult")
    page.goto(f"{app_url}/slices?scenario=adult&model=gboost")
    main = helpers.main(page)
    helpers.expect(helpers.title(page).filter(has_text="Slices and groups")).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(main.get_by_text("Weak slices", exact=True)).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    helpers.assert_no_errors(page)
    page.screenshot(path=str(screenshot_dir / "slices-adult.png"), full_page=True)
    # one chart per sensitive column, each with the parity metrics beneath
    for column in ("sex", "race", "age band"):
        helpers.expect(main.locator(".js-plotly-plot").get_by_text(re.compile(rf"^Groups of {column}:"))).to_have_count(1)
    helpers.expect(helpers.metric(page, "Demographic parity difference")).to_have_count(3)

    # a weak slice becomes the slice with one click; the table then holds it and the rest
    first = main.get_by_role("button", name="Apply").first
    first.click()
    helpers.expect(main.get_by_text("the rest", exact=True)).to_be_attached(timeout=helpers.LOAD_TIMEOUT_MS)  # a grid cell
    helpers.wait_settled(page)
    box = helpers.sidebar(page).get_by_role("textbox", name="Slice")
    applied = box.input_value()
    assert " and " in applied or "==" in applied or ">=" in applied, applied
    helpers.expect(main.get_by_text(re.compile(r"^Slice \(the sidebar's, on every page\)"))).to_be_visible()
    helpers.assert_no_errors(page)

    # a slice naming a column the data lacks: said, and the pages stay on the applied slice
    box.fill("salary > 50000")
    box.press("Enter")
    sidebar = helpers.sidebar(page)
    helpers.expect(sidebar.get_by_text("The slice names a column the data does not have: 'salary'.", exact=False)
                   ).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.expect(sidebar.get_by_text(re.compile(r"^Still in force: "))).to_be_visible()
    helpers.wait_settled(page)
    helpers.wait_painted(page)
    page.screenshot(path=str(screenshot_dir / "slices-adult-bad-slice.png"), full_page=True)

    # the slice follows: Home's browser and confusion matrix show only its test samples, and the link carries it
    box.fill(applied)
    box.press("Enter")
    helpers.expect(sidebar.get_by_text(re.compile(r"^In force on every page: [\d,]+ of 16,281 test samples"))
                   ).to_be_visible(timeout=helpers.LOAD_TIMEOUT_MS)
    sidebar.get_by_role("link", name="Home").click()
    helpers.expect(main.get_by_text(re.compile(r"Slice .+: [\d,]+ of 16,281 test samples")).first).to_be_visible(
        timeout=helpers.LOAD_TIMEOUT_MS)
    helpers.wait_settled(page)
    assert "slice=" in page.url, page.url
    helpers.assert_no_errors(page)
    page.screenshot(path=str(screenshot_dir / "slices-adult-home-in-slice.png"), full_page=True)
